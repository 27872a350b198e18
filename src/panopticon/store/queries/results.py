"""Scores with their context, filtered and paged (``GET /api/judge/results``).

A score's subject is a run's result (an answer to a query by a model) or a production
trace or span (scored by an online rule, a guardrail or an outside client). Both are
listed together; ``source`` narrows to one side (``run``, ``production``) or one source.
A production score's model and query text are its span's (the model served, else the one
requested; the input and output as text), a trace-level score's those of its trace; the
model filter matches the model the dashboard groups a score under (store.queries.
score_model: a trace's one model, "(several models)" or "(model unknown)").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.store.queries.catalog import chunks
from panopticon.store.queries.match import ESCAPE, like_pattern
from panopticon.store.queries.paging import (
    COUNT_CAP,
    capped_count,
    counted_total,
    rows_to_count,
)
from panopticon.store.queries.score_model import score_model
from panopticon.store.span_text import span_input_output
from panopticon.store.tables import (
    Annotation,
    Metric,
    Model,
    Query,
    Result,
    Run,
    Score,
    Span,
    Trace,
)
from panopticon.store.tables.runs import SCORE_SOURCES

__all__ = [
    "PRODUCTION_SOURCES",
    "SOURCE_FILTERS",
    "ResultFilters",
    "result_detail",
    "search_scores",
    "source_kind",
]

# the sources of scores about production traces and spans (every one but a run's)
PRODUCTION_SOURCES = tuple(s for s in SCORE_SOURCES if s != "run")
# what ``source`` accepts: a side (run, production) or one source by name
SOURCE_FILTERS = ("run", "production", *PRODUCTION_SOURCES)


@dataclass(frozen=True)
class ResultFilters:
    theme: str | None = None
    model: str | None = None
    metric: str | None = None
    run_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_score: float | None = None  # on the metric's own scale
    max_score: float | None = None
    passed: bool | None = None
    text: str | None = None  # in the query or the response (a span's input or output)
    source: str | None = None  # one of SOURCE_FILTERS; None: every score


def source_kind(source: str | None) -> str:
    """``all``, ``run``, ``production`` or ``named`` (one production source); the caller
    has checked that ``source`` is one of SOURCE_FILTERS."""
    if source is None:
        return "all"
    return source if source in ("run", "production") else "named"


_FILTERS = (
    "theme",
    "model",
    "metric",
    "run_id",
    "since",
    "until",
    "min_score",
    "max_score",
    "passed",
    "text",
)


def _span_of_score(ws: Any, *where: Any) -> Any:
    """EXISTS a span of this workspace that the score is about (its span, or for a
    trace-level score any span of its trace) meeting ``where``."""
    return sa.exists(
        sa.select(sa.literal(1)).where(
            Span.c.workspace_id == ws,
            Span.c.trace_id == Score.c.trace_id,
            sa.or_(Score.c.span_id.is_(None), Span.c.span_id == Score.c.span_id),
            *where,
        )
    )


@functools.lru_cache(maxsize=1024)
def _statements(shape: tuple[bool, ...], kind: str, dialect: str) -> tuple[Any, Any]:
    """The count and page statements for one combination of filters, with every value a
    bound parameter: built (and compiled) once, then reused by every request. Building a
    join of five tables and 19 columns cost more than running it."""
    on = dict(zip(_FILTERS, shape, strict=True))
    ws: Any = sa.bindparam("ws")
    runs, production = kind in ("all", "run"), kind != "run"
    # scores carry their workspace, model and query: run filters need no join
    where: list[Any] = [Score.c.workspace_id == ws]
    if kind == "run":
        where.append(Score.c.result_id.is_not(None))
    elif kind == "production":
        where.append(Score.c.trace_id.is_not(None))
    elif kind == "named":
        where += [Score.c.trace_id.is_not(None), Score.c.source == sa.bindparam("source")]
    if on["theme"]:  # a production score has no query, so no theme
        where.append(
            Score.c.query_id.in_(
                sa.select(Query.c.id).where(
                    Query.c.workspace_id == ws, Query.c.theme == sa.bindparam("theme")
                )
            )
        )
    if on["model"]:
        model: Any = sa.bindparam("model")
        either: list[Any] = []
        if runs:
            either.append(
                Score.c.model_id.in_(
                    sa.select(Model.c.id).where(Model.c.workspace_id == ws, Model.c.name == model)
                )
            )
        if production:  # the model the dashboard groups the score under, whatever it is
            either.append(sa.and_(Score.c.trace_id.is_not(None), score_model(ws, dialect) == model))
        where.append(sa.or_(*either))
    if on["metric"]:
        where.append(
            Score.c.metric_id.in_(
                sa.select(Metric.c.id).where(
                    Metric.c.workspace_id == ws, Metric.c.name == sa.bindparam("metric")
                )
            )
        )
    if on["run_id"]:
        where.append(Score.c.run_id == sa.bindparam("run_id"))
    if on["since"]:
        where.append(Score.c.created_at >= sa.bindparam("since"))
    if on["until"]:
        where.append(Score.c.created_at < sa.bindparam("until"))
    if on["min_score"]:
        where.append(Score.c.value >= sa.bindparam("min_score"))
    if on["max_score"]:
        where.append(Score.c.value <= sa.bindparam("max_score"))
    if on["passed"]:
        where.append(Score.c.passed == sa.bindparam("passed"))
    if on["text"]:  # each table searched once, then the scores of what matched
        pattern: Any = sa.bindparam("pattern")
        either = []
        if runs:
            either += [
                Score.c.query_id.in_(
                    sa.select(Query.c.id).where(
                        Query.c.workspace_id == ws,
                        Query.c.text.ilike(pattern, escape=ESCAPE),
                    )
                ),
                Score.c.result_id.in_(
                    sa.select(Result.c.id).where(
                        Result.c.response_text.ilike(pattern, escape=ESCAPE)
                    )
                ),
            ]
        if production:  # the subject's own text: a span's, or a trace's for a trace's score
            either.append(
                sa.and_(
                    Score.c.trace_id.is_not(None),
                    sa.or_(
                        sa.and_(
                            Score.c.span_id.is_not(None),
                            _span_of_score(
                                ws,
                                sa.or_(  # a span's text: its values or its messages
                                    *(
                                        sa.cast(column, sa.Text).ilike(pattern, escape=ESCAPE)
                                        for column in (
                                            Span.c.input_value,
                                            Span.c.output_value,
                                            Span.c.input_messages,
                                            Span.c.output_messages,
                                        )
                                    )
                                ),
                            ),
                        ),
                        sa.and_(
                            Score.c.span_id.is_(None),
                            sa.exists(
                                sa.select(sa.literal(1)).where(
                                    Trace.c.workspace_id == ws,
                                    Trace.c.id == Score.c.trace_id,
                                    sa.or_(
                                        Trace.c.input_text.ilike(pattern, escape=ESCAPE),
                                        Trace.c.output_text.ilike(pattern, escape=ESCAPE),
                                    ),
                                )
                            ),
                        ),
                    ),
                )
            )
        where.append(sa.or_(*either))
    count = capped_count(Score, where, sa.bindparam("cap"))
    # a production score has no result, query or model row: outer joins
    joined = (
        Score.outerjoin(Result, Result.c.id == Score.c.result_id)
        .outerjoin(Query, Query.c.id == Score.c.query_id)
        .outerjoin(Model, Model.c.id == Score.c.model_id)
        .join(Metric, Metric.c.id == Score.c.metric_id)
    )
    page = (
        sa.select(
            Score.c.id,
            Score.c.run_id,
            Score.c.value,
            Score.c.normalized,
            Score.c.passed,
            Score.c.label,
            Score.c.reasoning,
            Score.c.error,
            Score.c.judge_model,
            Score.c.created_at,
            Score.c.source,
            Score.c.trace_id,
            Score.c.span_id,
            Score.c.rule_version,
            Metric.c.id.label("metric_id"),
            Metric.c.name.label("metric"),
            Model.c.name.label("model_id"),
            Query.c.id.label("query_id"),
            Query.c.text.label("query"),
            Query.c.theme,
            Result.c.id.label("result_id"),
            Result.c.response_text.label("response"),
            Result.c.latency_ms,
            Result.c.cost_usd,
            # the capped count in the same statement (computed once: it is uncorrelated),
            # so a page is one round trip, not two
            count.scalar_subquery().label("counted"),
        )
        .select_from(joined)
        .where(*where)
        .order_by(Score.c.created_at.desc(), Score.c.id.desc())
        .limit(sa.bindparam("limit"))
        .offset(sa.bindparam("offset"))
    )
    return count, page


def search_scores(
    conn: Connection,
    workspace_id: int,
    f: ResultFilters,
    limit: int,
    offset: int,
    count_cap: int = COUNT_CAP,
) -> tuple[list[dict[str, Any]], int, bool]:
    """A page of scores, newest first, with the number of matches: exact up to
    ``count_cap`` (or the page's end), else a lower bound (the bool says which)."""
    values = {name: getattr(f, name) for name in _FILTERS}
    shape = tuple(v is not None and (name != "text" or bool(v)) for name, v in values.items())
    kind = source_kind(f.source)
    count, page = _statements(shape, kind, conn.dialect.name)
    params: dict[str, Any] = {
        name: v for (name, v), used in zip(values.items(), shape, strict=True) if used
    }
    if "text" in params:
        text = params.pop("text")
        params["pattern"] = like_pattern(text)  # the one LIKE rule: wildcards escaped
    if kind == "named":
        params["source"] = f.source
    cap = rows_to_count(count_cap, offset + limit)
    params["ws"], params["cap"] = workspace_id, cap
    found = conn.execute(page, {**params, "limit": limit, "offset": offset})
    keys = tuple(found.keys())[:-1]  # all but the count
    raw = found.all()
    if raw:
        counted = int(raw[0][-1])
    elif offset:  # past the last match: how many there are, from the count alone
        counted = int(conn.execute(count, params).scalar() or 0)
    else:
        counted = 0
    total, exact = counted_total(counted, cap)
    rows = [dict(zip(keys, r, strict=False)) for r in raw]
    _add_subjects(conn, workspace_id, rows)
    return rows, total, exact


def _add_subjects(conn: Connection, workspace_id: int, rows: list[dict[str, Any]]) -> None:
    """Fill a production score's model, query text, response, latency and cost from its
    span (or, for a trace-level score, its trace): one read per page, not per row."""
    wanted = [r for r in rows if r["trace_id"] is not None and r["result_id"] is None]
    if not wanted:
        return
    newest = max(r["created_at"] for r in wanted)  # a span starts before it is scored
    trace_ids = list({r["trace_id"] for r in wanted})
    spans: dict[tuple[str, str], dict[str, Any]] = {}
    traces: dict[str, dict[str, Any]] = {}
    for part in chunks(trace_ids):
        for s in conn.execute(
            sa.select(
                Span.c.trace_id,
                Span.c.span_id,
                Span.c.model_served,
                Span.c.model_requested,
                Span.c.input_value,
                Span.c.input_messages,
                Span.c.output_value,
                Span.c.output_messages,
                Span.c.latency_ms,
                Span.c.cost_usd,
            ).where(
                Span.c.workspace_id == workspace_id,
                Span.c.trace_id.in_(part),
                Span.c.start_time <= newest,
            )
        ):
            spans[s.trace_id, s.span_id] = dict(s._mapping)
        for t in conn.execute(
            sa.select(
                Trace.c.id,
                Trace.c.models,
                Trace.c.input_text,
                Trace.c.output_text,
                Trace.c.latency_ms,
                Trace.c.cost_usd,
            ).where(Trace.c.workspace_id == workspace_id, Trace.c.id.in_(part))
        ):
            traces[t.id] = dict(t._mapping)
    for r in wanted:
        span = spans.get((r["trace_id"], r["span_id"])) if r["span_id"] else None
        if span is not None:
            text, response = span_input_output(span)
            r["model_id"] = span["model_served"] or span["model_requested"]
            r["query"], r["response"] = text, response
            r["latency_ms"], r["cost_usd"] = span["latency_ms"], span["cost_usd"]
            continue
        trace = traces.get(r["trace_id"])
        if trace is not None:  # a trace's score (or its span is gone: the trace's text)
            models = trace["models"] or []
            r["model_id"] = ", ".join(str(m) for m in models) or None
            r["query"], r["response"] = trace["input_text"], trace["output_text"]
            if r["span_id"] is None:
                r["latency_ms"], r["cost_usd"] = trace["latency_ms"], trace["cost_usd"]


def result_detail(conn: Connection, workspace_id: int, result_id: Any) -> dict[str, Any] | None:
    """One answer with its query, model, run, every score and every person's label."""
    row = conn.execute(
        sa.select(
            Result,
            Query.c.text.label("query"),
            Query.c.theme,
            Query.c.expected,
            Query.c.context,
            Model.c.name.label("model"),
            Run.c.name.label("run_name"),
        )
        .select_from(
            Result.join(Run, Run.c.id == Result.c.run_id)
            .join(Query, Query.c.id == Result.c.query_id)
            .join(Model, Model.c.id == Result.c.model_id)
        )
        .where(Result.c.id == result_id, Run.c.workspace_id == workspace_id)
    ).first()
    if row is None:
        return None
    scores = [
        dict(r._mapping)
        for r in conn.execute(
            sa.select(Score, Metric.c.name.label("metric"), Metric.c.definition)
            .join(Metric, Metric.c.id == Score.c.metric_id)
            .where(Score.c.result_id == result_id)
            .order_by(Metric.c.name)
        )
    ]
    labels = [
        dict(r._mapping)
        for r in conn.execute(
            sa.select(Annotation, Metric.c.name.label("metric"))
            .join(Metric, Metric.c.id == Annotation.c.metric_id)
            .where(Annotation.c.result_id == result_id)
            .order_by(Annotation.c.created_at)
        )
    ]
    return {**dict(row._mapping), "scores": scores, "labels": labels}
