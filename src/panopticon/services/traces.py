"""The trace explorer: lists, one trace, sessions, exports, labels, traces to datasets.
The JSON API and the dashboard's pages both call these."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from panopticon.errors import ConfigError, Issue, NotFoundError
from panopticon.evaluation.suite import QueryItem
from panopticon.services.annotations import off_scale
from panopticon.services.parquet_export import parquet_stream, require_pyarrow
from panopticon.store.engine import Engine
from panopticon.store.partitions import MaintenanceReport, maintain
from panopticon.store.queries import traces as queries
from panopticon.store.queries.annotations import metric_scales
from panopticon.store.queries.traces import COUNT_CAP, COUNT_MAX, SORTS, TraceFilters

__all__ = [
    "COUNT_CAP",
    "COUNT_MAX",
    "EXPORT_FORMATS",
    "SORTS",
    "TraceFilters",
    "TracePage",
    "add_to_dataset",
    "export_traces",
    "find_traces",
    "get_session",
    "get_span",
    "get_trace",
    "label_trace",
    "run_maintenance",
    "span_tree",
    "trace_settings",
    "update_trace_settings",
]


# a trace's columns in an export, with their Parquet types (tags and models are lists of
# text; metadata is JSON text, its values having no one type)
PARQUET_COLUMNS = {
    "id": "str",
    "name": "str",
    "start_time": "time",
    "end_time": "time",
    "latency_ms": "float",
    "status": "str",
    "error": "str",
    "session_id": "str",
    "user_id": "str",
    "tenant_id": "str",
    "environment": "str",
    "release": "str",
    "tags": "strings",
    "metadata": "json",
    "models": "strings",
    "span_count": "int",
    "input_tokens": "int",
    "output_tokens": "int",
    "cost_usd": "float",
    "input_text": "str",
    "output_text": "str",
}
EXPORT_FIELDS = tuple(PARQUET_COLUMNS)

EXPORT_FORMATS = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}


class TracePage:
    def __init__(
        self,
        items: list[dict[str, Any]],
        total: int,
        exact: bool,
        cursor: str | None,
        estimate: int | None = None,
    ) -> None:
        self.items, self.total, self.total_exact, self.next_cursor = items, total, exact, cursor
        # PostgreSQL's planner estimate of the matches, when the count stopped at its cap
        self.total_estimate = estimate


def find_traces(
    engine: Engine,
    workspace_id: int,
    filters: TraceFilters,
    *,
    sort: str = "-start_time",
    limit: int = 50,
    cursor: str | None = None,
    count_cap: int = COUNT_CAP,
) -> TracePage:
    """A page of matching traces and their count, exact up to ``count_cap`` (0: none)."""
    if sort not in SORTS:
        raise ConfigError(Issue(f"unknown sort '{sort}'", field="sort", hint=", ".join(SORTS)))
    try:
        with engine.connect() as conn:
            return TracePage(
                *queries.search_traces(
                    conn,
                    workspace_id,
                    filters,
                    sort=sort,
                    limit=limit,
                    cursor=cursor,
                    count_cap=max(0, min(count_cap, COUNT_MAX)),
                )
            )
    except ValueError as exc:
        raise ConfigError(Issue(str(exc), field="cursor", hint="start without one")) from None


def span_tree(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spans in tree order (each after its parent, siblings by start), with ``depth``;
    a span whose parent never arrived is shown at the top level."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        parent = s["parent_id"] if s["parent_id"] in ids else None
        children.setdefault(parent, []).append(s)
    out: list[dict[str, Any]] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda x: (x["start_time"], x["span_id"])):
            out.append({**s, "depth": depth})
            if len(out) <= len(spans):
                walk(s["span_id"], depth + 1)

    walk(None, 0)
    return out


def get_trace(
    engine: Engine, workspace_id: int, trace_id: str, *, details: bool = True
) -> dict[str, Any]:
    """A trace with its span tree, scores and labels. ``details=False``: each span without
    its messages, documents, values, attributes and events (read with :func:`get_span`)."""
    with engine.connect() as conn:
        found = queries.trace_detail(conn, workspace_id, trace_id.lower(), details=details)
    if found is None:
        raise NotFoundError(f"no trace {trace_id} in this workspace (yet)")
    found["spans"] = span_tree(found["spans"])
    return found


def get_span(engine: Engine, workspace_id: int, trace_id: str, span_id: str) -> dict[str, Any]:
    """One span of a trace, whole, with its scores and labels."""
    with engine.connect() as conn:
        found = queries.span_detail(conn, workspace_id, trace_id.lower(), span_id.lower())
    if found is None:
        raise NotFoundError(f"no span {span_id} in trace {trace_id} in this workspace")
    return found


def get_session(engine: Engine, workspace_id: int, session_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        traces = queries.session_traces(conn, workspace_id, session_id)
    if not traces:
        raise NotFoundError(f"no session {session_id} in this workspace")
    return traces


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return value


def export_traces(
    engine: Engine, workspace_id: int, filters: TraceFilters, fmt: str
) -> Iterator[bytes]:
    """What a filter selects, as CSV, JSON Lines or Parquet (``EXPORT_FORMATS``), streamed.
    Parquet needs the ``parquet`` extra: without it this raises MissingDependencyError
    before anything is streamed."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(
            Issue(f"unknown format '{fmt}'", field="format", hint=", ".join(EXPORT_FORMATS))
        )
    if fmt == "parquet":
        require_pyarrow()

    def traces() -> Iterator[dict[str, Any]]:
        with engine.connect() as conn:
            yield from queries.iter_traces(conn, workspace_id, filters)

    def rows() -> Iterator[bytes]:
        if fmt == "parquet":
            yield from parquet_stream(traces(), PARQUET_COLUMNS)
        elif fmt == "csv":
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(EXPORT_FIELDS)
            for i, row in enumerate(traces()):
                writer.writerow([_cell(row.get(k)) for k in EXPORT_FIELDS])
                if i % 500 == 0:
                    yield buf.getvalue().encode()
                    buf.seek(0)
                    buf.truncate()
            yield buf.getvalue().encode()
        else:
            for row in traces():
                yield orjson.dumps({k: row.get(k) for k in EXPORT_FIELDS}) + b"\n"

    return rows()


