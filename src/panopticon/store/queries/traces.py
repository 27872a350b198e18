"""Traces for the explorer: filtered keyset pages, one trace with its spans and scores,
a session's traces; scores and labels on traces and spans; each workspace's settings."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles

from panopticon.evaluation.suite import QueryItem
from panopticon.store.queries.catalog import chunks, upsert_queries
from panopticon.store.queries.paging import COUNT_CAP, capped_count, counted_total, rows_to_count
from panopticon.store.tables import (
    Annotation,
    Dataset,
    DatasetItem,
    Metric,
    Score,
    Span,
    Trace,
    TraceSettings,
)
from panopticon.store.tables.base import utcnow
from panopticon.store.text_index import searched_text

__all__ = [
    "COUNT_CAP",
    "COUNT_MAX",
    "SORTS",
    "TraceFilters",
    "append_to_dataset",
    "find_metric",
    "get_trace_settings",
    "insert_scores",
    "iter_traces",
    "save_span_scores",
    "search_traces",
    "session_traces",
    "set_trace_settings",
    "span_detail",
    "trace_detail",
    "upsert_trace_label",
]

# a list counts its matches up to COUNT_CAP (each page; more on request, up to COUNT_MAX):
# counting reads every match up to the cap, which a filter that matches a ninth of a
# million spans' traces paid on every page (about 90,000 rows read for 10,001 matches)
COUNT_MAX = 10_000
SORTS = ("-start_time", "start_time", "-latency_ms", "latency_ms", "-cost_usd", "cost_usd")


@dataclass(frozen=True)
class TraceFilters:
    since: datetime | None = None
    until: datetime | None = None
    model: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    tag: str | None = None
    metadata_key: str | None = None
    metadata_value: str | None = None
    status: str | None = None
    min_latency_ms: float | None = None
    max_latency_ms: float | None = None
    min_cost: float | None = None
    max_cost: float | None = None
    score_name: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    span_kind: str | None = None
    text: str | None = None
    environment: str | None = None


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _span_ids(ws: int, f: TraceFilters, condition: Any) -> Any:
    """The ids of traces with a span that meets ``condition``: one pass over the spans of
    the filter's period (its bounds are constants, so PostgreSQL reads only the partitions
    of those days), not a probe per trace."""
    q = sa.select(Span.c.trace_id).where(Span.c.workspace_id == ws, condition)
    if f.since is not None:  # a trace's spans start at or after the trace
        q = q.where(Span.c.start_time >= f.since)
    if f.until is not None:  # and within a day of its start (the writer's window)
        q = q.where(Span.c.start_time < f.until + timedelta(days=1))
    return q


def _json_has(conn: Connection, column: Any, value: str) -> Any:
    if conn.dialect.name == "postgresql":
        return column.op("@>")(sa.cast(sa.literal(orjson.dumps([value]).decode()), column.type))
    each = sa.func.json_each(column).table_valued("value")
    return sa.exists(sa.select(1).select_from(each).where(each.c.value == value))


def _json_field(conn: Connection, column: Any, key: str) -> Any:
    if conn.dialect.name == "postgresql":
        return column.op("->>", return_type=sa.Text())(sa.literal(key))
    return sa.func.json_extract(column, sa.literal('$."' + key.replace('"', "") + '"'))


def _where(conn: Connection, ws: int, f: TraceFilters) -> list[Any]:
    where: list[Any] = [Trace.c.workspace_id == ws]
    if f.since is not None:
        where += [Trace.c.start_time >= f.since, Trace.c.bucket >= f.since - timedelta(days=1)]
    if f.until is not None:
        where += [Trace.c.start_time < f.until, Trace.c.bucket < f.until + timedelta(days=2)]
    for column, value in (
        (Trace.c.user_id, f.user_id),
        (Trace.c.session_id, f.session_id),
        (Trace.c.status, f.status),
        (Trace.c.environment, f.environment),
    ):
        if value is not None:
            where.append(column == value)
    if f.min_latency_ms is not None:
        where.append(Trace.c.latency_ms >= f.min_latency_ms)
    if f.max_latency_ms is not None:
        where.append(Trace.c.latency_ms <= f.max_latency_ms)
    if f.min_cost is not None:
        where.append(Trace.c.cost_usd >= f.min_cost)
    if f.max_cost is not None:
        where.append(Trace.c.cost_usd <= f.max_cost)
    if f.tag is not None:
        where.append(_json_has(conn, Trace.c.tags, f.tag))
    if f.metadata_key is not None:
        if conn.dialect.name == "postgresql":  # containment: the GIN index answers it
            column = Trace.c.metadata
            if f.metadata_value is None:
                where.append(column.op("?")(sa.literal(f.metadata_key)))
            else:
                doc = orjson.dumps({f.metadata_key: f.metadata_value}).decode()
                where.append(column.op("@>")(sa.cast(sa.literal(doc), column.type)))
        else:
            field = _json_field(conn, Trace.c.metadata, f.metadata_key)
            where.append(
                field.is_not(None) if f.metadata_value is None else field == f.metadata_value
            )
    if f.model is not None:  # the models any span asked for or was served by
        where.append(_json_has(conn, Trace.c.models, f.model))
    if f.span_kind is not None:
        where.append(Trace.c.id.in_(_span_ids(ws, f, Span.c.kind == f.span_kind)))
    if f.text:  # a trigram index answers this on PostgreSQL (store.text_index)
        where.append(searched_text(conn.dialect.name).ilike(_like(f.text), escape="\\"))
    if f.score_name is not None or f.min_score is not None or f.max_score is not None:
        cond: list[Any] = [Score.c.workspace_id == ws, Score.c.trace_id == Trace.c.id]
        if f.score_name is not None:
            cond.append(
                Score.c.metric_id.in_(
                    sa.select(Metric.c.id).where(
                        Metric.c.workspace_id == ws, Metric.c.name == f.score_name
                    )
                )
            )
        if f.min_score is not None:
            cond.append(Score.c.value >= f.min_score)
        if f.max_score is not None:
            cond.append(Score.c.value <= f.max_score)
        where.append(sa.exists(sa.select(1).where(*cond)))
    return where


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise ValueError("not a cursor this API gave out") from None
    if not isinstance(values, list) or len(values) != 2:
        raise ValueError("not a cursor this API gave out")
    return values


_LIST_COLUMNS = [
    c
    for c in Trace.columns
    if c.name
    not in ("bucket", "updated_at", "workspace_id", "input_text", "output_text", "search_text")
]
# a trace as one row: what the explorer shows of it
_ROW_COLUMNS = [c for c in Trace.columns if c.name not in ("bucket", "workspace_id", "search_text")]


def search_traces(
    conn: Connection,
    ws: int,
    f: TraceFilters,
    *,
    sort: str = "-start_time",
    limit: int = 50,
    cursor: str | None = None,
    count_cap: int = COUNT_CAP,
) -> tuple[list[dict[str, Any]], int, bool, str | None, int | None]:
    """A page of traces in ``sort`` order after ``cursor``, the number of matches (exact up
    to ``count_cap``, else a lower bound: the bool says which), the next cursor, and on
    PostgreSQL, when the count stopped at its cap, the planner's estimate of the matches.

    The page is read first: a first page with no next one is the whole answer, and its
    length is the exact count (no count query). Otherwise the count reads at most
    ``count_cap`` + 1 matches (0: no count; the total is then the page's lower bound)."""
    where = _where(conn, ws, f)
    desc = sort.startswith("-")
    column = Trace.c[sort.lstrip("-")]
    page_where = list(where)
    if column.name == "cost_usd":
        page_where.append(column.is_not(None))
    if cursor:
        raw_value, last_id = decode_cursor(cursor)
        value: Any = datetime.fromisoformat(raw_value) if column.name == "start_time" else raw_value
        after = sa.tuple_(column, Trace.c.id)
        page_where.append(after < (value, last_id) if desc else after > (value, last_id))
    order = [column.desc(), Trace.c.id.desc()] if desc else [column.asc(), Trace.c.id.asc()]
    q = (
        sa.select(
            *_LIST_COLUMNS,
            sa.func.substr(Trace.c.input_text, 1, 300).label("input_text"),
            sa.func.substr(Trace.c.output_text, 1, 300).label("output_text"),
        )
        .where(*page_where)
        .order_by(*order)
        .limit(limit + 1)
    )
    rows = [dict(r._mapping) for r in conn.execute(q)]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1][column.name]
        next_cursor = encode_cursor(
            [last.isoformat() if isinstance(last, datetime) else last, rows[-1]["id"]]
        )
    # sorted by cost, traces without a cost are not on the pages, but they match
    whole = cursor is None and next_cursor is None and column.name != "cost_usd"
    if whole:
        return rows, len(rows), True, None, None
    if count_cap <= 0:
        return rows, 0 if cursor else len(rows), False, next_cursor, None
    cap = rows_to_count(count_cap)
    total, exact = counted_total(
        int(conn.execute(capped_count(Trace, where, cap)).scalar() or 0), cap
    )
    if exact:
        return rows, total, True, next_cursor, None
    estimate = _planner_rows(conn, sa.select(sa.literal(1)).select_from(Trace).where(*where))
    return rows, total, False, next_cursor, estimate


