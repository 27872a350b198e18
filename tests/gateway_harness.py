"""A real gateway over real HTTP for tests: uvicorn in a thread, on this test's database,
forwarding to the bundled mock server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from panopticon.gateway.app import gateway_log_path, serve_app
from panopticon.gateway.logging import JsonlTraceWriter
from panopticon.gateway.proxy import Gateway
from panopticon.settings import Settings
from tests.conftest import free_port


class GatewayServer:
    def __init__(self, settings: Settings, env: dict[str, str], roles: set[str]) -> None:
        self.settings = settings
        self.port = free_port()
        app, gateway = serve_app(settings, env, roles)
        assert gateway is not None
        self.gateway: Gateway = gateway
        self.app = app
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.root + "/v1"

    def start(self) -> GatewayServer:
        self.thread.start()
        wait_for(lambda: self.server.started, what="the gateway to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    @property
    def log_path(self) -> Path:
        return gateway_log_path(self.settings)

    def traces(self) -> list[dict[str, Any]]:
        return JsonlTraceWriter(self.log_path).read()

    def wait_traces(self, n: int) -> list[dict[str, Any]]:
        wait_for(lambda: len(self.traces()) >= n, what=f"{n} logged traces")
        return self.traces()

    def trace(self, trace_id: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = [t for t in self.traces() if t["id"] == trace_id]
            return bool(found)

        wait_for(seen, what=f"trace {trace_id} in the log")
        return found[0]


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")
