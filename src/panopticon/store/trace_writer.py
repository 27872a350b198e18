"""The trace writer: spans batched off the request path, acknowledged only when durable.

``submit(rows)`` queues a request's spans and returns a future. A writer thread gathers
what is queued within ``window_s`` (or up to ``max_batch`` spans) and writes it in one
transaction: spans inserted (``COPY`` into a staging table on PostgreSQL, a multi-row
insert on SQLite; a span sent twice is stored once), then each touched trace's row
recomputed from its spans and upserted. The futures resolve when that commits.

When the database cannot be written, the batch is appended to a spool file under
``spool_dir`` and fsynced *before* the futures resolve: so an acknowledged span is on disk
either way. While spooling, new batches go straight to the spool; every ``retry_s`` the
writer tries to replay the spool into the database and, when that works, deletes the
files and writes to the database again. Spool files left by a process that died are
replayed by the next writer to start on the same ``spool_dir``. ``close()`` writes (or
spools) everything queued before it returns.

Backpressure: more than ``max_pending`` spans waiting, or a spool past ``max_spool_bytes``,
and ``submit`` raises :class:`Backpressure` (the ingest endpoint answers 429 or 503 with
Retry-After) instead of growing without bound.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import itertools
import logging
import operator
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from panopticon.store.engine import json_text
from panopticon.store.queries.traces import save_span_scores
from panopticon.store.span_text import span_input_output
from panopticon.store.tables import OnlineInbox, OnlineRule, Span, Trace
from panopticon.store.text_index import SEARCHED_CHARS

__all__ = [
    "MAX_SEARCH_TEXT",
    "Backpressure",
    "BatchRejected",
    "TraceWriter",
    "WriterStats",
    "write_rows",
]

log = logging.getLogger(__name__)

SPAN_COLUMNS = [c.name for c in Span.columns]
MAX_SEARCH_TEXT = SEARCHED_CHARS  # characters of a trace's texts that text search reads
_TIMES = ("start_time", "end_time")
_JSON = {"input_messages", "output_messages", "documents", "attributes", "events"}


class BatchRejected(Exception):
    """The database refused a request's spans (a value it cannot store)."""


class Backpressure(Exception):
    """Too much is waiting to be written: the client should retry after ``retry_after``."""

    def __init__(self, message: str, retry_after: int, status: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


@dataclass(frozen=True)
class WriterStats:
    pending: int
    written: int
    spooled: int
    replayed: int
    spool_bytes: int
    degraded: bool


def _day(moment: datetime) -> datetime:
    return _day_of(moment.astimezone(UTC).date())


@functools.lru_cache(maxsize=64)
def _day_of(day: date) -> datetime:  # every span of a batch is of the same day or two
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _span_texts(row: dict[str, Any]) -> Iterable[str]:
    yield from (row.get("input_value") or "", row.get("output_value") or "")
    for key in ("input_messages", "output_messages"):
        messages = row.get(key)
        if isinstance(messages, list):
            for m in messages:
                if isinstance(m, dict):
                    content = m.get("content")
                    if isinstance(content, str):
                        yield content
                    for call in m.get("tool_calls") or ():
                        if isinstance(call, dict) and isinstance(call.get("arguments"), str):
                            yield call["arguments"]


def _search_text(
    inp: str | None,
    out: str | None,
    previous: Iterable[str | None],
    spans: Iterable[dict[str, Any]],
) -> str | None:
    """A trace's ``search_text``: the ``previous`` texts (its stored input, output and
    search text) and its spans' inputs and outputs that its input ``inp`` and output
    ``out`` do not hold (text search reads all three: store.text_index), deduplicated, one
    per line, cut at :data:`MAX_SEARCH_TEXT`. None when they hold it all (a one-turn call):
    a trace's text is stored once beside its span's."""
    text = ""
    inp, out = inp or "", out or ""
    for piece in itertools.chain(previous, *map(_span_texts, spans)):
        if len(text) >= MAX_SEARCH_TEXT:
            return text[:MAX_SEARCH_TEXT]
        if piece and piece not in inp and piece not in out and piece not in text:
            text = f"{text}\n{piece}" if text else piece
    return text[:MAX_SEARCH_TEXT] or None


# --- the write itself ----------------------------------------------------------------------


_JSON_AT = [i for i, c in enumerate(SPAN_COLUMNS) if c in _JSON]


_SPAN_GETTER = operator.itemgetter(*SPAN_COLUMNS)


def _copy_values(row: dict[str, Any]) -> list[Any]:
    """A span's COPY row. Per span on the hot path: every column in one C call when the
    row has them all (as rows from ``span_row`` do; else one look-up per column, a missing
    one NULL), JSON written by orjson only for the JSON columns that have a value."""
    try:
        values = list(_SPAN_GETTER(row))
    except KeyError:
        values = [row.get(c) for c in SPAN_COLUMNS]
    for i in _JSON_AT:
        if values[i] is not None:
            values[i] = orjson.dumps(values[i]).decode()
    return values


def _sqlite_time(value: datetime) -> str:
    """A time as SQLAlchemy's SQLite ``DATETIME`` stores it (UTC, to the microsecond), so
    rows written here and through the tables compare and read back alike."""
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:-6]  # without its "+00:00"


