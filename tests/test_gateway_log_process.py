"""The gateway's log writer in a process of its own (the default): a writer that dies is
started again and sent what it had not written; the server killed with ``kill -9`` leaves
a writer that writes what it was sent and exits; Ctrl-C in the server's terminal stops the
server, not the writer, so the shutdown writes every call."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from panopticon.gateway.log_process import ProcessSink
from panopticon.settings import Settings
from panopticon.store.tables import Span as SpanTable
from panopticon.store.tables import Trace as TraceTable
from tests.conftest import free_port
from tests.gateway_harness import wait_for
from tests.test_gateway import ensure_workspace_id
from tests.test_gateway_logging import BODY, BOOT, gw_settings, record, registered, stored_spans
from tests.test_ingest_ops import _children

__all__ = ["gw_settings", "registered"]  # fixtures, imported to be used here

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


@contextlib.contextmanager
def writes_blocked(engine: sa.Engine) -> Iterator[None]:
    """Every write to the trace tables waits: an exclusive lock on SQLite, the tables
    locked on PostgreSQL."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN EXCLUSIVE")
        else:
            conn.exec_driver_sql("BEGIN")
            conn.exec_driver_sql("LOCK TABLE trace, span IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.exec_driver_sql("ROLLBACK")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_writer_killed_mid_batch_is_started_again_and_sent_what_it_had_not_written(
    settings: Settings, engine: sa.Engine
) -> None:
    ws = ensure_workspace_id(engine, "default")
    sink = ProcessSink(settings, interval_s=0.01, restart_s=0.1).start()
    try:
        with writes_blocked(engine):
            for i in range(20):
                sink.submit(record(i, ws))
            wait_for(lambda: sink.unacknowledged == 20, what="20 calls sent to the writer")
            first = sink.writer_pid
            assert first is not None
            os.kill(first, signal.SIGKILL)
            wait_for(lambda: sink.writer_pid not in (None, first), what="another writer started")
        wait_for(lambda: sink.written == 20, what="the 20 calls written by the new writer")
        assert (sink.restarts, sink.failed, sink.dropped, sink.pending) == (1, 0, 0, 0)
        assert "exit code -9" in (sink.last_error or "")
    finally:
        sink.close()
    assert stored_spans(engine) == 20
    with engine.connect() as conn:  # written once each, though sent twice
        assert conn.exec_driver_sql("SELECT count(*) FROM score").scalar() == 20


class _Watched(ProcessSink):
    """A sink that notes what ``pending`` says while each batch, taken off the queue, is
    being serialised (before it is kept as unacknowledged)."""

    seen: list[tuple[int, int]]

    def _frame(self, batch: list[Any]) -> bytes | None:
        self.seen.append((len(batch), self.pending))
        return super()._frame(batch)


def test_pending_counts_a_batch_while_it_is_being_serialised(
    settings: Settings, engine: sa.Engine
) -> None:
    """flush() waits until pending is 0: a batch taken off the queue and not yet kept as
    unacknowledged (serialising 1,000 calls takes a while) was counted nowhere, so flush()
    (and GET /health's pending) could say 'all durable' with a batch not even sent."""
    ws = ensure_workspace_id(engine, "default")
    sink = _Watched(settings, interval_s=0.01, max_batch=7)
    sink.seen = []
    for i in range(7):  # queued before the sender starts: its first batch takes them all
        sink.submit(record(i, ws))
    sink.start()
    try:
        assert sink.flush(30)
        for i in range(7, 20):
            sink.submit(record(i, ws))
        assert sink.flush(30)
    finally:
        sink.close()
    assert sink.seen[0] == (7, 7), sink.seen  # was (7, 0): nothing pending
    assert all(pending >= size for size, pending in sink.seen), sink.seen
    assert stored_spans(engine) == 20


def _serve(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PANOPTICON_HOME": str(settings.home),
        "PANOPTICON_API_KEY": BOOT,
        **({"PANOPTICON_DATABASE_URL": settings.database_url} if settings.database_url else {}),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "panopticon", "serve", "--role", "gateway", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: a terminal's Ctrl-C is sent to one
    )

    def up() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
        return False

    wait_for(up, timeout=60, what="the gateway to serve")
    return server


def _call(port: int, key: str) -> int:
    return httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json=BODY,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ).status_code


def test_kill_9_of_the_server_leaves_a_writer_that_writes_what_it_was_sent_and_exits(
    gw_settings: Settings, engine: sa.Engine, registered: str
) -> None:
    port = free_port()
    server = _serve(gw_settings, port)
    try:
        assert [_call(port, registered) for _ in range(10)] == [200] * 10
        wait_for(lambda: stored_spans(engine) == 10, what="the first 10 calls stored")

        def health() -> dict[str, Any]:  # the gateway's own, served alone
            return dict(httpx.get(f"http://127.0.0.1:{port}/health").json())

        # acknowledged by the writer once stored (the count may lag the rows a moment)
        wait_for(lambda: health()["log"]["written"] == 10, what="10 calls acknowledged")
        assert health()["status"] == "ok" and health()["log"]["writer"] == "process"
        assert (health()["log"]["failed"], health()["log"]["pending"]) == (0, 0)
        (writer,) = _children(server.pid)
        with writes_blocked(engine):  # the next calls wait in the writer, unwritten
            assert [_call(port, registered) for _ in range(10)] == [200] * 10
            server.kill()
            server.wait(30)
            assert alive(writer)  # the server is gone; its writer is not
        wait_for(lambda: not alive(writer), what="the writer to finish and exit")
        # every call the server had handed over is stored; at most the last interval's
        # (50 ms) calls were still in the server's memory when it was killed
        assert 10 <= stored_spans(engine) <= 20
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(30)