def label_trace(
    engine: Engine,
    workspace_id: int,
    trace_id: str,
    span_id: str | None,
    metric: str,
    annotator: str,
    *,
    value: float | None,
    passed: bool | None,
    comment: str | None,
) -> bool:
    """A person's label on a trace or span; True when it replaced their earlier one."""
    # a 404 for another workspace's trace, first (its tree is enough to know it exists)
    get_trace(engine, workspace_id, trace_id, details=False)
    if value is None and passed is None and not comment:
        raise ConfigError(Issue("give a score, pass/fail or a comment", field="value"))
    if not metric.strip():
        raise ConfigError(Issue("name what is labelled, e.g. helpfulness", field="metric"))
    with engine.begin() as conn:
        metric_id = queries.find_metric(conn, workspace_id, metric.strip()[:200])
        assert metric_id is not None
        # a value off the metric's scale (a 42 on 1 to 5) is refused, as `annotate` does
        problem = off_scale(value, metric_scales(conn, [metric_id]).get(metric_id), metric.strip())
        if problem:
            raise ConfigError(Issue(problem[0], field="value", hint=problem[1]))
        return queries.upsert_trace_label(
            conn, workspace_id, trace_id, span_id, metric_id, annotator, value, passed, comment
        )


def add_to_dataset(
    engine: Engine, workspace_id: int, dataset: str, trace_ids: list[str]
) -> tuple[int, int]:
    """Traces become dataset items: input as the query, output as the expected answer,
    retrieved documents as the context. Returns (items added, the dataset's size)."""
    if not dataset.strip():
        raise ConfigError(Issue("name the dataset", field="dataset"))
    items: list[QueryItem] = []
    for trace_id in trace_ids:
        t = get_trace(engine, workspace_id, trace_id)
        docs = [
            str(d.get("content"))
            for s in t["spans"]
            for d in (s.get("documents") or [])
            if d.get("content")
        ]
        if not t.get("input_text"):
            raise ConfigError(Issue(f"trace {trace_id} has no input to ask", field="trace_ids"))
        items.append(
            QueryItem(
                text=t["input_text"],
                messages=(("user", t["input_text"]),),
                theme="production",
                expected=t.get("output_text"),
                context="\n\n".join(docs) or None,
                metadata={"trace_id": t["id"]},
                source=f"trace {t['id']}",
                external_id=t["id"],
            )
        )
    with engine.begin() as conn:
        return queries.append_to_dataset(conn, workspace_id, dataset.strip(), items)


def trace_settings(engine: Engine, workspace_id: int) -> tuple[int | None, bool]:
    with engine.connect() as conn:
        return queries.get_trace_settings(conn, workspace_id)


def update_trace_settings(
    engine: Engine, workspace_id: int, retention_days: int | None, redact: bool
) -> None:
    with engine.begin() as conn:
        queries.set_trace_settings(conn, workspace_id, retention_days, redact)


def run_maintenance(engine: Engine, default_retention_days: int) -> MaintenanceReport:
    """Partitions ahead, old ones dropped, rows past each workspace's retention deleted."""
    return maintain(engine, now=datetime.now(UTC), default_retention_days=default_retention_days)
