"""Aggregates for the dashboard, computed in the database (GROUP BY), never by loading rows.

Each returns sums (n, sum, sum of squares) so that the service computes means and
intervals exactly as the run summaries do, whatever the number of scores.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.store.tables import Metric, Model, Query, Result, Run, Score

__all__ = [
    "day_of",
    "recent_failures",
    "run_days",
    "score_moments",
    "totals",
]


def day_of(conn: Connection, column: Any) -> Any:
    """``YYYY-MM-DD`` (UTC) of a timestamp column, on either backend."""
    if conn.dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
    return sa.func.substr(column, 1, 10)  # SQLite stores UTC 'YYYY-MM-DD HH:MM:SS'


def totals(conn: Connection, workspace_id: int, since: datetime | None) -> dict[str, Any]:
    runs = sa.select(Run.c.id).where(Run.c.workspace_id == workspace_id)
    if since is not None:
        runs = runs.where(Run.c.created_at >= since)
    r = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(Result.c.error.is_not(None)),
            sa.func.coalesce(sa.func.sum(Result.c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(Result.c.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(Result.c.cost_usd).filter(Result.c.cached.is_(False)), 0),
            sa.func.count().filter(Result.c.cached.is_(True)),
        ).where(Result.c.run_id.in_(runs))
    ).one()
    n_runs = conn.scalar(sa.select(sa.func.count()).select_from(runs.subquery()))
    return {
        "runs": int(n_runs or 0),
        "answers": int(r[0]),
        "failed": int(r[1]),
        "cached": int(r[5]),
        "input_tokens": int(r[2]),
        "output_tokens": int(r[3]),
        "cost_usd": float(r[4]),
    }


def run_days(conn: Connection, workspace_id: int, since: datetime | None) -> list[dict[str, Any]]:
    day = day_of(conn, Run.c.created_at)
    q = (
        sa.select(day.label("day"), Run.c.status, sa.func.count().label("n"))
        .where(Run.c.workspace_id == workspace_id)
        .group_by(day, Run.c.status)
        .order_by(day)
    )
    if since is not None:
        q = q.where(Run.c.created_at >= since)
    return [dict(r._mapping) for r in conn.execute(q)]


def score_moments(
    conn: Connection,
    workspace_id: int,
    *,
    by: tuple[str, ...],
    run_id: int | None = None,
    metric: str | None = None,
    since: datetime | None = None,
    judges: bool = False,
) -> list[dict[str, Any]]:
    """Per group: n, sum and sum of squares of normalised scores (0..1, higher is better;
    pass/fail counts as 1/0), passed and judged-with-a-threshold counts, errors. ``by``
    names the groups: any of model, metric, theme, day; ``judges`` adds the judges'
    score count, tokens and cost. Scores carry their workspace,
    model and query, so only a theme needs a join (to the query)."""
    value = sa.case(
        (Score.c.normalized.is_not(None), Score.c.normalized),
        (Score.c.passed.is_(True), 1.0),
        (Score.c.passed.is_(False), 0.0),
        else_=None,
    )
    columns = {
        "model": Score.c.model_id,
        "metric": Score.c.metric_id,
        "theme": Query.c.theme,
        "day": day_of(conn, Score.c.created_at),
    }
    sums = {
        "n": sa.func.count(value),
        "total": sa.func.coalesce(sa.func.sum(value), 0.0),
        "squares": sa.func.coalesce(sa.func.sum(value * value), 0.0),
        "passed": sa.func.count().filter(Score.c.passed.is_(True)),
        "with_threshold": sa.func.count().filter(Score.c.passed.is_not(None)),
        "errors": sa.func.count().filter(Score.c.error.is_not(None)),
    }
    if judges:  # the judges' count, tokens and cost: each aggregate costs a little
        sums |= {
            "scores": sa.func.count(),
            "judge_cost_usd": sa.func.coalesce(
                sa.func.sum(Score.c.judge_cost_usd).filter(Score.c.judge_cached.is_(False)), 0
            ),
            "judge_input": sa.func.coalesce(sa.func.sum(Score.c.judge_input_tokens), 0),
            "judge_output": sa.func.coalesce(sa.func.sum(Score.c.judge_output_tokens), 0),
        }
    source: Any = Score
    if "theme" in by:  # the one join: scores carry the query, not its theme
        source = Score.join(Query, Query.c.id == Score.c.query_id)
    q: Any = (
        sa.select(*[columns[b].label(b) for b in by], *[f.label(k) for k, f in sums.items()])
        .select_from(source)
        # offline views: scores of run results (a production trace's scores have no model)
        .where(Score.c.workspace_id == workspace_id, Score.c.model_id.is_not(None))
        .group_by(*[columns[b] for b in by])
    )
    if run_id is not None:
        q = q.where(Score.c.run_id == run_id)
    if metric is not None:
        q = q.where(
            Score.c.metric_id.in_(
                sa.select(Metric.c.id).where(
                    Metric.c.workspace_id == workspace_id, Metric.c.name == metric
                )
            )
        )
    if since is not None and _older_runs(conn, workspace_id, since):
        # by the runs of the period (a scan by time would read at random); skipped when
        # every run is in the period, the common case, which then reads in index order
        q = q.where(
            Score.c.run_id.in_(
                sa.select(Run.c.id).where(
                    Run.c.workspace_id == workspace_id, Run.c.created_at >= since
                )
            )
        )
    rows = [dict(r._mapping) for r in conn.execute(q)]
    # ids to names: the model and metric tables are small
    if "model" in by:
        names = {
            int(i): str(n)
            for i, n in conn.execute(
                sa.select(Model.c.id, Model.c.name).where(Model.c.workspace_id == workspace_id)
            )
        }
        for r in rows:
            r["model"] = names.get(r["model"], f"model {r['model']}")
    if "metric" in by:
        names = {
            int(i): str(n)
            for i, n in conn.execute(
                sa.select(Metric.c.id, Metric.c.name).where(Metric.c.workspace_id == workspace_id)
            )
        }
        for r in rows:
            r["metric"] = names.get(r["metric"], f"metric {r['metric']}")
    return sorted(rows, key=lambda r: tuple(str(r[b]) for b in by))


def _older_runs(conn: Connection, workspace_id: int, since: datetime) -> bool:
    oldest = conn.scalar(
        sa.select(sa.func.min(Run.c.created_at)).where(Run.c.workspace_id == workspace_id)
    )
    if oldest is None:
        return False
    if oldest.tzinfo is None:  # SQLite gives naive UTC
        from datetime import UTC

        oldest = oldest.replace(tzinfo=UTC)
    return bool(oldest < since)


def recent_failures(conn: Connection, workspace_id: int, limit: int) -> list[dict[str, Any]]:
    # the newest failures first, from the (small) index of failures alone
    latest = (
        sa.select(Result.c.id)
        .where(
            Result.c.error.is_not(None),
            Result.c.run_id.in_(sa.select(Run.c.id).where(Run.c.workspace_id == workspace_id)),
        )
        .order_by(Result.c.created_at.desc())
        .limit(limit)
        .subquery()
    )
    q = (
        sa.select(
            Result.c.id,
            Result.c.run_id,
            Result.c.error,
            Result.c.error_kind,
            Result.c.created_at,
            Model.c.name.label("model"),
            Query.c.text.label("query"),
        )
        .select_from(
            Result.join(Run, Run.c.id == Result.c.run_id)
            .join(Model, Model.c.id == Result.c.model_id)
            .join(Query, Query.c.id == Result.c.query_id)
        )
        .where(Result.c.id.in_(sa.select(latest.c.id)))
        .order_by(Result.c.created_at.desc())
    )
    return [dict(r._mapping) for r in conn.execute(q)]