def test_ctrl_c_in_the_servers_terminal_stops_the_server_and_every_call_is_written(
    gw_settings: Settings, engine: sa.Engine, registered: str
) -> None:
    port = free_port()
    server = _serve(gw_settings, port)
    try:
        assert [_call(port, registered) for _ in range(30)] == [200] * 30
        (writer,) = _children(server.pid)
        os.killpg(server.pid, signal.SIGINT)  # what Ctrl-C does: the whole process group
        assert server.wait(60) == 0
        assert not alive(writer)
        assert stored_spans(engine) == 30
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(30)


def test_a_calls_odd_values_are_stored_made_storable_never_lost(
    settings: Settings, engine: sa.Engine
) -> None:
    """A client's integer past 64 bits, a lone surrogate and a NUL in its text: the call is
    stored (the integer as its digits, the others as U+FFFD) on every database."""
    ws = ensure_workspace_id(engine, "default")
    odd = record(0, ws)
    odd.input_messages = [{"role": "user", "content": "nul \x00 here", "n": 2**70}]
    odd.output_text = "lone \ud800 surrogate"
    odd.user_id = "user\x00x"
    plain = record(1, ws)
    sink = ProcessSink(settings, interval_s=0.01).start()
    try:
        sink.submit(odd)
        sink.submit(plain)
        wait_for(lambda: sink.written + sink.failed == 2, what="both calls settled")
        assert (sink.written, sink.failed) == (2, 0), sink.last_error
    finally:
        sink.close()
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(SpanTable.c.input_messages, SpanTable.c.output_messages).where(
                SpanTable.c.span_id == odd.span_id
            )
        ).one()
        user = conn.execute(
            sa.select(TraceTable.c.user_id).where(TraceTable.c.id == odd.trace_id)
        ).scalar()
    assert row.input_messages[0]["content"] == "nul \ufffd here"
    assert row.input_messages[0]["n"] == str(2**70)
    assert row.output_messages[0]["content"] == "lone \ufffd surrogate"
    assert user == "user\ufffdx"


def test_a_value_nested_past_what_orjson_writes_is_stored_cut_and_the_writer_goes_on(
    settings: Settings, engine: sa.Engine
) -> None:
    """A call whose values nest past orjson's 254 levels stopped the thread that sends every
    call to the writer: none was logged again. It is stored with the deep part replaced."""
    ws = ensure_workspace_id(engine, "default")
    deep: Any = "x"
    for _ in range(1000):  # as deep as the gateway's JSON parser reads
        deep = [deep]
    odd = record(0, ws)
    odd.input_messages = [{"role": "user", "content": "hi", "extra": deep}]
    plain = record(1, ws)
    sink = ProcessSink(settings, interval_s=0.01).start()
    try:
        sink.submit(odd)
        wait_for(lambda: sink.written + sink.failed == 1, what="the deep call settled")
        sink.submit(plain)
        wait_for(lambda: sink.written + sink.failed == 2, what="the call after it settled")
        assert (sink.written, sink.failed) == (2, 0), sink.last_error
    finally:
        sink.close()
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(SpanTable.c.input_messages).where(SpanTable.c.span_id == odd.span_id)
        ).one()
    kept = row.input_messages[0]["extra"]
    while isinstance(kept, list):
        kept = kept[0]
    assert isinstance(kept, str) and "not kept" in kept


def test_a_large_batch_goes_in_parts_and_unsent_bytes_are_bounded(
    settings: Settings, engine: sa.Engine
) -> None:
    ws = ensure_workspace_id(engine, "default")
    sink = ProcessSink(settings, interval_s=0.01, max_frame_bytes=3000).start()
    try:
        for i in range(12):  # about 1 KB each: one batch, sent as several frames
            sink.submit(record(i, ws))
        wait_for(lambda: sink.written == 12, what="12 calls written")
        assert (sink.failed, sink.dropped) == (0, 0)
    finally:
        sink.close()
    assert stored_spans(engine) == 12

    # while the writer cannot write, calls sent and unwritten are kept to be sent again,
    # up to a number of bytes: past it, calls are dropped and counted, never kept unbounded
    sink = ProcessSink(settings, interval_s=0.01, max_unsent_bytes=5000).start()
    try:
        with writes_blocked(engine):
            sink.submit(record(100, ws))
            wait_for(lambda: sink.unacknowledged == 1, what="a call sent")
            for i in range(101, 120):
                sink.submit(record(i, ws))
                wait_for(lambda: sink.pending == sink.unacknowledged, what="the call taken")
            assert sink.dropped > 0
        wait_for(lambda: sink.pending == 0, what="the rest written")
        assert sink.written + sink.dropped == 20 and sink.failed == 0
    finally:
        sink.close()


def test_a_writer_that_dies_at_start_is_started_again_ever_more_slowly(
    settings: Settings,
) -> None:
    import time

    broken = [sys.executable, "-c", "raise SystemExit(3)"]
    sink = ProcessSink(settings, restart_s=0.1, command=broken).start()
    started = time.monotonic()
    try:
        wait_for(lambda: sink.restarts >= 4, what="four restarts")
        # waits of 0.2, 0.4, 0.8 s at least between them: not a start every 0.1 s
        assert time.monotonic() - started >= 1.4
        assert "exit code 3" in (sink.last_error or "")
    finally:
        sink.close(timeout_s=1)  # nothing to write: it stops at once
