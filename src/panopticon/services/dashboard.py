"""What the dashboard shows: workspace totals, scores by model, theme and day, with
intervals. Aggregated by the database; intervals computed as in the run summaries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from panopticon.stats.intervals import moments_interval, wilson
from panopticon.store.engine import Engine
from panopticon.store.queries import dashboard as q

__all__ = ["Cell", "heatmap", "model_metrics", "overview", "trends"]


@dataclass(frozen=True)
class Cell:
    """Normalised scores (0..1, higher is better) of one group, with a 95% t interval."""

    n: int
    mean: float | None
    low: float | None
    high: float | None
    pass_rate: float | None
    pass_low: float | None
    pass_high: float | None
    errors: int

    @classmethod
    def of(cls, row: dict[str, Any]) -> Cell:
        n = int(row["n"])
        ci = moments_interval(n, float(row["total"]), float(row["squares"])) if n else None
        judged, passed = int(row["with_threshold"]), int(row["passed"])
        pr = wilson(passed, judged) if judged else None
        # normalised scores live in 0..1: an interval is not drawn past the scale's ends
        return cls(
            n,
            ci.estimate if ci else None,
            max(0.0, ci.low) if ci and ci.low is not None else None,
            min(1.0, ci.high) if ci and ci.high is not None else None,
            pr.estimate if pr else None,
            pr.low if pr else None,
            pr.high if pr else None,
            int(row["errors"]),
        )


def _since(days: int | None) -> datetime | None:
    return datetime.now(UTC) - timedelta(days=days) if days else None


def overview(engine: Engine, workspace_id: int, days: int | None = 30) -> dict[str, Any]:
    """Totals, runs per day by status, mean score by model, and the latest failures."""
    since = _since(days)
    with engine.connect() as conn:
        totals = q.totals(conn, workspace_id, since)
        per_day = q.run_days(conn, workspace_id, since)
        by_model = q.score_moments(conn, workspace_id, by=("model",), since=since, judges=True)
        failures = q.recent_failures(conn, workspace_id, 10)
    # the judges' share, from the same pass over the scores
    totals["scores"] = sum(int(r["scores"]) for r in by_model)
    totals["score_errors"] = sum(int(r["errors"]) for r in by_model)
    totals["input_tokens"] += sum(int(r["judge_input"]) for r in by_model)
    totals["output_tokens"] += sum(int(r["judge_output"]) for r in by_model)
    totals["cost_usd"] += sum(float(r["judge_cost_usd"]) for r in by_model)
    statuses = sorted({r["status"] for r in per_day})
    day_list = sorted({r["day"] for r in per_day})
    counts = {(r["day"], r["status"]): int(r["n"]) for r in per_day}
    return {
        "days": days,
        "totals": totals,
        "runs_per_day": {
            "days": day_list,
            "series": [
                {"status": s, "counts": [counts.get((d, s), 0) for d in day_list]} for s in statuses
            ],
        },
        "models": [{"model": r["model"], **Cell.of(r).__dict__} for r in by_model],
        "failures": failures,
    }


def model_metrics(engine: Engine, workspace_id: int, run_id: int | None) -> dict[str, Any]:
    """Model x metric cells (one run, or every run)."""
    with engine.connect() as conn:
        rows = q.score_moments(conn, workspace_id, by=("model", "metric"), run_id=run_id)
    models = sorted({r["model"] for r in rows})
    metrics = sorted({r["metric"] for r in rows})
    cells = {(r["model"], r["metric"]): Cell.of(r) for r in rows}
    return {"models": models, "metrics": metrics, "cells": cells}


def heatmap(
    engine: Engine, workspace_id: int, run_id: int | None, metric: str | None
) -> dict[str, Any]:
    """Model x theme cells, over one metric or all of them."""
    with engine.connect() as conn:
        rows = q.score_moments(
            conn, workspace_id, by=("model", "theme"), run_id=run_id, metric=metric
        )
    return {
        "models": sorted({r["model"] for r in rows}),
        "themes": sorted({r["theme"] for r in rows}),
        "cells": {(r["model"], r["theme"]): Cell.of(r) for r in rows},
    }


def trends(engine: Engine, workspace_id: int, metric: str | None, days: int) -> dict[str, Any]:
    """Per model, one metric's daily mean with its interval."""
    with engine.connect() as conn:
        rows = q.score_moments(
            conn, workspace_id, by=("model", "day"), metric=metric, since=_since(days)
        )
    # every day from the first with scores to today, so that gaps show as gaps
    seen = sorted({r["day"] for r in rows})
    day_list: list[str] = []
    if seen:
        first = datetime.strptime(seen[0], "%Y-%m-%d").replace(tzinfo=UTC).date()
        last = max(datetime.now(UTC).date(), datetime.strptime(seen[-1], "%Y-%m-%d").date())
        day_list = [str(first + timedelta(days=i)) for i in range((last - first).days + 1)]
    cells = {(r["model"], r["day"]): Cell.of(r) for r in rows}
    models = sorted({r["model"] for r in rows})
    return {
        "days": day_list,
        "series": [
            {
                "model": m,
                "mean": [_get(cells, m, d, "mean") for d in day_list],
                "low": [_get(cells, m, d, "low") for d in day_list],
                "high": [_get(cells, m, d, "high") for d in day_list],
                "n": [_get(cells, m, d, "n") for d in day_list],
            }
            for m in models
        ],
    }


def _get(cells: dict[tuple[str, str], Cell], model: str, day: str, attr: str) -> Any:
    cell = cells.get((model, day))
    return getattr(cell, attr) if cell is not None else None
