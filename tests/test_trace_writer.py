"""The trace writer acknowledges a batch only when it is durable: with the database
unavailable, acknowledged spans are spooled to disk and all arrive once it returns, also
across a restart of the process."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from panopticon.ingest.model import Span, TraceHints
from panopticon.services.ingest import span_row
from panopticon.settings import Settings
from panopticon.store.engine import create_engine
from panopticon.store.tables import Span as SpanTable
from panopticon.store.tables import Trace
from panopticon.store.trace_writer import TraceWriter
from tests.conftest import _admin_url


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def rows(n: int, trace_id: str | None = None) -> list[dict[str, Any]]:
    trace_id = trace_id or secrets.token_hex(16)
    t0 = datetime.now(UTC) - timedelta(seconds=10)
    out = []
    for i in range(n):
        span = Span(
            trace_id=trace_id,
            span_id=secrets.token_hex(8),
            parent_id=None,
            name=f"s{i}",
            kind="llm",
            start_time=t0 + timedelta(milliseconds=i),
            end_time=t0 + timedelta(milliseconds=i + 5),
            input_tokens=3,
            output_tokens=1,
            input_messages=[{"role": "user", "content": "hi"}],
            hints=TraceHints(session_id="s", tags=["t"]),
        )
        out.append(span_row(1, span))
    return out


@contextmanager
def database_down(engine: sa.Engine, settings: Settings) -> Iterator[None]:
    """The database refuses the writer: an exclusive lock on SQLite (the writer's engine
    gives up after 50 ms), refused connections on PostgreSQL."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as blocker:
            blocker.exec_driver_sql("BEGIN EXCLUSIVE")
            yield
            blocker.exec_driver_sql("ROLLBACK")
        return
    name = engine.url.database
    admin = sa.create_engine(
        _admin_url(settings.resolved_database_url), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        try:
            yield
        finally:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    admin.dispose()


def writer_engine(settings: Settings) -> sa.Engine:
    if settings.is_sqlite:
        return sa.create_engine(
            settings.resolved_database_url,
            connect_args={"timeout": 0.05, "check_same_thread": False},
        )
    return create_engine(settings)


def counts(engine: sa.Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        spans = conn.scalar(sa.select(sa.func.count()).select_from(SpanTable)) or 0
        traces = conn.scalar(sa.select(sa.func.count()).select_from(Trace)) or 0
    return spans, traces


def test_acknowledged_spans_survive_the_database_going_away(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    wengine = writer_engine(settings)
    writer = TraceWriter(wengine, spool, window_s=0.01, retry_s=0.1).start()
    try:
        writer.submit(rows(10)).result(timeout=30)
        assert counts(engine) == (10, 1)
        with database_down(engine, settings):
            acked = [writer.submit(rows(10)) for _ in range(3)]
            for future in acked:
                future.result(timeout=30)  # acknowledged: in the spool, fsynced
            assert writer.stats().degraded and list(spool.glob("spans-*"))
            assert writer.stats().spooled == 30
        wait_for(lambda: counts(engine) == (40, 4))
        wait_for(lambda: not list(spool.glob("*")) and not writer.stats().degraded)
        writer.submit(rows(5)).result(timeout=30)
        assert counts(engine) == (45, 5)
    finally:
        writer.close()
        wengine.dispose()


def test_spans_spooled_by_a_process_that_stopped_are_written_by_the_next(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    wengine = writer_engine(settings)
    first = TraceWriter(wengine, spool, window_s=0.01, retry_s=0.1).start()
    trace_id = secrets.token_hex(16)
    with database_down(engine, settings):
        first.submit(rows(7, trace_id)).result(timeout=30)
        first.close()  # the database is still down: the spool stays
        assert list(spool.glob("*.jsonl"))
    wengine.dispose()
    assert counts(engine) == (0, 0)
    wengine = writer_engine(settings)
    second = TraceWriter(wengine, spool, window_s=0.01, retry_s=0.1).start()
    try:
        wait_for(lambda: counts(engine) == (7, 1))
        with engine.connect() as conn:
            trace = conn.execute(sa.select(Trace)).one()
        assert trace.span_count == 7 and trace.session_id == "s" and trace.input_tokens == 21
        wait_for(lambda: not list(spool.glob("*")))
    finally:
        second.close()
        wengine.dispose()


def test_a_span_sent_twice_is_stored_once_and_counted_once(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    batch = rows(4)
    writer = TraceWriter(engine, tmp_path / "spool", window_s=0.01).start()
    try:
        writer.submit(batch).result(timeout=30)
        writer.submit(batch).result(timeout=30)
    finally:
        writer.close()
    assert counts(engine) == (4, 1)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(Trace.c.input_tokens)) == 12


def test_a_request_the_database_refuses_does_not_sink_the_others_in_its_batch(
    engine: sa.Engine, tmp_path: Path
) -> None:
    import pytest

    from panopticon.store.trace_writer import BatchRejected

    writer = TraceWriter(engine, tmp_path / "spool", window_s=0.5).start()
    try:
        bad = rows(2)
        bad[0]["attributes"] = {"not json": {1, 2}}  # a set: no JSON column stores it
        good = writer.submit(rows(3))
        refused = writer.submit(bad)
        good.result(timeout=30)
        with pytest.raises(BatchRejected, match="could not be stored"):
            refused.result(timeout=30)
    finally:
        writer.close()
    assert counts(engine) == (3, 1)
    assert not list((tmp_path / "spool").glob("*")), "refused data is not spooled"


def test_scores_that_come_with_a_span_are_stored_with_it_once_however_often_it_is_written(
    engine: sa.Engine, tmp_path: Path
) -> None:
    from panopticon.ingest.model import ScoreIn
    from panopticon.services.database import workspace_id
    from panopticon.store.tables import Score

    ws = workspace_id(engine, "default")
    (row,) = rows(1)
    verdict = ScoreIn(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        name="guardrail.pii",
        value=0.0,
        label="redact",
        comment="an email address",
        source="guardrail",
        passed=False,
        details={"stage": "input", "latency_ms": 0.2},
    )
    span = Span(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_id=None,
        name="gateway chat.completions",
        kind="llm",
        start_time=row["start_time"],
        end_time=row["end_time"],
    )
    with_scores = span_row(ws, span, [verdict])
    writer = TraceWriter(engine, tmp_path / "spool", window_s=0.01).start()
    try:
        writer.submit([with_scores]).result(timeout=30)
        writer.submit([with_scores]).result(timeout=30)  # as a spool replayed twice would
    finally:
        writer.close()
    with engine.connect() as conn:
        (score,) = conn.execute(sa.select(Score)).all()
    assert (score.trace_id, score.span_id, score.source) == (
        row["trace_id"],
        row["span_id"],
        "guardrail",
    )
    assert score.passed is False and score.label == "redact"
    assert score.details == {"stage": "input", "latency_ms": 0.2}


def one_span_rows() -> list[dict[str, Any]]:
    """One-span traces of every shape a fast path could get wrong."""
    t0 = datetime.now(UTC) - timedelta(seconds=10)

    def one(**fields: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "trace_id": secrets.token_hex(16),
            "span_id": secrets.token_hex(8),
            "parent_id": None,
            "name": "gateway chat.completions",
            "kind": "llm",
            "start_time": t0,
            "end_time": t0 + timedelta(milliseconds=7),
        }
        return span_row(1, Span(**{**base, **fields}))

    return [
        one(
            status="ok",
            model_requested="gpt-4o-mini",
            model_served="gpt-4o-mini-2024-07-18",
            input_messages=[{"role": "user", "content": "hi"}],
            output_messages=[{"role": "assistant", "content": "hello"}],
            input_tokens=3,
            output_tokens=1,
            cost_usd=0.001,
            hints=TraceHints(
                session_id="s", user_id="u", tags=["b", "a", "b"], metadata={"gateway_key": "k"}
            ),
        ),
        one(status="error", error="upstream 502", name="x" * 500),
        one(status="error", error="", kind="embedding", input_value="text in"),
        one(parent_id="00000000000000aa", kind="tool", output_value="out", model_served="m"),
        one(hints=TraceHints(environment="", release="1.2", tenant_id="t")),
    ]


def test_a_one_span_trace_gets_the_row_the_general_aggregation_makes_of_it() -> None:
    from panopticon.store.trace_writer import _one_span_trace, _trace_row

    now = datetime.now(UTC)
    for row in one_span_rows():
        assert _one_span_trace(1, row, now) == _trace_row(1, row["trace_id"], [row], {}, None, now)


def test_rows_written_through_the_sqlite_driver_read_back_as_the_tables_write_them(
    engine: sa.Engine, tmp_path: Path
) -> None:
    from panopticon.store.trace_writer import write_rows

    written = one_span_rows()
    with engine.begin() as conn:
        write_rows(conn, written)
        # the same spans again under new ids, through SQLAlchemy's own types
        columns = [c.name for c in SpanTable.columns]
        twins = [{**{c: r.get(c) for c in columns}, "trace_id": "t" + r["trace_id"][1:]}
                 for r in written]  # fmt: skip
        conn.execute(sa.insert(SpanTable), twins)
    with engine.connect() as conn:
        got = {r.trace_id: r._mapping for r in conn.execute(sa.select(SpanTable))}
        if engine.dialect.name == "sqlite":  # the stored text itself, times and JSON alike
            query = "SELECT trace_id, start_time, end_time, input_messages, attributes FROM span"
            raw = {r[0]: r[1:] for r in conn.exec_driver_sql(query)}
            for r in written:
                assert raw[r["trace_id"]] == raw["t" + r["trace_id"][1:]]
    for r in written:
        mine, twin = dict(got[r["trace_id"]]), dict(got["t" + r["trace_id"][1:]])
        assert mine == {**twin, "trace_id": r["trace_id"]}
        assert (
            mine["start_time"] == r["start_time"] and mine["input_messages"] == r["input_messages"]
        )


def test_a_connection_lost_in_the_drivers_hands_counts_as_the_database_away(
    engine: sa.Engine, tmp_path: Path
) -> None:
    writer = TraceWriter(engine, tmp_path / "spool")
    dbapi: Any = engine.dialect.dbapi
    # COPY on PostgreSQL talks to the driver directly: its errors are not SQLAlchemy's
    assert writer._database_away(dbapi.OperationalError("server closed the connection"))
    assert writer._database_away(sa.exc.OperationalError("x", {}, Exception("locked")))
    assert not writer._database_away(TypeError("Type is not JSON serializable: set"))


def test_a_traces_text_is_stored_once_and_every_word_of_it_is_still_found(
    engine: sa.Engine,
) -> None:
    """A one-turn call's question and answer are its trace's input and output text, not
    repeated in its search text; what those do not hold (earlier turns, other spans, an
    input the root span replaced when it came later) is, and text search finds it all."""
    from panopticon.store.queries.traces import TraceFilters, search_traces
    from panopticon.store.trace_writer import write_rows

    t0 = datetime.now(UTC) - timedelta(seconds=10)

    def span(trace_id: str, parent: str | None, at: int, **fields: Any) -> dict[str, Any]:
        return span_row(
            1,
            Span(
                trace_id=trace_id,
                span_id=secrets.token_hex(8),
                parent_id=parent,
                name="s",
                kind="llm",
                start_time=t0 + timedelta(milliseconds=at),
                end_time=t0 + timedelta(milliseconds=at + 5),
                **fields,
            ),
        )

    one_turn, chat, late_root = (secrets.token_hex(16) for _ in range(3))
    root_id = secrets.token_hex(8)
    batches = [
        [
            span(
                one_turn,
                None,
                0,
                input_messages=[{"role": "user", "content": "Which quokka jumps?"}],
                output_messages=[{"role": "assistant", "content": "The marsupial one."}],
            ),
            span(
                chat,
                None,
                0,
                input_messages=[
                    {"role": "system", "content": "Speak like a pirate."},
                    {"role": "user", "content": "Ahoy there"},
                    {"role": "assistant", "content": "Arr, matey"},
                    {"role": "user", "content": "Where be the treasure?"},
                ],
                output_messages=[{"role": "assistant", "content": "Under the palm tree."}],
            ),
            # a child span first: its input stands for the trace's until the root comes
            span(late_root, root_id, 10, input_value="child question about zebras"),
        ],
        [span(late_root, None, 0, input_value="root question", output_value="root answer")],
    ]
    for batch in batches:
        with engine.begin() as conn:
            write_rows(conn, batch)
    with engine.connect() as conn:
        stored = {
            r.id: r
            for r in conn.execute(
                sa.select(Trace.c.id, Trace.c.input_text, Trace.c.output_text, Trace.c.search_text)
            )
        }

        def found(text: str) -> set[str]:
            return {t["id"] for t in search_traces(conn, 1, TraceFilters(text=text))[0]}

        assert stored[one_turn].input_text == "Which quokka jumps?"
        assert stored[one_turn].output_text == "The marsupial one."
        assert stored[one_turn].search_text is None  # held once, by the two above
        assert stored[chat].input_text == "Where be the treasure?"
        assert stored[chat].search_text == "Speak like a pirate.\nAhoy there\nArr, matey"
        assert stored[late_root].input_text == "root question"
        assert "child question about zebras" in stored[late_root].search_text
        assert found("QUOKKA") == {one_turn} and found("marsupial one") == {one_turn}
        assert found("pirate") == {chat} and found("arr, mat") == {chat}
        assert found("treasure") == {chat} and found("palm tree") == {chat}
        assert found("zebras") == {late_root} and found("root answer") == {late_root}
        assert found("no such words") == set()