class _Explain(sa.sql.expression.Executable, sa.sql.expression.ClauseElement):
    """``EXPLAIN (FORMAT JSON)`` of a statement, its parameters bound as usual."""

    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(_Explain, "postgresql")
def _compile_explain(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + str(compiler.process(element.statement, **kw))


def _planner_rows(conn: Connection, statement: Any) -> int | None:
    """PostgreSQL's estimate of the rows ``statement`` returns (no rows are read: the
    plan's own figure, from the table's statistics; None elsewhere)."""
    if conn.dialect.name != "postgresql":
        return None
    plan: Any = conn.execute(_Explain(statement)).scalar()
    if isinstance(plan, str | bytes):
        plan = orjson.loads(plan)
    try:
        return int(plan[0]["Plan"]["Plan Rows"])
    except (TypeError, LookupError, ValueError):
        return None


def iter_traces(
    conn: Connection, ws: int, f: TraceFilters, *, limit: int = 100_000
) -> Iterator[dict[str, Any]]:
    """Every matching trace (newest first, up to ``limit``), streamed for exports."""
    q = (
        sa.select(*_ROW_COLUMNS)
        .where(*_where(conn, ws, f))
        .order_by(Trace.c.start_time.desc(), Trace.c.id.desc())
        .limit(limit)
    )
    for r in conn.execution_options(yield_per=1000).execute(q):
        yield dict(r._mapping)


def _trace_row(conn: Connection, ws: int, trace_id: str) -> dict[str, Any] | None:
    rows = [
        dict(r._mapping)
        for r in conn.execute(
            sa.select(*_ROW_COLUMNS).where(Trace.c.workspace_id == ws, Trace.c.id == trace_id)
        )
    ]
    if not rows:
        return None
    # a trace filed under two days (its spans came more than a day apart): one view
    rows.sort(key=lambda r: r["start_time"])
    row = rows[0]
    for extra in rows[1:]:
        row["end_time"] = max(row["end_time"], extra["end_time"])
        row["span_count"] += extra["span_count"]
        row["error_count"] += extra["error_count"]
    return row


# what a span tree shows of each span (names, timings, status, model, tokens, cost): not
# its messages, documents, values, attributes or events, which are read when it is opened
_SPAN_DETAIL = (
    "input_messages",
    "output_messages",
    "input_value",
    "output_value",
    "documents",
    "attributes",
    "events",
)
_TREE_COLUMNS = [c for c in Span.columns if c.name != "workspace_id" and c.name not in _SPAN_DETAIL]


def _scores_of(conn: Connection, ws: int, trace_id: str, span_id: str | None = None) -> list[Any]:
    q = (
        sa.select(
            Score.c.id,
            Score.c.span_id,
            Score.c.value,
            Score.c.normalized,
            Score.c.label,
            Score.c.passed,
            Score.c.reasoning,
            Score.c.source,
            Score.c.judge_model,
            Score.c.error,
            Score.c.details,
            Score.c.created_at,
            Metric.c.name.label("name"),
        )
        .join(Metric, Metric.c.id == Score.c.metric_id)
        .where(Score.c.workspace_id == ws, Score.c.trace_id == trace_id)
        .order_by(Score.c.created_at)
    )
    if span_id is not None:
        q = q.where(Score.c.span_id == span_id)
    return [dict(r._mapping) for r in conn.execute(q)]


def _labels_of(conn: Connection, ws: int, trace_id: str, span_id: str | None = None) -> list[Any]:
    q = (
        sa.select(
            Annotation.c.id,
            Annotation.c.span_id,
            Annotation.c.annotator,
            Annotation.c.value,
            Annotation.c.passed,
            Annotation.c.comment,
            Annotation.c.created_at,
            Metric.c.name.label("name"),
        )
        .join(Metric, Metric.c.id == Annotation.c.metric_id)
        .where(Annotation.c.workspace_id == ws, Annotation.c.trace_id == trace_id)
        .order_by(Annotation.c.created_at)
    )
    if span_id is not None:
        q = q.where(Annotation.c.span_id == span_id)
    return [dict(r._mapping) for r in conn.execute(q)]


def _span_window(ws: int, trace_id: str, start: datetime, end: datetime) -> list[Any]:
    """A trace's spans: its partitions only (within two days of the trace's bounds)."""
    return [
        Span.c.workspace_id == ws,
        Span.c.trace_id == trace_id,
        Span.c.start_time >= start - timedelta(days=2),
        Span.c.start_time <= end + timedelta(days=2),
    ]


def trace_detail(
    conn: Connection, ws: int, trace_id: str, *, details: bool = True
) -> dict[str, Any] | None:
    """A trace with every span (in start order), its scores and people's labels. Without
    ``details``, each span without its messages, documents, values, attributes and events
    (the tree a page shows first; :func:`span_detail` reads one span whole)."""
    row = _trace_row(conn, ws, trace_id)
    if row is None:
        return None
    columns: Any = [Span] if details else _TREE_COLUMNS
    spans = [
        dict(r._mapping)
        for r in conn.execute(
            sa.select(*columns)
            .where(*_span_window(ws, trace_id, row["start_time"], row["end_time"]))
            .order_by(Span.c.start_time, Span.c.span_id)
        )
    ]
    scores = _scores_of(conn, ws, trace_id)
    labels = _labels_of(conn, ws, trace_id)
    return {**row, "spans": spans, "scores": scores, "labels": labels}


def span_detail(conn: Connection, ws: int, trace_id: str, span_id: str) -> dict[str, Any] | None:
    """One span of a trace, whole, with its scores and people's labels (None: no such
    span in this workspace)."""
    bounds = conn.execute(
        sa.select(sa.func.min(Trace.c.start_time), sa.func.max(Trace.c.end_time)).where(
            Trace.c.workspace_id == ws, Trace.c.id == trace_id
        )
    ).first()
    if bounds is None or bounds[0] is None:
        return None
    found = conn.execute(
        sa.select(Span)
        .where(*_span_window(ws, trace_id, bounds[0], bounds[1]), Span.c.span_id == span_id)
        .order_by(Span.c.start_time)
        .limit(1)
    ).first()
    if found is None:
        return None
    span = dict(found._mapping)
    span["scores"] = _scores_of(conn, ws, trace_id, span_id)
    span["labels"] = _labels_of(conn, ws, trace_id, span_id)
    return span


def session_traces(
    conn: Connection, ws: int, session_id: str, limit: int = 1000
) -> list[dict[str, Any]]:
    """A session's traces in time order, each with its LLM spans' messages."""
    traces = [
        dict(r._mapping)
        for r in conn.execute(
            sa.select(*_ROW_COLUMNS)
            .where(Trace.c.workspace_id == ws, Trace.c.session_id == session_id)
            .order_by(Trace.c.start_time, Trace.c.id)
            .limit(limit)
        )
    ]
    if not traces:
        return []
    ids = [t["id"] for t in traces]
    spans: dict[str, list[dict[str, Any]]] = {}
    for r in conn.execute(
        sa.select(
            Span.c.trace_id,
            Span.c.span_id,
            Span.c.name,
            Span.c.kind,
            Span.c.model_served,
            Span.c.input_messages,
            Span.c.output_messages,
            Span.c.start_time,
        )
        .where(
            Span.c.workspace_id == ws,
            Span.c.trace_id.in_(ids),
            Span.c.kind == "llm",
            Span.c.start_time >= traces[0]["start_time"] - timedelta(days=1),
            Span.c.start_time <= traces[-1]["end_time"] + timedelta(days=1),
        )
        .order_by(Span.c.start_time)
    ):
        spans.setdefault(r.trace_id, []).append(dict(r._mapping))
    for t in traces:
        t["llm_spans"] = spans.get(t["id"], [])
    return traces


def find_metric(conn: Connection, ws: int, name: str, *, create: bool = True) -> int | None:
    """The newest metric of that name, or a new ``feedback`` metric for outside scores."""
    found = conn.execute(
        sa.select(Metric.c.id)
        .where(Metric.c.workspace_id == ws, Metric.c.name == name)
        .order_by(Metric.c.id.desc())
        .limit(1)
    ).scalar()
    if found is not None or not create:
        return None if found is None else int(found)
    return int(
        conn.execute(
            sa.insert(Metric)
            .values(
                workspace_id=ws,
                name=name,
                type="feedback",
                definition={"name": name, "type": "feedback"},
                version="feedback",
                category="feedback",
                created_at=utcnow(),
            )
            .returning(Metric.c.id)
        ).scalar_one()
    )


def metric_definitions(conn: Connection, ids: list[int]) -> dict[int, tuple[str, dict[str, Any]]]:
    """Each of these metrics' type and stored definition, by id."""
    out: dict[int, tuple[str, dict[str, Any]]] = {}
    for part in chunks(list(dict.fromkeys(ids))):
        q = sa.select(Metric.c.id, Metric.c.type, Metric.c.definition).where(Metric.c.id.in_(part))
        for mid, kind, definition in conn.execute(q):
            out[int(mid)] = (str(kind), dict(definition or {}))
    return out


def insert_scores(conn: Connection, rows: list[dict[str, Any]]) -> list[uuid.UUID]:
    """Scores about traces or spans: each row has workspace_id, trace_id, span_id,
    metric_id, value, normalized, label, passed, reasoning, source."""
    ids = []
    values = []
    for row in rows:
        sid = uuid.uuid4()
        ids.append(sid)
        values.append({"id": sid, "created_at": utcnow(), "judge_cached": False, **row})
    if values:
        conn.execute(sa.insert(Score), values)
    return ids


_SCORE_IDS = uuid.UUID("5f1d0c8e-6b1a-4f44-9a53-0e4c6f0d2a71")


def save_span_scores(conn: Connection, span_rows: list[dict[str, Any]]) -> int:
    """The scores that travel with span rows (``_scores``: a gateway call's guardrail
    verdicts), stored in the caller's transaction. Each score's id comes from its span and
    its place there, so writing the same rows again (a spool replayed twice) adds nothing.
    Returns the scores written."""
    values = []
    metrics: dict[tuple[int, str], int] = {}
    for row in span_rows:
        ws, trace_id, span_id = row["workspace_id"], row["trace_id"], row["span_id"]
        for i, score in enumerate(row.get("_scores") or ()):
            name = str(score["name"])[:200]
            if (ws, name) not in metrics:
                metrics[ws, name] = find_metric(conn, ws, name) or 0
            values.append(
                {
                    "id": uuid.uuid5(_SCORE_IDS, f"{ws}/{trace_id}/{span_id}/{i}/{name}"),
                    "workspace_id": ws,
                    "trace_id": trace_id,
                    "span_id": span_id,
                    "metric_id": metrics[ws, name],
                    "value": score.get("value"),
                    "label": score.get("label"),
                    "passed": score.get("passed"),
                    "reasoning": score.get("reasoning"),
                    "source": score.get("source") or "api",
                    "details": score.get("details"),
                    "judge_cached": False,
                    "created_at": utcnow(),
                }
            )
    if not values:
        return 0
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(Score)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(Score)
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["id"]), values)
    return len(values)


