"""Scores with their context, filtered and paged (``GET /api/judge/results``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.store.queries.match import contains
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
    # scores carry their workspace, model and query: filters need no join
    where: list[Any] = [Score.c.workspace_id == workspace_id]
    if f.theme is not None:
        where.append(
            Score.c.query_id.in_(
                sa.select(Query.c.id).where(
                    Query.c.workspace_id == workspace_id, Query.c.theme == f.theme
                )
            )
        )
    if f.model is not None:
        where.append(
            Score.c.model_id.in_(
                sa.select(Model.c.id).where(
                    Model.c.workspace_id == workspace_id, Model.c.name == f.model
                )
            )
        )
    if f.metric is not None:
        where.append(
            Score.c.metric_id.in_(
                sa.select(Metric.c.id).where(
                    Metric.c.workspace_id == workspace_id, Metric.c.name == f.metric
                )
            )
        )
    if f.run_id is not None:
        where.append(Score.c.run_id == f.run_id)
    if f.since is not None:
        where.append(Score.c.created_at >= f.since)
    if f.until is not None:
        where.append(Score.c.created_at < f.until)
    if f.min_score is not None:
        where.append(Score.c.value >= f.min_score)
    if f.max_score is not None:
        where.append(Score.c.value <= f.max_score)
    if f.passed is not None:
        where.append(Score.c.passed.is_(f.passed))
    if f.text:  # each table searched once, then the scores of what matched
        where.append(
            sa.or_(
                Score.c.query_id.in_(
                    sa.select(Query.c.id).where(
                        Query.c.workspace_id == workspace_id,
                        contains(Query.c.text, f.text),
                    )
                ),
                Score.c.result_id.in_(
                    sa.select(Result.c.id).where(contains(Result.c.response_text, f.text))
                ),
            )
        )
    cap = max(count_cap, offset + limit) + 1
    matches = sa.select(sa.literal(1)).select_from(Score).where(*where).limit(cap).subquery()
    total = int(conn.execute(sa.select(sa.func.count()).select_from(matches)).scalar() or 0)
    exact = total < cap
    joined = (
        Score.join(Result, Result.c.id == Score.c.result_id)
        .join(Query, Query.c.id == Score.c.query_id)
        .join(Model, Model.c.id == Score.c.model_id)
        .join(Metric, Metric.c.id == Score.c.metric_id)
    )
    q = (
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
        .limit(limit)
        .offset(offset)
    )
    rows = [dict(r._mapping) for r in conn.execute(q)]
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
