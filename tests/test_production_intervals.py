"""Production scores' intervals keep their promise: simulated traces of known truth.

GET /api/production/summary (and the dashboard) give each model (source) a mean and a pass
rate with 95% intervals clustered by trace (services.dashboard.Cell.of on the sums of
store.queries.dashboard.production_moments). Several scores of one trace (its spans scored
by a rule, several people's labels) share the trace's quality, so they are correlated: an
interval that counted scores as independent would cover far less than 95%.

Each scenario draws 400 data sets: traces whose quality ``a`` is drawn from a known
distribution, each with a random number of scores around ``a``; the truth is the expected
score. The sums are built as production_moments builds them (a score's value: normalised,
else pass/fail as 1/0; per trace, then per group); test_production_scores checks that the
database's sums give the same interval as these. Fixed seeds: the test is deterministic.
With 400 sets the binomial standard error at 95% is 1.1%, so coverage below 91.7% (three
of them) fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from panopticon.services.dashboard import Cell

DATASETS = 400
FLOOR = 0.95 - 3 * (0.95 * 0.05 / DATASETS) ** 0.5  # 0.917

# one trace's scores: (normalised value or None, passed or None)
Trace = list[tuple[float | None, bool | None]]


def _row(traces: list[Trace]) -> dict[str, Any]:
    """A production_moments row for these traces (one group): the score sums, then the sums
    over traces (clusters) of the value and of the pass/fail."""
    r: dict[str, Any] = dict.fromkeys(
        ("n", "passed", "with_threshold", "errors", "clusters", "pass_clusters", "unscored"), 0
    )
    r |= dict.fromkeys(
        (
            "total",
            "squares",
            "totals_sq",
            "totals_sizes",
            "sizes_sq",
            "sizes_cubed",
            "pass_totals_sq",
            "pass_totals_sizes",
            "pass_sizes_sq",
            "pass_sizes_cubed",
        ),
        0.0,
    )
    r["labels"] = []
    for scores in traces:
        n = pn = pt = 0
        t = 0.0
        for normalized, passed in scores:
            value = normalized if normalized is not None else (None if passed is None else passed)
            if value is not None:
                n, t = n + 1, t + float(value)
                r["squares"] += float(value) ** 2
            if passed is not None:
                pn, pt = pn + 1, pt + int(passed)
        r["n"] += n
        r["total"] += t
        r["passed"] += pt
        r["with_threshold"] += pn
        r["clusters"] += n > 0
        r["totals_sq"] += t * t
        r["totals_sizes"] += t * n
        r["sizes_sq"] += n * n
        r["sizes_cubed"] += n**3
        r["pass_clusters"] += pn > 0
        r["pass_totals_sq"] += pt * pt
        r["pass_totals_sizes"] += pt * pn
        r["pass_sizes_sq"] += pn * pn
        r["pass_sizes_cubed"] += pn**3
    r["pass_n"], r["pass_total"] = r["with_threshold"], r["passed"]
    return r


def _spans(low: float, high: float, most: int, concentration: float = 8.0) -> Any:
    """A trace of quality a ~ U(low, high) with 1..most spans scored by a rule, each
    normalised score ~ Beta around a (mean a): E[score] = (low + high) / 2."""

    def trace(rng: np.random.Generator) -> Trace:
        a = rng.uniform(low, high)
        k = int(rng.integers(1, most + 1))
        c = concentration
        return [(float(rng.beta(c * a, c * (1 - a))), None) for _ in range(k)]

    return trace


def _labels(low: float, high: float, most: int) -> Any:
    """A trace of quality a ~ U(low, high) labelled pass/fail by 1..most people, each
    passing it with probability a: E[pass] = (low + high) / 2."""

    def trace(rng: np.random.Generator) -> Trace:
        a = rng.uniform(low, high)
        return [(None, bool(rng.random() < a)) for _ in range(int(rng.integers(1, most + 1)))]

    return trace


def _mixed(rng: np.random.Generator) -> Trace:
    """A rule's normalised scores on 1..4 spans and one person's pass/fail label on the
    trace, both around the trace's quality a ~ U(0.3, 0.9): the 'every quality metric' mean."""
    a = rng.uniform(0.3, 0.9)
    k = int(rng.integers(1, 5))
    return [(float(rng.beta(8 * a, 8 * (1 - a))), None) for _ in range(k)] + [
        (None, bool(rng.random() < a))
    ]


