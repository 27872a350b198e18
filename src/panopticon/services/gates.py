"""CI gates on a finished run: per-metric thresholds and regressions against a baseline.

A threshold is on a metric's pass rate (score errors count as failures) when the metric has
a pass mark, otherwise on its mean normalised score (0..1); every model of the run (every
``model@prompt`` with prompt variants) must reach it. A regression is a metric on which
the run is significantly worse than the baseline by the paired test ``compare`` uses,
after its Holm correction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from panopticon.errors import ConfigError, Issue

# imported where they are used, not before a run's first call: the comparison when a
# baseline is given, the summary when the run has finished
if TYPE_CHECKING:
    from panopticon.services.compare import Comparison
    from panopticon.stats.paired import PairedResult
    from panopticon.stats.summary import MetricSummary, Summary
    from panopticon.store.engine import Engine

__all__ = [
    "GateResult",
    "Regression",
    "check_thresholds",
    "find_regressions",
    "merge_thresholds",
    "parse_thresholds",
    "suite_gates",
]


@dataclass(frozen=True)
class GateResult:
    model: str
    metric: str
    measure: str  # "pass rate" or "mean"
    value: float | None  # None: no valid score at all, which fails
    threshold: float
    # the value's 95% interval, clustered by query (None: one query is too few to say)
    low: float | None = None
    high: float | None = None
    queries: int = 0

    @property
    def passed(self) -> bool:
        """On the value itself, as a CI gate must decide; :attr:`settled` says whether
        the interval agrees."""
        return self.value is not None and self.value >= self.threshold

    @property
    def settled(self) -> bool:
        """The whole interval is on the verdict's side of the threshold: more queries
        would not be expected to change it. False when the interval reaches across it, or
        when there is none."""
        if self.low is None or self.high is None:
            return False
        return self.low >= self.threshold if self.passed else self.high < self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "settled": self.settled}


@dataclass(frozen=True)
class Regression:
    comparison: Comparison
    result: PairedResult


def parse_thresholds(items: Iterable[str]) -> dict[str, float]:
    """``metric=value`` pairs from ``--threshold``; every problem reported at once."""
    out: dict[str, float] = {}
    issues = []
    for item in items:
        name, sep, raw = item.partition("=")
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not sep or not name.strip() or not 0 <= value <= 1:
            issues.append(
                Issue(
                    f"cannot read --threshold '{item}'",
                    field="--threshold",
                    hint="write METRIC=VALUE with VALUE from 0 to 1, e.g. --threshold correct=0.9",
                )
            )
            continue
        out[name.strip()] = value
    if issues:
        raise ConfigError(issues)
    return out


def merge_thresholds(
    suite_gates: dict[str, float], overrides: dict[str, float], metrics: Iterable[str]
) -> dict[str, float]:
    """The suite's ``gates:`` with the command line's thresholds over them; a threshold on
    a metric the suite does not have is refused before anything is paid for."""
    known = set(metrics)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            [
                Issue(
                    f"--threshold names '{name}', which is not a metric of this suite",
                    field="--threshold",
                    hint="name one of: " + (", ".join(sorted(known)) or "(no metrics)"),
                )
                for name in unknown
            ]
        )
    return {**suite_gates, **overrides}


def _measure(s: MetricSummary) -> tuple[str, float | None, float | None, float | None, int]:
    """The gate's measure, its value, its interval and the queries behind the interval."""
    if s.with_threshold:
        rate = s.passed / (s.with_threshold + s.errors)
        return "pass rate", rate, s.gate_low, s.gate_high, s.gate_clusters
    return "mean", s.mean_normalized, s.normalized_low, s.normalized_high, s.clusters


def check_thresholds(summary: Summary, thresholds: dict[str, float]) -> list[GateResult]:
    """One result per model and thresholded metric; a model with no score of a metric
    (every score failed) fails that gate."""
    out = []
    by_key = {(s.model, s.metric): s for s in summary.metrics}
    for model in sorted({m.model for m in summary.models}):
        for metric, threshold in sorted(thresholds.items()):
            s = by_key.get((model, metric))
            if s is None:
                out.append(GateResult(model, metric, "mean", None, threshold))
                continue
            measure, value, low, high, queries = _measure(s)
            out.append(GateResult(model, metric, measure, value, threshold, low, high, queries))
    return out


def find_regressions(engine: Engine, baseline_id: int, run_id: int) -> list[Regression]:
    """Metrics on which the run is significantly worse than the baseline."""
    from panopticon.services.compare import compare_runs, worse

    comparisons = compare_runs(engine, baseline_id, run_id)
    return [Regression(c, r) for c, r in worse(comparisons)]


def suite_gates(summary: Summary, suite: dict[str, Any]) -> list[GateResult]:
    """The outcome of the gates a run's suite set (``gates:``), for the API and dashboard."""
    gates = suite.get("gates") or {}
    if not isinstance(gates, dict):
        return []
    return check_thresholds(summary, {str(k): float(v) for k, v in gates.items()})