def upsert_trace_label(
    conn: Connection,
    ws: int,
    trace_id: str,
    span_id: str | None,
    metric_id: int,
    annotator: str,
    value: float | None,
    passed: bool | None,
    comment: str | None,
) -> bool:
    """A person's label on a trace or span (one per person and metric); True if replaced."""
    where = [
        Annotation.c.workspace_id == ws,
        Annotation.c.trace_id == trace_id,
        Annotation.c.metric_id == metric_id,
        Annotation.c.annotator == annotator,
        Annotation.c.span_id.is_(None) if span_id is None else Annotation.c.span_id == span_id,
    ]
    values = {"value": value, "passed": passed, "comment": comment}
    if conn.execute(sa.update(Annotation).where(*where).values(**values)).rowcount:
        return True
    conn.execute(
        sa.insert(Annotation).values(
            workspace_id=ws,
            trace_id=trace_id,
            span_id=span_id,
            metric_id=metric_id,
            annotator=annotator,
            source="web",
            created_at=utcnow(),
            **values,
        )
    )
    return False


def get_trace_settings(conn: Connection, ws: int) -> tuple[int | None, bool]:
    row = conn.execute(sa.select(TraceSettings).where(TraceSettings.c.workspace_id == ws)).first()
    return (row.retention_days, bool(row.redact)) if row else (None, False)


