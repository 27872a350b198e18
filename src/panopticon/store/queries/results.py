"""Scores with their context, filtered and paged (``GET /api/judge/results``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.store.queries.match import ESCAPE, like_pattern
from panopticon.store.tables import Annotation, Metric, Model, Query, Result, Run, Score

__all__ = ["ResultFilters", "result_detail", "search_scores"]


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
    text: str | None = None  # in the query or the response


# Counting every match of a broad filter over millions of scores costs more than the page
# itself: past this many, the total is reported as "at least" (total_exact false).
COUNT_CAP = 10_000


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


@functools.lru_cache(maxsize=1024)
def _statements(shape: tuple[bool, ...]) -> tuple[Any, Any]:
    """The count and page statements for one combination of filters, with every value a
    bound parameter: built (and compiled) once, then reused by every request. Building a
    join of five tables and 19 columns cost more than running it."""
    on = dict(zip(_FILTERS, shape, strict=True))
    ws: Any = sa.bindparam("ws")
    # scores carry their workspace, model and query: filters need no join
    # scores of run results; scores of production traces are read with their traces
    where: list[Any] = [Score.c.workspace_id == ws, Score.c.result_id.is_not(None)]
    if on["theme"]:
        where.append(
            Score.c.query_id.in_(
                sa.select(Query.c.id).where(
                    Query.c.workspace_id == ws, Query.c.theme == sa.bindparam("theme")
                )
            )
        )
    if on["model"]:
        where.append(
            Score.c.model_id.in_(
                sa.select(Model.c.id).where(
                    Model.c.workspace_id == ws, Model.c.name == sa.bindparam("model")
                )
            )
        )
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
        where.append(
            sa.or_(
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
            )
        )
    matches = (
        sa.select(sa.literal(1)).select_from(Score).where(*where).limit(sa.bindparam("cap"))
    ).subquery()
    count = sa.select(sa.func.count()).select_from(matches)
    joined = (
        Score.join(Result, Result.c.id == Score.c.result_id)
        .join(Query, Query.c.id == Score.c.query_id)
        .join(Model, Model.c.id == Score.c.model_id)
        .join(Metric, Metric.c.id == Score.c.metric_id)
    )
    page = (
        sa.select(
            Score.c.id,
            Score.c.run_id,
            Score.c.value,
            Score.c.normalized,
            Score.c.passed,
            Score.c.reasoning,
            Score.c.error,
            Score.c.judge_model,
            Score.c.created_at,
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
    count, page = _statements(shape)
    params: dict[str, Any] = {
        name: v for (name, v), used in zip(values.items(), shape, strict=True) if used
    }
    if "text" in params:
        text = params.pop("text")
        params["pattern"] = like_pattern(text)  # the one LIKE rule: wildcards escaped
    cap = max(count_cap, offset + limit) + 1
    total = int(conn.execute(count, {**params, "ws": workspace_id, "cap": cap}).scalar() or 0)
    exact = total < cap
    rows = [
        dict(r._mapping)
        for r in conn.execute(
            page, {**params, "ws": workspace_id, "limit": limit, "offset": offset}
        )
    ]
    return rows, (total if exact else cap - 1), exact


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