_SPAN_TIMES_AT = [i for i, c in enumerate(SPAN_COLUMNS) if c in _TIMES]
_SPAN_VALUES = (SPAN_COLUMNS, operator.itemgetter(*SPAN_COLUMNS))
_SQLITE_ROWS = 32  # rows per INSERT statement on SQLite


@functools.cache
def _sqlite_insert_sql(table: str, columns: tuple[str, ...], tail: str, rows: int) -> str:
    one = f"({', '.join('?' * len(columns))})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * rows)} {tail}"


def _sqlite_insert(
    conn: Connection, table: str, columns: list[str], tail: str, rows: list[tuple[Any, ...]]
) -> None:
    """Insert value tuples through the driver, :data:`_SQLITE_ROWS` rows a statement (then
    one a statement for the rest). The driver lets go of the GIL while SQLite steps a
    statement and must take it back after: one row a statement, that was twice a row for
    the writer's thread to wait for the event loop's (and the event loop's for it); the
    values are bound the same either way. Errors are SQLAlchemy's (``exec_driver_sql``),
    so an unavailable database still spools."""
    names = tuple(columns)
    whole = len(rows) - len(rows) % _SQLITE_ROWS
    if whole:
        conn.exec_driver_sql(
            _sqlite_insert_sql(table, names, tail, _SQLITE_ROWS),
            [
                tuple(itertools.chain.from_iterable(rows[i : i + _SQLITE_ROWS]))
                for i in range(0, whole, _SQLITE_ROWS)
            ],
        )
    if whole < len(rows):
        conn.exec_driver_sql(_sqlite_insert_sql(table, names, tail, 1), rows[whole:])


def _sqlite_values(
    row: dict[str, Any],
    columns: tuple[list[str], operator.itemgetter[Any]],
    times_at: list[int],
    json_at: list[int],
    times: dict[datetime, str],
) -> tuple[Any, ...]:
    """A row's values (``columns``: names, and a getter of them all) as the SQLite driver
    takes them, serialised as the table's column types would (times by
    :func:`_sqlite_time`, JSON by the engine's serializer): the driver's ``executemany``
    then skips SQLAlchemy's per-row, per-column processing. A column the row lacks is
    NULL. ``times`` remembers the text of each time for the batch (a trace's times are its
    span's, and every row of a batch has the same ``updated_at``)."""
    names, getter = columns
    try:
        values = list(getter(row))
    except KeyError:
        values = [row.get(c) for c in names]
    for i in times_at:
        moment = values[i]
        if moment is not None:
            text = times.get(moment)
            if text is None:
                text = times[moment] = _sqlite_time(moment)
            values[i] = text
    for i in json_at:
        if values[i] is not None:
            values[i] = json_text(values[i])
    return tuple(values)


