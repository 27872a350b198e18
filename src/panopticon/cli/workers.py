"""``serve --workers N``: N server processes, each with its own listening socket on the same
port (``SO_REUSEPORT``), so that the kernel spreads connections across them.

uvicorn's own ``--workers`` shares one socket between the processes, and asyncio accepts
every pending connection in one go: a client that opens its connections at once (an
OpenTelemetry Collector's exporter, a load balancer's pool) had all of them taken by one
process, and the other cores idled (measured: 59 s of CPU in one worker, 2 s in the other).
With a socket per process the kernel assigns each new connection to one of them.

The parent starts the processes, stops them all on SIGINT or SIGTERM, and starts a new one
when one dies. Where ``SO_REUSEPORT`` does not exist (Windows), uvicorn's workers are used.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
from typing import Any

__all__ = ["port_free", "reuse_port_supported", "run_workers"]


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now. Checked before a server starts, so
    that a busy port is said at once, not after the app's start-up (which takes up jobs
    and spool files) and a uvicorn traceback. ``SO_REUSEADDR`` as uvicorn sets it: a port
    whose last connections are in TIME_WAIT is free; no ``SO_REUSEPORT``, so a port
    another server listens on (with it or not) is in use."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _worker(app: str, host: str, port: int, options: dict[str, Any]) -> None:
    """One process: its own socket, one uvicorn server with the app factory ``app``."""
    import uvicorn

    sock = _listen(host, port)
    config = uvicorn.Config(app, factory=True, host=host, port=port, **options)
    uvicorn.Server(config).run(sockets=[sock])


def run_workers(app: str, host: str, port: int, workers: int, **options: Any) -> None:
    """Serve ``app`` (an import string of an app factory) from ``workers`` processes until
    SIGINT or SIGTERM; ``options`` go to ``uvicorn.Config``."""
    _listen(host, port).close()  # a port in use fails here, once, with its own error
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def start() -> Any:
        process = context.Process(target=_worker, args=(app, host, port, options), daemon=False)
        process.start()
        return process

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    processes = [start() for _ in range(workers)]
    try:
        while not stop.wait(0.5):
            for i, process in enumerate(processes):
                if not process.is_alive():  # crashed or killed: keep the count
                    process.join()
                    processes[i] = start()
                    time.sleep(0.5)  # a worker that dies at start-up does not spin
    finally:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)  # uvicorn finishes its requests
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
        for s, handler in previous.items():
            signal.signal(s, handler)
