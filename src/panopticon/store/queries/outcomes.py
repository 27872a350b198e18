"""How a run stands: its answers, scores and pairwise judgements counted, what they cost,
and the errors that decide whether it completed or failed."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.store.tables import Metric, Pairwise, Result, Score

__all__ = ["MetricOutcome", "RunCounts", "first_error", "metric_outcomes", "run_counts"]


@dataclass(frozen=True)
class RunCounts:
    """Counts and spend over every stored row of a run (every execution of it)."""

    answers: int  # results without an error
    failed: int  # results with an error (interrupted ones included)
    interrupted: int
    reused: int  # answers taken from the cache
    answer_cost_usd: float  # answers paid for (not the cached ones)
    unknown_cost: int  # answers without a price
    input_tokens: int
    output_tokens: int
    scores: int
    score_errors: int
    score_cost_usd: float  # judge calls paid for
    pairs: int
    pair_errors: int
    pair_cost_usd: float

    @property
    def cost_usd(self) -> float:
        return self.answer_cost_usd + self.score_cost_usd + self.pair_cost_usd


def run_counts(conn: Connection, run_id: int) -> RunCounts:
    r = conn.execute(
        sa.select(
            sa.func.count().filter(Result.c.error.is_(None)),
            sa.func.count().filter(Result.c.error.is_not(None)),
            sa.func.count().filter(Result.c.error_kind == "interrupted"),
            sa.func.count().filter(Result.c.cached.is_(True)),
            sa.func.coalesce(sa.func.sum(Result.c.cost_usd).filter(Result.c.cached.is_(False)), 0),
            sa.func.count().filter(Result.c.error.is_(None), Result.c.cost_usd.is_(None)),
            sa.func.coalesce(sa.func.sum(Result.c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(Result.c.output_tokens), 0),
        ).where(Result.c.run_id == run_id)
    ).one()
    s = conn.execute(
        sa.select(
            sa.func.count().filter(Score.c.error.is_(None)),
            sa.func.count().filter(Score.c.error.is_not(None)),
            sa.func.coalesce(
                sa.func.sum(Score.c.judge_cost_usd).filter(Score.c.judge_cached.is_(False)), 0
            ),
        ).where(Score.c.run_id == run_id)
    ).one()
    p = conn.execute(
        sa.select(
            sa.func.count().filter(Pairwise.c.error.is_(None)),
            sa.func.count().filter(Pairwise.c.error.is_not(None)),
            sa.func.coalesce(
                sa.func.sum(Pairwise.c.judge_cost_usd).filter(Pairwise.c.judge_cached.is_(False)),
                0,
            ),
        ).where(Pairwise.c.run_id == run_id)
    ).one()
    return RunCounts(
        answers=r[0],
        failed=r[1],
        interrupted=r[2],
        reused=r[3],
        answer_cost_usd=float(r[4]),
        unknown_cost=r[5],
        input_tokens=int(r[6]),
        output_tokens=int(r[7]),
        scores=s[0],
        score_errors=s[1],
        score_cost_usd=float(s[2]),
        pairs=p[0],
        pair_errors=p[1],
        pair_cost_usd=float(p[2]),
    )


def first_error(conn: Connection, run_id: int) -> str | None:
    """The error of one failed answer of the run, if any failed."""
    return conn.execute(
        sa.select(Result.c.error)
        .where(Result.c.run_id == run_id, Result.c.error.is_not(None))
        .limit(1)
    ).scalar()


@dataclass(frozen=True)
class MetricOutcome:
    metric: str
    valid: int
    errors: int
    first_error: str | None


def metric_outcomes(conn: Connection, run_id: int) -> list[MetricOutcome]:
    """Per metric of the run (pairwise ones included): valid scores, errors, an error."""
    out = []
    for table in (Score, Pairwise):
        q = (
            sa.select(
                Metric.c.name,
                sa.func.count().filter(table.c.error.is_(None)),
                sa.func.count().filter(table.c.error.is_not(None)),
                sa.func.min(table.c.error),
            )
            .join(Metric, Metric.c.id == table.c.metric_id)
            .where(table.c.run_id == run_id)
            .group_by(Metric.c.name)
        )
        out += [MetricOutcome(str(n), int(v), int(e), f) for n, v, e, f in conn.execute(q).all()]
    return out
