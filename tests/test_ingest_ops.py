"""Running ingestion: the ingest role alone, backpressure answered with Retry-After,
per-workspace redaction, and partitions and retention."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from panopticon.api.app import create_app
from panopticon.errors import ConfigError
from panopticon.services.traces import run_maintenance, update_trace_settings
from panopticon.settings import Settings
from panopticon.store.partitions import partition_names
from panopticon.store.tables import Span, Trace, Workspace
from panopticon.store.trace_writer import write_rows
from tests.test_ingest_api import ADMIN, BOOT, agent_trace
from tests.test_trace_writer import rows


def app_settings(settings: Settings, **kw: Any) -> Settings:
    return Settings(home=settings.home, database_url=settings.database_url, api_key=BOOT, **kw)


def test_the_ingest_role_serves_only_ingestion(settings: Settings) -> None:
    app = create_app(app_settings(settings), roles=["ingest"])
    with TestClient(app) as client:
        sent = client.post("/api/traces", json={"traces": [agent_trace()]}, headers=ADMIN)
        assert sent.status_code == 200 and sent.json()["accepted"] == 5
        assert client.post("/v1/traces", json={}, headers=ADMIN).status_code == 200
        assert client.get("/health").status_code == 200
        assert client.get("/api/traces", headers=ADMIN).status_code in (404, 405)
        assert client.get("/api/queries", headers=ADMIN).status_code == 404
        assert client.get("/ui/").status_code == 404
    with pytest.raises(ConfigError, match="unknown role"):
        create_app(app_settings(settings), roles=["gatewayy"])


def test_a_writer_that_is_behind_answers_429_with_retry_after(settings: Settings) -> None:
    app = create_app(app_settings(settings))
    with TestClient(app) as client:
        app.state.trace_writer.max_pending = 2
        r = client.post("/api/traces", json={"traces": [agent_trace()]}, headers=ADMIN)
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        assert "waiting to be written" in r.json()["error"]["message"]
        otlp = client.post(
            "/v1/traces",
            json={
                "resourceSpans": [
                    {
                        "scopeSpans": [
                            {
                                "spans": [
                                    {
                                        "traceId": secrets.token_hex(16),
                                        "spanId": secrets.token_hex(8),
                                        "name": "x",
                                        "startTimeUnixNano": str(
                                            int(datetime.now(UTC).timestamp() * 1e9)
                                        ),
                                    }
                                ]
                                * 3
                            }
                        ]
                    }
                ]
            },
            headers=ADMIN,
        )
        assert otlp.status_code == 429 and otlp.headers["Retry-After"] == "1"
        assert otlp.json()["code"] == 8  # RESOURCE_EXHAUSTED


def test_a_workspace_that_asks_for_redaction_never_stores_personal_data(
    settings: Settings,
) -> None:
    app = create_app(app_settings(settings))
    with TestClient(app) as client:
        assert client.put(
            "/api/trace-settings", json={"redact": True, "retention_days": 7}, headers=ADMIN
        ).json() == {"redact": True, "retention_days": 7}
        r = client.post(
            "/api/logs",
            json={
                "prompt": "I am ann@example.org, card 4242 4242 4242 4242",
                "response": "Noted.",
                "model": "gpt-4o",
            },
            headers=ADMIN,
        ).json()
        trace = client.get(f"/api/traces/{r['trace_ids'][0]}", headers=ADMIN).json()
        assert trace["spans"][0]["input_messages"][0]["content"] == "I am [EMAIL], card [CARD]"
        assert trace["input_text"] == "I am [EMAIL], card [CARD]"


# jwt.io's example token (HS256, {"sub": "1234567890", "name": "John Doe", "iat": ...})
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


def test_redaction_masks_a_bare_json_web_token_and_leaves_dotted_prose_alone(
    settings: Settings,
) -> None:
    prose = (
        "Release 1.4.2 ships eyJump.min.js and config.v2.final.yaml; see docs.example.org/a.b.c "
        "or the header eyJhbGciOiJIUzI1NiJ9 alone."
    )
    app = create_app(app_settings(settings))
    with TestClient(app) as client:
        client.put("/api/trace-settings", json={"redact": True}, headers=ADMIN)
        trace = {
            "name": "login",
            "spans": [
                {
                    "name": "llm",
                    "kind": "llm",
                    "model": "gpt-4o",
                    "input": f"My session is {JWT}, why am I logged out?",
                    "output": prose,
                    "status": "error",
                    "error": f"refused: id_token {JWT}.",
                    "attributes": {"http.cookie": f"session={JWT}", "note": prose},
                }
            ],
        }
        sent = client.post("/api/traces", json={"traces": [trace]}, headers=ADMIN).json()
        stored = client.get(f"/api/traces/{sent['trace_ids'][0]}", headers=ADMIN).json()
    span = stored["spans"][0]
    assert span["input_value"] == "My session is [KEY], why am I logged out?"
    assert span["error"] == "refused: id_token [KEY]."
    assert span["attributes"]["http.cookie"] == "session=[KEY]"
    assert span["output_value"] == prose  # nothing taken for a token
    assert span["attributes"]["note"] == prose


def test_maintenance_keeps_partitions_ahead_and_drops_what_retention_allows(
    engine: sa.Engine,
) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        other = conn.execute(
            sa.insert(Workspace).values(name="short", created_at=now).returning(Workspace.c.id)
        ).scalar_one()
    update_trace_settings(engine, other, retention_days=2, redact=False)
    old, recent = rows(3), rows(2)
    short_old = rows(2)
    for r in old + short_old:
        r["start_time"] -= timedelta(days=5)
        r["end_time"] -= timedelta(days=5)
    for r in short_old:
        r["workspace_id"] = other
    created = run_maintenance(engine, default_retention_days=30).created  # as at start-up
    with engine.begin() as conn:
        write_rows(conn, old + recent + short_old)
    report = run_maintenance(engine, default_retention_days=30)
    with engine.connect() as conn:
        by_ws = dict(
            conn.execute(
                sa.select(Span.c.workspace_id, sa.func.count()).group_by(Span.c.workspace_id)
            ).all()
        )
        traces = conn.scalar(sa.select(sa.func.count()).select_from(Trace))
    assert by_ws == {1: 5}, "the short-retention workspace's old spans are gone"
    assert report.deleted_spans == 2 and traces == 2
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            names = partition_names(conn, "span")
        ahead = now + timedelta(days=7)
        assert f"span_p{now:%Y%m%d}" in names and f"span_p{ahead:%Y%m%d}" in names
        assert len(created) == 2 * 9 and report.created == []
        assert "span_default" in names
        # a partition ten days old is dropped whole once every retention is shorter
        from panopticon.store.partitions import create_days

        day = (now - timedelta(days=10)).replace(hour=0, minute=0, second=0, microsecond=0)
        assert create_days(engine, day, day) == [f"trace_p{day:%Y%m%d}", f"span_p{day:%Y%m%d}"]
        dropped = run_maintenance(engine, default_retention_days=5).dropped
        assert sorted(dropped) == [f"span_p{day:%Y%m%d}", f"trace_p{day:%Y%m%d}"]


@pytest.mark.postgres_only
def test_partition_maintenance_never_deadlocks_a_reader_of_spans_and_traces(
    engine: sa.Engine,
) -> None:
    """A read that holds span and then asks for trace, while maintenance creates partitions
    of both (trace first): maintenance commits each partition on its own and gives way when a
    lock is held, so the reader goes on, and what was put off is made by the next run."""
    import threading

    run_maintenance(engine, default_retention_days=30)
    day = datetime.now(UTC) + timedelta(days=7)
    trace_p, span_p = f"trace_p{day:%Y%m%d}", f"span_p{day:%Y%m%d}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {trace_p}")
        conn.exec_driver_sql(f"DROP TABLE {span_p}")
    reports: list[Any] = []
    with engine.connect() as reader:
        reader.execute(sa.select(sa.func.count()).select_from(Span)).scalar()  # holds span
        worker = threading.Thread(
            target=lambda: reports.append(run_maintenance(engine, default_retention_days=30))
        )
        worker.start()
        deadline = time.monotonic() + 30
        with engine.connect() as probe:
            while trace_p not in partition_names(probe, "trace") and worker.is_alive():
                assert time.monotonic() < deadline, "maintenance held trace's new partition"
                probe.rollback()
                time.sleep(0.02)
        # the reader now asks for trace: before, maintenance held trace and waited for span
        assert reader.execute(sa.select(sa.func.count()).select_from(Trace)).scalar() == 0
        reader.commit()
    worker.join(30)
    assert not worker.is_alive()
    assert trace_p in reports[0].created
    again = run_maintenance(engine, default_retention_days=30).created
    with engine.connect() as conn:
        assert span_p in partition_names(conn, "span")
    assert span_p in reports[0].created + again


@pytest.mark.postgres_only
def test_a_day_whose_spans_went_to_the_default_partition_is_left_there_without_locking_it(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Making that day's partition would scan the default partition under an exclusive lock
    (held against ingest and readers) and fail, every hour: maintenance asks first."""
    run_maintenance(engine, default_retention_days=30)
    day = datetime.now(UTC) + timedelta(days=6)
    with engine.begin() as conn:
        for table in ("trace", "span"):
            conn.exec_driver_sql(f"DROP TABLE {table}_p{day:%Y%m%d}")
    late = rows(2)
    for r in late:
        r["start_time"] += timedelta(days=6)
        r["end_time"] += timedelta(days=6)
    with engine.begin() as conn:
        write_rows(conn, late)
    with engine.connect() as reader:  # a reader of the default partition, its lock held
        reader.exec_driver_sql("SELECT count(*) FROM span_default").scalar()
        with caplog.at_level("WARNING", logger="panopticon.store.partitions"):
            report = run_maintenance(engine, default_retention_days=30)
        reader.rollback()
    assert f"span_p{day:%Y%m%d}" not in report.created
    assert f"trace_p{day:%Y%m%d}" not in report.created
    assert f"spans of {day:%Y-%m-%d} went to the default partition" in caplog.text
    with engine.connect() as conn:  # still read as usual
        assert conn.scalar(sa.select(sa.func.count()).select_from(Span)) == 2