def _long_traces_worse(rng: np.random.Generator) -> Trace:
    """Half the traces one good span (a ~ U(0.7, 0.95)), half six poor ones (U(0.2, 0.5)):
    the size of a trace goes with its quality. The pooled mean estimates the mean score,
    (0.825 + 6 x 0.35) / 7."""
    if rng.random() < 0.5:
        a, k = rng.uniform(0.7, 0.95), 1
    else:
        a, k = rng.uniform(0.2, 0.5), 6
    return [(float(rng.beta(8 * a, 8 * (1 - a))), None) for _ in range(k)]


def _agent_traces(rng: np.random.Generator) -> Trace:
    """One trace in ten an agent's, 30 spans scored; the rest one call each. Quality
    a ~ U(0.2, 0.95) whatever the size, so the expected score is 0.575. A few large
    clusters hold most of the scores: counted as equals (CR1 on traces - 1 degrees of
    freedom) the interval covered 76% at 12 traces and 83% at 40."""
    a = rng.uniform(0.2, 0.95)
    k = 30 if rng.random() < 0.1 else 1
    return [(float(rng.beta(8 * a, 8 * (1 - a))), None) for _ in range(k)]


SCENARIOS: dict[str, tuple[Callable[[np.random.Generator], Trace], float, str]] = {
    "a rule's scores of each span, middle": (_spans(0.3, 0.9, 6), 0.6, "mean"),
    "a rule's scores of each span, near the top": (_spans(0.85, 0.99, 6), 0.92, "mean"),
    "near-identical scores within a trace, 1-20 spans": (
        _spans(0.05, 0.95, 20, concentration=200),
        0.5,
        "mean",
    ),
    "people's pass/fail labels, pass rate": (_labels(0.3, 0.9, 3), 0.6, "pass"),
    "people's pass/fail labels near the top, pass rate": (_labels(0.85, 1.0, 3), 0.925, "pass"),
    "labels near the top as the mean": (_labels(0.85, 1.0, 3), 0.925, "mean"),
    "scores and a label, every quality metric": (_mixed, 0.6, "mean"),
    "long traces worse": (_long_traces_worse, (0.825 + 6 * 0.35) / 7, "mean"),
    "a few agent traces of 30 spans among single calls": (_agent_traces, 0.575, "mean"),
}


@pytest.mark.parametrize("traces", [2, 5, 12, 40])
def test_production_intervals_clustered_by_trace_cover_the_true_mean(traces: int) -> None:
    rng = np.random.default_rng(20261203 + traces)
    coverage: dict[str, float] = {}
    for name, (trace, truth, which) in SCENARIOS.items():
        covered = 0
        for _ in range(DATASETS):
            cell = Cell.of(_row([trace(rng) for _ in range(traces)]))
            assert cell.clusters == traces or which == "pass"
            if which == "mean":
                low, high = cell.low, cell.high
            else:
                low, high = cell.pass_low, cell.pass_high
            # two traces are enough for an interval ('too few' is one trace)
            assert low is not None and high is not None, name
            assert 0.0 <= low < high <= 1.0, (name, low, high)
            covered += low <= truth <= high
        coverage[name] = covered / DATASETS
    assert min(coverage.values()) >= FLOOR, coverage


def test_one_trace_is_too_few_however_many_scores_it_has() -> None:
    rng = np.random.default_rng(7)
    cell = Cell.of(_row([_spans(0.3, 0.9, 1)(rng) * 50]))
    assert cell.n == 50 and cell.clusters == 1
    assert cell.mean is not None and (cell.low, cell.high) == (None, None)
    labelled = Cell.of(_row([[(None, True), (None, False), (None, True)]]))
    assert labelled.pass_rate == pytest.approx(2 / 3)
    assert (labelled.pass_low, labelled.pass_high) == (None, None)
