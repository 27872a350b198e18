"""The gateway's log writer in a process of its own (``gateway_log_writer = "process"``, the
default).

Turning a call into stored rows (the span, the trace, SQLite's or PostgreSQL's statements)
costs about as much CPU as answering the call; in the gateway's own process that work holds
the GIL the event loop needs, and logging cost a third of the gateway's throughput
(bench/README.md). Here the server's process only appends each call to a deque
(:meth:`ProcessSink.submit`); a thread serialises them every ``interval_s`` (orjson, about
1.5 µs a call) and writes them over a pipe to a child process running this module's
:func:`main`, which runs the same :class:`BatchingSink` and trace writer (batched
transactions; the spool while the database is away) as the in-process mode.

The pipe carries frames: a 4-byte big-endian length, then orjson. Parent to child: first the
settings, then ``[seq, [record, ...]]``. Child to parent: ``[seq, written, failed, error]``
once every record of batch ``seq`` is durable (in the database or the fsynced spool) or
refused for good.

What this keeps:

- The parent keeps each batch until the child acknowledges it. A child that dies (a crash,
  ``kill -9``) is started again and sent every batch it had not acknowledged; rows are
  upserted by id, so a batch written twice is stored once.
- ``kill -9`` of the server: the child reads to the end of the pipe, writes (or spools)
  everything it was sent, and exits; what is lost is what waited in the deque, at most
  ``interval_s`` (50 ms) of calls.
- A clean shutdown (:meth:`ProcessSink.close`) sends everything, closes the pipe, and waits
  for the child to write it all and exit.
- The child runs in a session of its own and ignores SIGINT: Ctrl-C in the server's terminal
  stops the server, whose shutdown then lets the child finish, instead of killing the child
  with calls unwritten.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import datetime
from typing import IO, Any

import orjson

from panopticon.gateway.logging import BatchingSink, CallRecord, QueuedSink
from panopticon.settings import Settings

__all__ = ["ProcessSink", "main"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
_LARGEST_FRAME = 2**32 - 1  # what the header can say
_DEEPEST = 128  # levels of a record's values kept (_storable)


def _write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame, or None at the end of the stream (a frame cut short is its end too)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    payload = stream.read(size)
    return payload if len(payload) == size else None


class _Child:
    """One writer process, and the thread that reads its acknowledgements."""

    def __init__(self, sink: ProcessSink, command: list[str]) -> None:
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,  # the terminal's Ctrl-C is for the server, not for it
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin: IO[bytes] = self.proc.stdin
        self.ended = threading.Event()  # its output reached its end: it exited or died
        self.broken = False  # a write to it failed
        self.started = time.monotonic()
        self.reader = threading.Thread(
            target=sink._read_acks,
            args=(self,),
            name="panopticon-gateway-log-acks",
            daemon=True,
        )
        self.reader.start()

    def send(self, payload: bytes) -> bool:
        if self.broken:
            return False
        try:
            _write_frame(self.stdin, payload)
        except (BrokenPipeError, OSError, ValueError):
            self.broken = True
            return False
        return True

    def close_input(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.stdin.close()


def _storable(record: CallRecord) -> dict[str, Any]:
    """The record with what JSON cannot carry made text: integers past 64 bits as their
    digits (as ingestion stores them), strings with lone surrogates with U+FFFD in their
    place.

    Not :func:`panopticon.ingest.normalise._cut`, which makes a value fit the database: this
    only makes the record fit the pipe, and the child's ``finish()`` then cuts it as ingestion
    does. So a NUL is left for ``finish()``; an integer within 64 unsigned bits stays an
    integer and a NaN or infinite float a float (orjson writes null), where ``_cut`` makes
    both text, which would put text in typed fields such as ``cost_usd``; a value of
    another type becomes text instead of failing the record; and a list or object nested
    past ``_DEEPEST`` levels (orjson writes 254) becomes a marker, so that no client's value
    can stop the thread that writes every workspace's calls."""

    def fix(value: Any, depth: int = 0) -> Any:
        if isinstance(value, dict | list | tuple) and depth >= _DEEPEST:
            return f"[nested more than {_DEEPEST} levels: not kept]"
        if isinstance(value, str):
            return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        if isinstance(value, bool) or value is None or isinstance(value, float | datetime):
            return value
        if isinstance(value, int):
            return value if -(2**63) <= value < 2**64 else str(value)
        if isinstance(value, dict):
            return {fix(str(k)): fix(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [fix(v, depth + 1) for v in value]
        return str(value)

    return {name: fix(getattr(record, name)) for name in CallRecord.__dataclass_fields__}


class ProcessSink(QueuedSink):
    """Hands gateway calls to a writer process (see the module docstring). The same
    counters as :class:`BatchingSink`: ``written``, ``failed``, ``dropped``, ``pending``,
    ``last_error``; and ``restarts``, the writer processes started after the first."""

    def __init__(
        self,
        settings: Settings,
        *,
        interval_s: float = 0.05,
        max_batch: int = 1000,
        max_queue: int = 200_000,
        max_unsent_bytes: int = 512 * 1024**2,
        max_frame_bytes: int = 64 * 1024**2,
        restart_s: float = 1.0,
        command: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.interval_s = interval_s
        self.max_batch = max_batch
        self.max_queue = max_queue
        # calls sent and not yet written are kept to be sent again: bound them by bytes too
        # (a request may be 10 MB), past which calls are dropped and counted
        self.max_unsent_bytes = max_unsent_bytes
        self.max_frame_bytes = max_frame_bytes  # a larger batch is sent in parts
        self.restart_s = restart_s  # the least time between two starts of the writer
        self._restart_wait = restart_s  # doubles while writers die young, up to 30 s
        self._unacked_bytes = 0
        # -c, not -m: the package's __init__ imports this module before -m would run it
        self.command = command or [
            sys.executable,
            "-c",
            "from panopticon.gateway.log_process import main; main()",
        ]
        self._queue: deque[CallRecord] = deque()
        self._lock = threading.Lock()
        self._unacked: dict[int, tuple[int, bytes]] = {}  # seq -> (records, frame)
        self._unacked_records = 0
        # records taken off the queue and not yet kept as unacknowledged (being serialised):
        # pending counts them, so that flush() never sees 0 while a batch is on its way
        self._taking = 0
        self._seq = 0
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._child: _Child | None = None
        self.written = 0
        self.failed = 0
        self.dropped = 0
        self.restarts = 0
        self.last_error: str | None = None

    # -- the hot path -------------------------------------------------------------------
    def submit(self, record: CallRecord) -> None:
        if (
            len(self._queue) + self._unacked_records >= self.max_queue
            or self._unacked_bytes >= self.max_unsent_bytes
        ):
            self.dropped += 1  # the writer has not kept up for a long while: count it
            return
        self._queue.append(record)
        if len(self._queue) >= self.max_batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Calls not yet durable: waiting here, or sent and not yet acknowledged."""
        return len(self._queue) + self._taking + self._unacked_records

    @property
    def unacknowledged(self) -> int:
        """Calls sent to the writer process and not yet acknowledged by it."""
        return self._unacked_records

    @property
    def writer_pid(self) -> int | None:
        return None if self._child is None else self._child.proc.pid

    # -- the sender's thread --------------------------------------------------------------
    def _spawn(self) -> None:
        """Start a writer (no sooner than ``restart_s`` after the last one started) and
        send it the settings and every batch not yet acknowledged, oldest first."""
        if self._child is not None:
            self.restarts += 1
            # one that dies soon after its start (a database URL it cannot use, say) is
            # started again ever more slowly, not every second for ever
            lived = time.monotonic() - self._child.started
            self._restart_wait = self.restart_s if lived > 30 else min(30.0, self._restart_wait * 2)
            wait = self._child.started + self._restart_wait - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._child.close_input()
            try:
                code = self._child.proc.wait(5)
            except subprocess.TimeoutExpired:  # its pipe broke, yet it lives: end it
                self._child.proc.kill()
                code = self._child.proc.wait()
            with self._lock:
                unacked = sorted(self._unacked.items())
            self.last_error = f"the log writer process ended (exit code {code})"
            log.error(
                "%s; starting another and sending it the %d calls it had not written",
                self.last_error,
                sum(n for _, (n, _) in unacked),
            )
        else:
            unacked = []
        child = self._child = _Child(self, self.command)
        child.send(self.settings.model_dump_json().encode())
        for _, (_, frame) in unacked:
            if not child.send(frame):
                return

    def _run(self) -> None:
        self._spawn()
        while True:
            stopping = self._stop
            self._wake.wait(self.interval_s)
            self._wake.clear()
            child = self._child
            assert child is not None
            if child.ended.is_set() or child.broken:
                self._spawn()
                continue
            while self._queue:
                size = min(self.max_batch, len(self._queue))
                self._taking = size  # counted twice for a moment, never not at all
                batch = [self._queue.popleft() for _ in range(size)]
                try:
                    frames = self._frames(batch)
                finally:
                    self._taking = 0
                if not all(child.send(frame) for frame in frames):
                    break  # kept as unacknowledged: the next writer gets them
            if stopping and not self._queue:
                break
        self._finish()

    def _frames(self, batch: list[CallRecord]) -> list[bytes]:
        """The batch as frames of at most ``max_frame_bytes`` (halved until they are)."""
        frame = self._frame(batch)
        if frame is None or len(frame) <= self.max_frame_bytes or len(batch) == 1:
            if frame is not None and len(frame) > _LARGEST_FRAME:  # one call past 4 GB
                self._forget(self._seq)
                self._record_failed(batch[0], ValueError(f"{len(frame)} bytes"))
                return []
            return [] if frame is None else [frame]
        self._forget(self._seq)
        half = len(batch) // 2
        return self._frames(batch[:half]) + self._frames(batch[half:])

    def _forget(self, seq: int) -> None:
        with self._lock:
            size, frame = self._unacked.pop(seq, (0, b""))
            self._unacked_records -= size
            self._unacked_bytes -= len(frame)

    def _frame(self, batch: list[CallRecord]) -> bytes | None:
        """The batch as one frame, kept until acknowledged. A record orjson cannot write (a
        client's integer past 64 bits, a lone surrogate in its text) is written with those
        values made storable (:func:`_storable`); one that still cannot be is counted as
        failed, alone."""
        self._seq += 1
        try:
            body = orjson.dumps(batch)
        except TypeError:
            parts = []
            for record in batch:
                try:
                    parts.append(orjson.dumps(record))
                except TypeError:
                    try:
                        parts.append(orjson.dumps(_storable(record)))
                    except (TypeError, ValueError, RecursionError) as exc:
                        self._record_failed(record, exc)
            if not parts:
                return None
            body = b"[" + b",".join(parts) + b"]"
            size = len(parts)
        else:
            size = len(batch)
        frame = b"[%d," % self._seq + body + b"]"
        with self._lock:
            self._unacked[self._seq] = (size, frame)
            self._unacked_records += size
            self._unacked_bytes += len(frame)
        return frame

    def _record_failed(self, record: CallRecord, exc: Exception) -> None:
        self.failed += 1
        self.last_error = f"{exc.__class__.__name__}: {exc}"[:500]
        log.error("gateway call %s could not be logged: %s", record.trace_id, self.last_error)

    def _finish(self, timeout_s: float = 60.0) -> None:
        """Close the pipe: the writer writes what it was sent and exits. One that dies with
        batches unacknowledged is started again to write them."""
        deadline = time.monotonic() + timeout_s
        while True:
            child = self._child
            assert child is not None
            child.close_input()
            child.ended.wait(max(0.0, deadline - time.monotonic()))
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("the gateway's log writer did not finish in time; stopping it")
                child.proc.kill()
                child.proc.wait()
            if not self._unacked_records or time.monotonic() >= deadline:
                break
            self._spawn()
        if self._unacked_records:
            log.error(
                "%d gateway calls not written at shutdown: %s",
                self._unacked_records,
                self.last_error,
            )

    # -- the acknowledgements' thread ----------------------------------------------------
    def _read_acks(self, child: _Child) -> None:
        assert child.proc.stdout is not None
        try:
            while (payload := _read_frame(child.proc.stdout)) is not None:
                seq, written, failed, error = orjson.loads(payload)
                with self._lock:
                    size, frame = self._unacked.pop(seq, (0, b""))
                    self._unacked_records -= size
                    self._unacked_bytes -= len(frame)
                    self.written += written
                    self.failed += failed
                if error:
                    self.last_error = error
        finally:
            child.proc.stdout.close()
            child.ended.set()
            self._wake.set()

    # -- the server's side --------------------------------------------------------------
    def close(self, timeout_s: float = 60.0) -> None:
        """Send every call, let the writer write them all, and wait for it to exit."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s + 5)
            if self._thread.is_alive():
                log.error("%d gateway calls not handed to the log writer at shutdown", self.pending)
            self._thread = None


# -- the writer process -----------------------------------------------------------------------


class _Acks:
    """Which parent batch each record came in, and the acknowledgement once all of a batch's
    records are settled."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self._lock = threading.Lock()
        self._batches: dict[int, list[Any]] = {}  # seq -> [left, written, failed, error]
        self._of: dict[int, int] = {}  # id(record) -> seq

    def expect(self, seq: int, records: list[CallRecord], failed: int, error: str | None) -> None:
        with self._lock:
            if not records:
                self._send(seq, 0, failed, error)
                return
            self._batches[seq] = [len(records), 0, failed, error]
            for record in records:
                self._of[id(record)] = seq

    def settled(self, records: list[CallRecord], ok: bool) -> None:
        with self._lock:
            for record in records:
                seq = self._of.pop(id(record), None)
                if seq is None:
                    continue
                batch = self._batches[seq]
                batch[0] -= 1
                batch[1 if ok else 2] += 1
                if batch[0] == 0:
                    del self._batches[seq]
                    self._send(seq, batch[1], batch[2], batch[3])

    def _send(self, seq: int, written: int, failed: int, error: str | None) -> None:
        # the server gone: the rows are written all the same
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            _write_frame(self.out, orjson.dumps([seq, written, failed, error]))


def _record(data: dict[str, Any]) -> CallRecord:
    data["start_time"] = datetime.fromisoformat(data["start_time"])
    data["end_time"] = datetime.fromisoformat(data["end_time"])
    return CallRecord(**data)


def main() -> None:
    """The writer process: settings, then batches, from stdin, until it ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server says when: it closes the pipe
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s panopticon gateway log writer: %(message)s",
    )
    from panopticon.services.ingest import open_ingest

    # acknowledgements go to the pipe that was stdout; anything else printed (a library's
    # warning) goes to stderr instead of into the frames
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    inp = sys.stdin.buffer
    first = _read_frame(inp)
    if first is None:
        return
    ingest = open_ingest(Settings.model_validate_json(first))
    ingest.writer.start()
    # nothing here waits on a person: let a thread keep the GIL longer between hand-overs
    # (three threads pass the calls along), and collect garbage less often (each call
    # allocates dozens of short-lived objects; nothing here makes cycles worth the scans)
    sys.setswitchinterval(0.02)
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    acks = _Acks(out)
    sink = BatchingSink(ingest, on_settled=acks.settled).start()
    try:
        while (payload := _read_frame(inp)) is not None:
            seq, items = orjson.loads(payload)
            records: list[CallRecord] = []
            failed = 0
            error = None
            for item in items:
                try:
                    records.append(_record(item))
                except (TypeError, ValueError, KeyError) as exc:
                    failed += 1
                    error = f"{exc.__class__.__name__}: {exc}"[:500]
                    log.error("a gateway call could not be read: %s", error)
            acks.expect(seq, records, failed, error)
            for record in records:
                sink.submit(record)
    finally:
        sink.close()
        ingest.writer.close()
        ingest.engine.dispose()


if __name__ == "__main__":
    main()
