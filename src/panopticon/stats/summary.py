"""Run summaries, each aggregate with its uncertainty.

Per model: answers, failures, tokens, cost, and latency, token and cost distributions. Per
model x metric (and per model x metric x theme): the mean and the pass rate with 95%
intervals, n, errors, judge tokens and cost, the distribution of values, and with repeats
the spread of each item's scores across repeats (the model's and the judge's stability).

Scores are clustered by query: repeats of a query are not new evidence about the model's
mean over queries, so intervals are cluster-robust and ``clusters`` (the number of
queries) is the sample size that counts. A score on a bounded scale (a rubric's 1-10,
pass/fail) gets an interval inside the scale (:func:`~panopticon.stats.intervals.bounded_interval`);
a score without bounds (a latency) a cluster-robust t interval.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from statistics import fmean, pstdev
from typing import Any

from panopticon.stats.intervals import (
    ClusterSums,
    Interval,
    bounded_interval,
    clustered_interval,
)
from panopticon.stats.kinds import ScoreKind
from panopticon.stats.percentiles import percentile, percentiles

__all__ = [
    "MetricSummary",
    "ModelSummary",
    "Summary",
    "comparable_value",
    "composite",
    "summarize",
]


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
    distributions: dict[str, dict[str, float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricSummary:
    model: str
    metric: str
    n: int
    errors: int
    mean: float | None
    mean_low: float | None
    mean_high: float | None
    mean_normalized: float | None
    passed: int
    with_threshold: int
    pass_low: float | None
    pass_high: float | None
    judge_tokens: int
    judge_cost_usd: float | None
    theme: str | None = None
    repeat_sd: float | None = None  # mean over items of the SD across repeats
    distribution: dict[str, float | None] = field(default_factory=dict)
    clusters: int = 0  # queries behind the n scores: the interval's sample size
    # the normalised mean's 95% interval (0 worst, 1 best), clustered by query as the mean's
    normalized_low: float | None = None
    normalized_high: float | None = None
    # the pass rate with score errors counted as failures (a CI gate's measure): its interval
    gate_low: float | None = None
    gate_high: float | None = None
    gate_clusters: int = 0  # queries behind that interval (those with a score error too)

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.with_threshold if self.with_threshold else None


@dataclass(frozen=True)
class Summary:
    models: list[ModelSummary]
    metrics: list[MetricSummary]
    by_theme: list[MetricSummary] = field(default_factory=list)

    def gate_pass_rate(self) -> float | None:
        """Passed over every pass/fail score, where every score error counts as not passed
        (a judge that cannot answer must not make a gate pass)."""
        if not any(m.with_threshold for m in self.metrics):
            return None
        total = sum(m.with_threshold + m.errors for m in self.metrics)
        return sum(m.passed for m in self.metrics) / total if total else None

    def as_dict(self) -> dict[str, Any]:
        def metric(m: MetricSummary) -> dict[str, Any]:
            return {**asdict(m), "pass_rate": m.pass_rate}

        return {
            "models": [asdict(m) for m in self.models],
            "metrics": [metric(m) for m in self.metrics],
            "by_theme": [metric(m) for m in self.by_theme],
        }


def comparable_value(score: dict[str, Any]) -> float | None:
    """A score on a 0..1, higher-is-better scale: its normalised value, else pass/fail as
    1/0; None for an error or a score with neither."""
    if score["error"] is not None:
        return None
    if score["normalized"] is not None:
        return float(score["normalized"])
    return None if score["passed"] is None else float(score["passed"])


def _clusters(scores: list[dict[str, Any]], key: str) -> list[list[float]]:
    """The scores' ``key`` values grouped by query (a score without a query is its own)."""
    groups: dict[Any, list[float]] = defaultdict(list)
    for i, s in enumerate(scores):
        value = s[key]
        if value is not None:
            query = s.get("query_id")
            groups[("q", query) if query is not None else ("s", i)].append(float(value))
    return list(groups.values())


def _interval(
    groups: list[list[float]], bounds: tuple[float, float] | None, binary: bool
) -> Interval | None:
    sums = ClusterSums.of(groups)
    if sums.n == 0:
        return None
    if bounds is None:
        return clustered_interval(sums)
    return bounded_interval(sums, *bounds, binary=binary)


def _bounds(values: list[float], kind: ScoreKind | None) -> tuple[float, float] | None:
    if kind is not None:
        return kind.bounds
    # no kind known (a summary of bare rows): values within 0..1 are read as that scale
    return (0.0, 1.0) if values and all(0.0 <= v <= 1.0 for v in values) else None