def _insert_spans(
    conn: Connection,
    rows: list[dict[str, Any]],
    *,
    may_exist: bool,
    times: dict[datetime, str] | None = None,
) -> None:
    """Insert spans. ``may_exist``: some may be stored already (their trace has a row), so
    conflicts are skipped; otherwise (a new trace: none of its spans can be stored, see
    :func:`write_rows`) PostgreSQL copies them straight into the table."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        dbapi: Any = conn.connection.driver_connection
        cols = ", ".join(SPAN_COLUMNS)
        with dbapi.cursor() as cur:
            if not may_exist:
                with cur.copy(f"COPY span ({cols}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(_copy_values(row))
                return
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS span_stage (LIKE span INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS"
            )
            with cur.copy(f"COPY span_stage ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(_copy_values(row))
            cur.execute(
                f"INSERT INTO span ({cols}) SELECT {cols} FROM span_stage ON CONFLICT DO NOTHING"
            )
        return
    times = {} if times is None else times
    _sqlite_insert(
        conn,
        "span",
        SPAN_COLUMNS,
        "ON CONFLICT DO NOTHING",
        [_sqlite_values(r, _SPAN_VALUES, _SPAN_TIMES_AT, _JSON_AT, times) for r in rows],
    )


_TRACE_KEY = ("workspace_id", "id", "bucket")
_TRACE_COLUMNS = [c.name for c in Trace.columns]
_TRACE_JSON_AT = [i for i, c in enumerate(_TRACE_COLUMNS) if c in ("tags", "metadata", "models")]
_TRACE_VALUES = (_TRACE_COLUMNS, operator.itemgetter(*_TRACE_COLUMNS))
_TRACE_TIMES = ("bucket", "start_time", "end_time", "updated_at")
_TRACE_TIMES_AT = [i for i, c in enumerate(_TRACE_COLUMNS) if c in _TRACE_TIMES]
_TRACE_UPDATE = f"ON CONFLICT ({', '.join(_TRACE_KEY)}) DO UPDATE SET " + ", ".join(
    f"{c} = EXCLUDED.{c}" for c in _TRACE_COLUMNS if c not in _TRACE_KEY
)
_TRACE_UPSERT = (
    f"INSERT INTO trace ({', '.join(_TRACE_COLUMNS)}) SELECT {', '.join(_TRACE_COLUMNS)} "
    f"FROM trace_stage {_TRACE_UPDATE}"
)


def _upsert_traces(
    conn: Connection, values: list[dict[str, Any]], times: dict[datetime, str] | None = None
) -> None:
    """Insert or replace trace rows. PostgreSQL: COPY into a staging table, then one
    INSERT ... ON CONFLICT from it (binding a batch's 26 columns x hundreds of rows as
    parameters cost more client CPU than the spans' COPY)."""
    if conn.dialect.name == "postgresql":
        dbapi: Any = conn.connection.driver_connection
        with dbapi.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS trace_stage (LIKE trace INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS"
            )
            with cur.copy(f"COPY trace_stage ({', '.join(_TRACE_COLUMNS)}) FROM STDIN") as copy:
                for row in values:
                    line = [row.get(c) for c in _TRACE_COLUMNS]
                    for i in _TRACE_JSON_AT:
                        if line[i] is not None:
                            line[i] = orjson.dumps(line[i]).decode()
                    copy.write_row(line)
            cur.execute(_TRACE_UPSERT)
        return
    times = {} if times is None else times
    _sqlite_insert(
        conn,
        "trace",
        _TRACE_COLUMNS,
        _TRACE_UPDATE,
        [_sqlite_values(r, _TRACE_VALUES, _TRACE_TIMES_AT, _TRACE_JSON_AT, times) for r in values],
    )


def write_rows(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Store span rows and bring their traces up to date, in the caller's transaction.
    Idempotent: writing the same rows again changes nothing. Returns the traces touched.

    A trace's row is written in the same transaction as its spans, so a trace with no row
    has no stored spans (on PostgreSQL an advisory lock per trace makes concurrent writers
    of one trace take turns): its spans are copied without a conflict check and its totals
    come from the batch alone. A trace that has a row is re-aggregated from its stored spans.
    """
    if not rows:
        return 0
    unique: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:  # a span twice in one batch is stored once
        unique[(r["workspace_id"], r["trace_id"], r["span_id"], r["start_time"])] = r
    by_ws: dict[int, list[dict[str, Any]]] = {}
    for row in unique.values():
        by_ws.setdefault(row["workspace_id"], []).append(row)
    touched = 0
    for ws, ws_rows in by_ws.items():
        touched += _write_workspace(conn, ws, ws_rows)
    # scores that came with their spans (guardrail verdicts): stored, spooled and replayed
    # with them
    save_span_scores(conn, [r for r in unique.values() if r.get("_scores")])
    return touched


def _aggregate(spans: list[dict[str, Any]]) -> dict[str, Any]:
    """A new trace's totals from its spans (in start order), in one pass."""
    end = spans[0]["end_time"]
    errors = 0
    totals: dict[str, Any] = {"input_tokens": None, "output_tokens": None, "cost_usd": None}
    models: set[str] = set()
    root = None
    for s in spans:
        if s["end_time"] > end:
            end = s["end_time"]
        if s["status"] == "error":
            errors += 1
        for key, now in totals.items():
            value = s.get(key)
            if value is not None:
                totals[key] = value if now is None else now + value
        for key in ("model_requested", "model_served"):
            if s.get(key):
                models.add(s[key])
        if root is None and s.get("parent_id") is None:
            root = s
    return {
        "start_time": spans[0]["start_time"],
        "end_time": end,
        "span_count": len(spans),
        "error_count": errors,
        **totals,
        "models": models,
        "root": root,
    }


def _one_span_trace(ws: int, span: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The row of a new trace whose batch holds one span (every gateway call): what the
    general path below makes of it, built straight from the span. A test holds the two
    to the same row."""
    h = span.get("_hints") or {}
    models = {m for m in (span.get("model_requested"), span.get("model_served")) if m}
    start, end = span["start_time"], span["end_time"]
    failed = span["status"] == "error"
    inp, out = span_input_output(span)
    return {
        "workspace_id": ws,
        "id": span["trace_id"],
        "bucket": _day(start),
        "name": span["name"][:500],
        "session_id": h.get("session_id") or None,
        "user_id": h.get("user_id") or None,
        "tenant_id": h.get("tenant_id") or None,
        "environment": h.get("environment") or None,
        "release": h.get("release") or None,
        "tags": sorted(set(h.get("tags") or ())) or None,
        "metadata": dict(h.get("metadata") or {}) or None,
        "start_time": start,
        "end_time": end,
        "latency_ms": (end - start).total_seconds() * 1000.0,
        "status": "error" if failed else "ok",
        "error": (span["error"] or None) if failed else None,
        "span_count": 1,
        "error_count": 1 if failed else 0,
        "input_tokens": span.get("input_tokens"),
        "output_tokens": span.get("output_tokens"),
        "cost_usd": span.get("cost_usd"),
        "models": sorted(models) or None,
        "input_text": inp,
        "output_text": out,
        "search_text": _search_text(inp, out, (), (span,)),
        "updated_at": now,
    }


def _stored_aggregates(
    conn: Connection, ws: int, ids: list[str], lo: datetime, hi: datetime
) -> dict[str, dict[str, Any]]:
    """Totals of traces from every stored span (for traces that already had a row)."""
    if not ids:
        return {}
    where = (Span.c.workspace_id == ws, Span.c.trace_id.in_(ids), Span.c.start_time.between(lo, hi))
    out: dict[str, dict[str, Any]] = {}
    for r in conn.execute(
        sa.select(
            Span.c.trace_id,
            sa.func.min(Span.c.start_time).label("start_time"),
            sa.func.max(Span.c.end_time).label("end_time"),
            sa.func.count().label("span_count"),
            sa.func.count().filter(Span.c.status == "error").label("error_count"),
            sa.func.sum(Span.c.input_tokens).label("input_tokens"),
            sa.func.sum(Span.c.output_tokens).label("output_tokens"),
            sa.func.sum(Span.c.cost_usd).label("cost_usd"),
        )
        .where(*where)
        .group_by(Span.c.trace_id)
    ):
        out[r.trace_id] = {**r._mapping, "models": set(), "root": None}
    for r in conn.execute(
        sa.select(Span.c.trace_id, Span.c.model_requested, Span.c.model_served)
        .where(
            *where, sa.or_(Span.c.model_requested.is_not(None), Span.c.model_served.is_not(None))
        )
        .distinct()
    ):
        out[r[0]]["models"].update(m for m in (r[1], r[2]) if m)
    for r in conn.execute(
        sa.select(
            Span.c.trace_id,
            Span.c.name,
            Span.c.error,
            Span.c.input_value,
            Span.c.output_value,
            Span.c.input_messages,
            Span.c.output_messages,
        ).where(*where, Span.c.parent_id.is_(None))
    ):
        out[r.trace_id]["root"] = dict(r._mapping)
    return out


# built once: building the statement cost more than running it, once a batch
_ENABLED_RULE = (
    sa.select(OnlineRule.c.id)
    .where(OnlineRule.c.workspace_id == sa.bindparam("ws"), OnlineRule.c.enabled.is_(True))
    .limit(1)
)


def _online_inbox(conn: Connection, ws: int, rows: list[dict[str, Any]]) -> None:
    """Spans of a workspace with an enabled online rule wait in the inbox for the online
    selector, written in the transaction that stores them: a span is never stored without
    its entry, nor queued without being stored. (A span sent twice gets two entries; the
    ledger keeps one outcome per span and rule.)"""
    enabled = conn.execute(_ENABLED_RULE, {"ws": ws}).first()
    if enabled is None:
        return
    now = datetime.now(UTC)
    conn.execute(
        sa.insert(OnlineInbox),
        [
            {
                "workspace_id": ws,
                "trace_id": r["trace_id"],
                "span_id": r["span_id"],
                "start_time": r["start_time"],
                "created_at": now,
            }
            for r in rows
        ],
    )


def _stored_trace_ids(
    conn: Connection, ws: int, ids: list[str], lo: datetime, hi: datetime
) -> list[str]:
    """Which of ``ids`` already have a row (filed between ``lo`` and ``hi``). The ids go as
    one parameter (an array; JSON on SQLite): an expanded ``IN`` of hundreds of ids cost
    more to bind than the rest of the batch's reads. Gateway calls are new traces, so the
    answer is nearly always empty and their rows are never read."""
    if conn.dialect.name == "postgresql":
        query = (
            "SELECT id FROM trace WHERE workspace_id = :ws AND id = ANY(CAST(:ids AS text[])) "
            "AND bucket BETWEEN :lo AND :hi"
        )
        params: dict[str, Any] = {"ws": ws, "ids": ids, "lo": lo, "hi": hi}
    else:
        query = (
            "SELECT id FROM trace WHERE workspace_id = :ws "
            "AND id IN (SELECT value FROM json_each(:ids)) AND bucket BETWEEN :lo AND :hi"
        )
        params = {"ws": ws, "ids": json_text(ids), "lo": _sqlite_time(lo), "hi": _sqlite_time(hi)}
    return [r[0] for r in conn.execute(sa.text(query), params)]


def _trace_row(
    ws: int,
    trace_id: str,
    spans: list[dict[str, Any]],
    old: dict[str, Any],
    aggregate: dict[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    """A trace's row from the batch's ``spans`` of it, its ``old`` row ({} for a new trace)
    and, for a trace that had a row, the ``aggregate`` of its stored spans."""
    spans = sorted(spans, key=lambda r: r["start_time"])
    a = aggregate or _aggregate(spans)
    root = a["root"]
    hints: dict[str, Any] = {}
    tags: set[str] = set(old.get("tags") or [])
    meta: dict[str, Any] = dict(old.get("metadata") or {})
    for s in spans:
        h = s.get("_hints") or {}
        for key in ("session_id", "user_id", "tenant_id", "environment", "release"):
            if h.get(key) and not hints.get(key):
                hints[key] = h[key]
        tags.update(h.get("tags") or [])
        meta.update(h.get("metadata") or {})
    if root is not None:
        inp, out = span_input_output(root)
        name, error = root["name"], root["error"]
    else:
        first = next((s for s in spans if s["kind"] == "llm"), spans[0])
        inp, out = span_input_output(first)
        name, error = None, None
    error = error or old.get("error") or next((s["error"] for s in spans if s["error"]), None)
    start, end = a["start_time"], a["end_time"]
    if start.tzinfo is None:  # SQLite hands back naive times from aggregates
        start, end = start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)
    inp = inp if root is not None else old.get("input_text") or inp
    out = out if root is not None else old.get("output_text") or out
    previous = (old.get("input_text"), old.get("output_text"), old.get("search_text"))
    return {
        "workspace_id": ws,
        "id": trace_id,
        "bucket": old.get("bucket") or _day(start),
        "name": (name or old.get("name") or spans[0]["name"])[:500],
        **{
            key: (old.get(key) or hints.get(key))
            for key in ("session_id", "user_id", "tenant_id", "environment", "release")
        },
        "tags": sorted(tags) or None,
        "metadata": meta or None,
        "start_time": start,
        "end_time": end,
        "latency_ms": (end - start).total_seconds() * 1000.0,
        "status": "error" if a["error_count"] else "ok",
        "error": error if a["error_count"] else None,
        "span_count": a["span_count"],
        "error_count": a["error_count"],
        "input_tokens": a["input_tokens"],
        "output_tokens": a["output_tokens"],
        "cost_usd": a["cost_usd"],
        "models": sorted(a["models"]) or None,
        "input_text": inp,
        "output_text": out,
        "search_text": _search_text(inp, out, previous, spans),
        "updated_at": now,
    }


def _write_workspace(conn: Connection, ws: int, rows: list[dict[str, Any]]) -> int:
    ids = sorted({r["trace_id"] for r in rows})
    lo = min(r["start_time"] for r in rows) - timedelta(days=1)
    hi = max(r["start_time"] for r in rows) + timedelta(days=1)
    if conn.dialect.name == "postgresql":
        # replicas writing spans of one trace at once take turns on it (one statement, in
        # a fixed order, so two writers never wait on each other in a cycle)
        conn.execute(
            sa.text(
                "SELECT pg_advisory_xact_lock(hashtext(t)) FROM unnest(CAST(:ids AS text[])) "
                "AS t ORDER BY t"
            ),
            {"ids": ids},
        )
    first_bucket = _day(lo) - timedelta(days=1)
    found = _stored_trace_ids(conn, ws, ids, first_bucket, hi)
    existing = (
        {
            r.id: dict(r._mapping)
            for r in conn.execute(
                sa.select(Trace).where(
                    Trace.c.workspace_id == ws,
                    Trace.c.id.in_(found),
                    Trace.c.bucket.between(first_bucket, hi),
                )
            )
        }
        if found
        else {}
    )
    batch: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        batch.setdefault(row["trace_id"], []).append(row)
    times: dict[datetime, str] = {}  # SQLite: each time's text, once a batch
    new = [r for r in rows if r["trace_id"] not in existing]
    _insert_spans(conn, new, may_exist=False, times=times)
    _insert_spans(conn, [r for r in rows if r["trace_id"] in existing], may_exist=True)
    _online_inbox(conn, ws, rows)
    stored = _stored_aggregates(conn, ws, sorted(existing), lo, hi)
    now = datetime.now(UTC)
    values = []
    for trace_id in ids:
        spans = batch[trace_id]
        if len(spans) == 1 and trace_id not in existing:
            values.append(_one_span_trace(ws, spans[0], now))
            continue
        values.append(
            _trace_row(ws, trace_id, spans, existing.get(trace_id, {}), stored.get(trace_id), now)
        )
    if values:
        _upsert_traces(conn, values, times)
    return len(values)


# --- the spool --------------------------------------------------------------------------------


def _dump(rows: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def _load(data: bytes) -> list[dict[str, Any]]:
    rows = []
    for line in data.splitlines():
        if not line.strip():
            continue
        row = orjson.loads(line)
        for key in _TIMES:
            row[key] = datetime.fromisoformat(row[key])
        rows.append(row)
    return rows


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TraceWriter:
    """See the module docstring. ``start()`` it, ``submit()`` from any thread, ``close()``."""

    def __init__(
        self,
        engine: Engine,
        spool_dir: Path,
        *,
        window_s: float = 0.05,
        max_batch: int = 5000,
        max_pending: int = 200_000,
        max_spool_bytes: int = 2 * 1024**3,
        retry_s: float = 1.0,
        maintenance: Callable[[], object] | None = None,
        maintenance_s: float = 3600.0,
    ) -> None:
        self.engine = engine
        self.spool_dir = spool_dir
        self.window_s = window_s
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.max_spool_bytes = max_spool_bytes
        self.retry_s = retry_s
        # partitions and retention, run on this thread between batches: DDL on the
        # partitioned tables never deadlocks against this process's own writes
        self.maintenance = maintenance
        self.maintenance_s = maintenance_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._written = 0
        self._spooled = 0
        self._replayed = 0
        self._degraded = False
        self._thread: threading.Thread | None = None
        self._closed = False

    # --- any thread --------------------------------------------------------------------
    def start(self) -> TraceWriter:
        if self._thread is not None:  # one thread per writer: a second start is a no-op
            return self
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.spool_dir.glob("*.replaying.*"):  # left by a process that died
            pid = stale.name.rsplit(".", 1)[-1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                stale.rename(stale.with_name(stale.name.split(".replaying.")[0]))
        self._degraded = any(self.spool_dir.glob("*.jsonl"))
        self._thread = threading.Thread(target=self._loop, name="panopticon-traces", daemon=True)
        self._thread.start()
        return self

    def submit(self, rows: list[dict[str, Any]]) -> concurrent.futures.Future[None]:
        """Queue rows; the future resolves once they are in the database or the spool."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        if not rows:
            future.set_result(None)
            return future
        if self._closed:
            raise Backpressure("the server is shutting down; send again", 1, 503)
        with self._lock:
            if self._pending + len(rows) > self.max_pending:
                raise Backpressure(
                    f"{self._pending} spans are waiting to be written (the limit is "
                    f"{self.max_pending}); send again shortly",
                    1,
                    429,
                )
            if self._degraded and self._spool_bytes() > self.max_spool_bytes:
                raise Backpressure(
                    "the database is unavailable and the local spool is full; send again later",
                    30,
                    503,
                )
            self._pending += len(rows)
        self._queue.put((rows, future))
        return future

    def stats(self) -> WriterStats:
        return WriterStats(
            self._pending,
            self._written,
            self._spooled,
            self._replayed,
            self._spool_bytes(),
            self._degraded,
        )

    def close(self, timeout: float = 60.0) -> None:
        """Write (or spool) everything submitted, then stop."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _spool_bytes(self) -> int:
        total = 0
        with contextlib.suppress(OSError):
            for path in self.spool_dir.glob("*.jsonl"):
                total += path.stat().st_size
        return total

    # --- the writer thread ---------------------------------------------------------------
    def _maintain(self) -> None:
        if self.maintenance is None:
            return
        try:
            self.maintenance()
        except Exception as exc:  # the database may be down: spans spool meanwhile
            log.warning("trace maintenance failed: %s", exc)

    def _loop(self) -> None:
        last_try = 0.0
        self._maintain()
        last_maintenance = time.monotonic()
        while True:
            if time.monotonic() - last_maintenance >= self.maintenance_s:
                self._maintain()
                last_maintenance = time.monotonic()
            items = self._gather()
            stop = any(i is None for i in items)
            work = [i for i in items if i is not None]
            if work:
                self._write(work)
            if self._degraded and (stop or time.monotonic() - last_try >= self.retry_s):
                last_try = time.monotonic()
                self._replay()
            if stop:
                return

    def _gather(self) -> list[Any]:
        try:
            first = self._queue.get(timeout=self.retry_s if self._degraded else 1.0)
        except queue.Empty:
            return []
        items = [first]
        count = len(first[0]) if first is not None else 0
        deadline = time.monotonic() + self.window_s
        while first is not None and count < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            items.append(item)
            if item is None:
                break
            count += len(item[0])
        return items

    def _write(
        self, work: list[tuple[list[dict[str, Any]], concurrent.futures.Future[None]]]
    ) -> None:
        rows = [r for batch, _ in work for r in batch]
        try:
            self._write_batch(work)
        finally:
            with self._lock:
                self._pending -= len(rows)

    def _write_batch(
        self, work: list[tuple[list[dict[str, Any]], concurrent.futures.Future[None]]]
    ) -> None:
        """Write one transaction for every request in ``work``. The database unavailable:
        spool them. A request whose rows the database refuses (a value it cannot store)
        must not sink the others: each is then written alone, and the one refused fails
        with :class:`BatchRejected` (its client hears why; nothing of it is acknowledged)."""
        rows = [r for batch, _ in work for r in batch]
        if self._degraded:
            self._spool_or_fail(work, rows)
            return
        try:
            with self.engine.begin() as conn:
                write_rows(conn, rows)
        except Exception as exc:
            if not self._database_away(exc):
                self._refused(work, rows, exc)
                return
            log.warning(
                "cannot write %d spans (%s: %s); spooling them to %s",
                len(rows),
                exc.__class__.__name__,
                getattr(exc, "orig", exc),
                self.spool_dir,
            )
            self._degraded = True
            self._spool_or_fail(work, rows)
            return
        self._written += len(rows)
        for _, future in work:
            future.set_result(None)

    def _database_away(self, exc: BaseException) -> bool:
        """The database (or the connection to it) failed, not the data: SQLAlchemy's
        operational errors, and the driver's own where the writer talks to the driver
        directly (COPY on PostgreSQL), which SQLAlchemy does not wrap."""
        if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
            return True
        dbapi = self.engine.dialect.dbapi
        return dbapi is not None and isinstance(exc, (dbapi.OperationalError, dbapi.InterfaceError))

    def _refused(
        self,
        work: list[tuple[list[dict[str, Any]], concurrent.futures.Future[None]]],
        rows: list[dict[str, Any]],
        exc: Exception,
    ) -> None:
        """The data, not the database: each request again alone, the one at fault failed."""
        if len(work) > 1:
            for one in work:
                self._write_batch([one])
            return
        log.warning("a batch of %d spans was refused: %s", len(rows), exc)
        # the client is told the database's reason (its first line: PostgreSQL's context
        # lines quote the statement, the table and the row), the server's log has the rest
        reason = (str(getattr(exc, "orig", exc)).strip().splitlines() or ["(no reason)"])[0]
        work[0][1].set_exception(
            BatchRejected(
                f"the spans could not be stored: the database refused a value ({reason[:300]}); "
                "send text and numbers it can hold"
            )
        )

    def _spool_or_fail(
        self,
        work: list[tuple[list[dict[str, Any]], concurrent.futures.Future[None]]],
        rows: list[dict[str, Any]],
    ) -> None:
        try:
            self._spool(rows)
        except Exception as exc:  # neither the database nor the disk: not acknowledged
            log.exception("spans could be neither written nor spooled")
            for _, future in work:
                future.set_exception(exc)
            return
        for _, future in work:
            future.set_result(None)

    def _spool(self, rows: list[dict[str, Any]]) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        path = self.spool_dir / f"spans-{os.getpid()}-{time.time_ns()}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, _dump(rows))
            os.fsync(fd)
        finally:
            os.close(fd)
        dir_fd = os.open(self.spool_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new file's name is durable too
        finally:
            os.close(dir_fd)
        self._spooled += len(rows)

    def _replay(self) -> None:
        """Write spooled files to the database, oldest first; stop at the first failure."""
        for path in sorted(self.spool_dir.glob("*.jsonl")):
            claimed = path.with_name(f"{path.name}.replaying.{os.getpid()}")
            try:
                path.rename(claimed)  # another replica on this host may take it first
            except FileNotFoundError:
                continue
            started = time.monotonic()
            try:
                rows = _load(claimed.read_bytes())
                with self.engine.begin() as conn:
                    for i in range(0, len(rows), self.max_batch):
                        write_rows(conn, rows[i : i + self.max_batch])
            except Exception as exc:
                claimed.rename(path)
                if not (isinstance(exc, sa.exc.SQLAlchemyError) or self._database_away(exc)):
                    log.exception("spooled spans in %s could not be replayed", path.name)
                return
            claimed.unlink()
            self._replayed += len(rows)
            # a warning, as spooling was: an operator sees the catch-up and its pace
            log.warning(
                "replayed %d spooled spans from %s in %.2f s (%d spooled files left)",
                len(rows),
                path.name,
                time.monotonic() - started,
                sum(1 for _ in self.spool_dir.glob("*.jsonl")),
            )
        self._degraded = any(self.spool_dir.glob("*.jsonl"))