def set_trace_settings(conn: Connection, ws: int, retention_days: int | None, redact: bool) -> None:
    updated = conn.execute(
        sa.update(TraceSettings)
        .where(TraceSettings.c.workspace_id == ws)
        .values(retention_days=retention_days, redact=redact)
    ).rowcount
    if not updated:
        conn.execute(
            sa.insert(TraceSettings).values(
                workspace_id=ws, retention_days=retention_days, redact=redact
            )
        )


def append_to_dataset(
    conn: Connection, ws: int, name: str, items: list[QueryItem]
) -> tuple[int, int]:
    """Add queries to the end of a dataset (made if new), skipping ones already in it.
    Returns (added, size)."""
    dataset_id = conn.execute(
        sa.select(Dataset.c.id).where(Dataset.c.workspace_id == ws, Dataset.c.name == name)
    ).scalar()
    if dataset_id is None:
        dataset_id = conn.execute(
            sa.insert(Dataset)
            .values(workspace_id=ws, name=name, source="traces", created_at=utcnow())
            .returning(Dataset.c.id)
        ).scalar_one()
    current = list(
        conn.execute(
            sa.select(DatasetItem.c.query_id)
            .where(DatasetItem.c.dataset_id == dataset_id)
            .order_by(DatasetItem.c.position)
        ).scalars()
    )
    have = set(current)
    new = [q for q in dict.fromkeys(upsert_queries(conn, ws, items)) if q not in have]
    if new:
        conn.execute(
            sa.insert(DatasetItem),
            [
                {"dataset_id": dataset_id, "query_id": q, "position": len(current) + i}
                for i, q in enumerate(new)
            ],
        )
    return len(new), len(current) + len(new)