def _metric_summary(
    model: str,
    metric: str,
    scores: list[dict[str, Any]],
    theme: str | None,
    kind: ScoreKind | None = None,
) -> MetricSummary:
    good = [s for s in scores if s["error"] is None]
    values = [s["value"] for s in good if s["value"] is not None]
    normalized = [s["normalized"] for s in good if s["normalized"] is not None]
    judged = [s for s in good if s["passed"] is not None]
    passed = sum(1 for s in judged if s["passed"])
    judge_costs = [s["judge_cost_usd"] for s in scores if s["judge_model"]]
    value_groups = _clusters(good, "value")
    binary = kind.binary if kind else all(v in (0.0, 1.0) for v in values)
    interval = _interval(value_groups, _bounds(values, kind), binary)
    rate = _interval(
        _clusters([{**s, "pass": float(s["passed"])} for s in judged], "pass"), (0.0, 1.0), True
    )
    spreads = [pstdev(v) for v in value_groups if len(v) > 1]
    scaled = _interval(_clusters(good, "normalized"), (0.0, 1.0), binary)
    strict = (
        _interval(
            _clusters(
                [
                    {**s, "pass": float(s["error"] is None and bool(s["passed"]))}
                    for s in scores
                    if s["error"] is not None or s["passed"] is not None
                ],
                "pass",
            ),
            (0.0, 1.0),
            True,
        )
        if judged
        else None
    )
    return MetricSummary(
        model,
        metric,
        len(good),
        len(scores) - len(good),
        interval.estimate if interval else None,
        interval.low if interval else None,
        interval.high if interval else None,
        fmean(normalized) if normalized else None,
        passed,
        len(judged),
        rate.low if rate else None,
        rate.high if rate else None,
        sum((s["judge_input_tokens"] or 0) + (s["judge_output_tokens"] or 0) for s in scores),
        None if any(c is None for c in judge_costs) else float(sum(judge_costs)),
        theme,
        fmean(spreads) if spreads else None,
        percentiles(values) if values else {},
        (interval.clusters or 0) if interval else 0,
        scaled.low if scaled else None,
        scaled.high if scaled else None,
        strict.low if strict else None,
        strict.high if strict else None,
        (strict.clusters or 0) if strict else 0,
    )


def composite(rows: Iterable[dict[str, Any]], metrics: Iterable[str]) -> Interval | None:
    """The mean over answers of each answer's mean comparable value (normalised score, or
    pass/fail as 1/0) over ``metrics``, with a 95% interval clustered by query: repeats of a
    query, and one answer's several metrics, are not independent observations. None when no
    answer has such a score."""
    wanted = set(metrics)
    groups: dict[Any, list[float]] = defaultdict(list)
    for i, row in enumerate(rows):
        values = [
            v
            for name, score in row["scores"].items()
            if name in wanted and (v := comparable_value(score)) is not None
        ]
        if values:
            query = row.get("query_id")
            groups[("q", query) if query is not None else ("r", i)].append(fmean(values))
    return _interval(list(groups.values()), (0.0, 1.0), False)


def summarize(
    rows: Iterable[dict[str, Any]], kinds: Mapping[str, ScoreKind] | None = None
) -> Summary:
    """From result rows as :func:`panopticon.store.queries.runs.summary_inputs` yields.
    ``kinds``: each metric's :class:`ScoreKind` (its scale's bounds choose the interval);
    without it, a metric whose values all lie in 0..1 is taken to be on that scale."""
    kinds = kinds or {}
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_metric: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    by_theme: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_model[row["model"]].append(row)
        for name, score in row["scores"].items():
            item = {**score, "query_id": row.get("query_id")}
            by_metric[(row["model"], name)].append(item)
            if row.get("theme") is not None:
                by_theme[(row["model"], name, row["theme"])].append(item)
    models = []
    for model, results in sorted(by_model.items()):
        ok = [r for r in results if r["error"] is None]
        costs = [r["cost_usd"] for r in ok]
        latencies = sorted(r["latency_ms"] for r in ok if r["latency_ms"] is not None)
        known_costs = [c for c in costs if c is not None]
        models.append(
            ModelSummary(
                model,
                len(ok),
                len(results) - len(ok),
                sum(1 for r in ok if r["cached"]),
                sum(r["input_tokens"] or 0 for r in ok),
                sum(r["output_tokens"] or 0 for r in ok),
                None if any(c is None for c in costs) else float(sum(costs)),
                percentile(latencies, 50),
                percentile(latencies, 95),
                {
                    "latency_ms": percentiles(latencies),
                    "output_tokens": percentiles(
                        [r["output_tokens"] for r in ok if r["output_tokens"] is not None]
                    ),
                    "cost_usd": percentiles(known_costs),
                },
            )
        )
    metrics = [
        _metric_summary(model, metric, scores, None, kinds.get(metric))
        for (model, metric), scores in sorted(by_metric.items())
    ]
    themes = [
        _metric_summary(model, metric, scores, theme, kinds.get(metric))
        for (model, metric, theme), scores in sorted(by_theme.items())
    ]
    return Summary(models, metrics, themes)