def _sockets(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="reads /proc (Linux)")
def test_serve_workers_share_the_connections_of_one_client_and_stop_together(
    settings: Settings, tmp_path: Path
) -> None:
    """A client that opens its connections at once (a Collector's exporter) is served by
    every worker process, not one; SIGTERM stops them all."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PANOPTICON_HOME": str(tmp_path),
        "PANOPTICON_API_KEY": BOOT,
        **({"PANOPTICON_DATABASE_URL": settings.database_url} if settings.database_url else {}),
    }
    command = [sys.executable, "-m", "panopticon", "serve", "--role", "ingest"]
    server = subprocess.Popen(
        [*command, "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    clients: list[httpx.Client] = []
    try:
        url = f"http://127.0.0.1:{port}/health"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url).status_code == 200 and len(_children(server.pid)) >= 2:
                    break
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
        workers = [p for p in _children(server.pid) if _sockets(p)]
        assert len(workers) == 2
        before = {p: _sockets(p) for p in workers}
        clients = [httpx.Client() for _ in range(16)]  # one connection each, kept open
        for client in clients:
            assert client.get(url).status_code == 200
        after = {p: _sockets(p) for p in workers}
        assert all(after[p] > before[p] for p in workers), (before, after)
    finally:
        for client in clients:
            client.close()
        server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
    assert not any(Path(f"/proc/{p}").exists() for p in workers)


def test_finishing_a_span_cuts_what_a_store_cannot_hold_and_copies_nothing_else() -> None:
    """``finish`` (JSON API and gateway spans) asks orjson whether a value is as it would be
    stored and copies only the values that are not: each ends as the general cut makes it."""
    from panopticon.ingest.model import Span as SpanIn
    from panopticon.ingest.model import TraceHints
    from panopticon.ingest.normalise import Limits, _cut, finish

    now = datetime.now(UTC)
    small = [{"role": "user", "content": "hi", "tool_calls": None}]
    odd: list[Any] = [
        {"role": "user", "content": "x" * 40},  # past the limit below
        {"n": 2**63, "f": float("nan"), "g": float("inf"), 1: "key"},
        {"ok": [1, True, None, 2.5, "null"]},
    ]
    for value in (small, odd, {"a": 2**60}, {"nested": {"deep": ["y" * 50]}}):
        span = SpanIn(
            trace_id="t" * 32,
            span_id="s" * 16,
            parent_id=None,
            name="n",
            kind="llm",
            start_time=now,
            end_time=now,
            input_messages=value if isinstance(value, list) else None,
            attributes=value if isinstance(value, dict) else None,
            hints=TraceHints(metadata={"m": "z" * 45}),
        )
        assert finish(span, now, Limits(max_value=32)) is None
        if isinstance(value, list):
            assert span.input_messages == _cut(value, 32)
        else:
            assert span.attributes == _cut(value, 32)
        assert span.hints.metadata == _cut({"m": "z" * 45}, 32)
    kept = SpanIn(
        trace_id="t" * 32,
        span_id="s" * 16,
        parent_id=None,
        name="n",
        kind="llm",
        start_time=now,
        end_time=now,
        input_messages=[{"role": "user", "content": "hi"}],
    )
    as_sent = kept.input_messages
    finish(kept, now)
    assert kept.input_messages is as_sent  # as it is: not copied


@pytest.mark.postgres_only
def test_two_servers_maintaining_at_once_both_finish_when_one_drops_a_partition_first(
    engine: sa.Engine,
) -> None:
    """Every ingest and API replica runs maintenance: two that both wait to drop the same
    old partition (a reader holds trace) both finish once it is gone, the second finding it
    dropped, and both go on to the rest of their work (the deletions past retention)."""
    import threading

    from panopticon.store.partitions import create_days

    run_maintenance(engine, default_retention_days=30)
    day = (datetime.now(UTC) - timedelta(days=10)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    assert create_days(engine, day, day) == [f"trace_p{day:%Y%m%d}", f"span_p{day:%Y%m%d}"]
    outcomes: list[Any] = []

    def maintain() -> None:
        try:
            outcomes.append(run_maintenance(engine, default_retention_days=5))
        except Exception as exc:
            outcomes.append(exc)

    waiting = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE 'DROP TABLE trace_p%' AND datname = current_database()"
    )
    with engine.connect() as reader, engine.connect() as probe:
        reader.execute(sa.select(sa.func.count()).select_from(Trace)).scalar()  # holds trace
        workers = [threading.Thread(target=maintain) for _ in range(2)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while probe.execute(waiting).scalar() < 2:  # both wait behind the reader
            assert time.monotonic() < deadline and all(w.is_alive() for w in workers), outcomes
            probe.rollback()
            time.sleep(0.01)
        reader.commit()
    for worker in workers:
        worker.join(60)
    assert len(outcomes) == 2 and not [o for o in outcomes if isinstance(o, Exception)], outcomes
    with engine.connect() as conn:
        assert f"trace_p{day:%Y%m%d}" not in partition_names(conn, "trace")
        assert f"span_p{day:%Y%m%d}" not in partition_names(conn, "span")


@pytest.mark.postgres_only
def test_maintenance_that_may_not_create_a_partition_fails_loudly_instead_of_skipping_days(
    engine: sa.Engine,
) -> None:
    """A server whose database role may not create tables (or whose connection is lost
    mid-way) must say maintenance failed: it used to take every refused CREATE for "rows
    of that day are in the default partition" and skip each day in silence, every hour."""
    from panopticon.store.partitions import create_days

    run_maintenance(engine, default_retention_days=30)
    role = f"pano_noddl_{os.getpid()}_{secrets.token_hex(3)}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {role}")
    limited = sa.create_engine(engine.url.set(username=role))
    try:
        day = (datetime.now(UTC) + timedelta(days=30)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        with pytest.raises(sa.exc.DBAPIError) as refused:
            create_days(limited, day, day)
        assert "owner" in str(refused.value) or "permission" in str(refused.value)
        assert create_days(engine, day, day) == [f"trace_p{day:%Y%m%d}", f"span_p{day:%Y%m%d}"]
    finally:
        limited.dispose()
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
