"""The end-of-run summary: per model (answers, tokens, cost, latency) and per model x metric
(mean, pass rate, n, errors, judge tokens and cost)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import fmean
from typing import Any

__all__ = ["MetricSummary", "ModelSummary", "Summary", "summarize"]


@dataclass(frozen=True)
class ModelSummary:
    model: str
    answers: int
    failed: int
    cached: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # None: some answers had no known price
    latency_p50_ms: float | None
    latency_p95_ms: float | None


@dataclass(frozen=True)
class MetricSummary:
    model: str
    metric: str
    n: int
    errors: int
    mean: float | None
    mean_normalized: float | None
    passed: int
    with_threshold: int
    judge_tokens: int
    judge_cost_usd: float | None

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.with_threshold if self.with_threshold else None


@dataclass(frozen=True)
class Summary:
    models: list[ModelSummary]
    metrics: list[MetricSummary]

    def gate_pass_rate(self) -> float | None:
        """Passed over everything with a threshold; a score error counts as not passed."""
        total = sum(
            m.with_threshold + m.errors for m in self.metrics if m.with_threshold or m.errors
        )
        if not any(m.with_threshold for m in self.metrics):
            return None
        return sum(m.passed for m in self.metrics) / total if total else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "models": [vars(m) for m in self.models],
            "metrics": [{**vars(m), "pass_rate": m.pass_rate} for m in self.metrics],
        }


def _percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (NumPy's default method)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _mean(values: list[float]) -> float | None:
    return fmean(values) if values else None


def summarize(rows: Iterable[dict[str, Any]]) -> Summary:
    """From result rows as :func:`panopticon.store.queries.runs.iter_result_rows` yields."""
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_metric: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_model[row["model"]].append(row)
        for name, score in row["scores"].items():
            by_metric[(row["model"], name)].append(score)
    models = []
    for model, results in sorted(by_model.items()):
        ok = [r for r in results if r["error"] is None]
        costs = [r["cost_usd"] for r in ok]
        latencies = [r["latency_ms"] for r in ok if r["latency_ms"] is not None]
        models.append(
            ModelSummary(
                model,
                len(ok),
                len(results) - len(ok),
                sum(1 for r in ok if r["cached"]),
                sum(r["input_tokens"] or 0 for r in ok),
                sum(r["output_tokens"] or 0 for r in ok),
                None if any(c is None for c in costs) else float(sum(costs)),
                _percentile(latencies, 50),
                _percentile(latencies, 95),
            )
        )
    metrics = []
    for (model, metric), scores in sorted(by_metric.items()):
        good = [s for s in scores if s["error"] is None]
        values = [s["value"] for s in good if s["value"] is not None]
        normalized = [s["normalized"] for s in good if s["normalized"] is not None]
        judged = [s for s in good if s["passed"] is not None]
        judge_costs = [s["judge_cost_usd"] for s in scores if s["judge_model"]]
        metrics.append(
            MetricSummary(
                model,
                metric,
                len(good),
                len(scores) - len(good),
                _mean(values),
                _mean(normalized),
                sum(1 for s in judged if s["passed"]),
                len(judged),
                sum(
                    (s["judge_input_tokens"] or 0) + (s["judge_output_tokens"] or 0) for s in scores
                ),
                None if any(c is None for c in judge_costs) else float(sum(judge_costs)),
            )
        )
    return Summary(models, metrics)
