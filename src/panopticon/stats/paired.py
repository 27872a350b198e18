"""Is A really better than B? Paired comparisons on the same items.

For each metric: the mean difference (A - B) with a 95% interval, a paired test chosen by
the metric's type (exact McNemar for a pass/fail metric, Wilcoxon signed-rank for a
scale; never by the values a run happened to produce), Holm's correction across every
test shown together, a verdict, and a warning when there are too few items to detect a
difference of the size the user cares about (``min_effect``).

Intervals: the t interval on the paired differences for scales (the percentile bootstrap
it replaces covered 86-88% at n=5), and Bonett and Price's adjusted interval for the
difference of paired proportions; both stay within [-1, 1] and neither is zero-width.
When a test could not reach p < 0.05 even if every pair favoured one side (the smallest
two-sided p of n pairs is 2/2^n, so one test needs 6 pairs; with Holm, the other tests'
p-values decide how small it must be), the verdict is "too few", said plainly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

from panopticon.stats.intervals import t_quantile
from panopticon.stats.kinds import ScoreKind

__all__ = [
    "ALPHA",
    "PairedResult",
    "compare_families",
    "compare_metrics",
    "holm",
    "min_pairs",
    "paired_interval",
    "paired_test",
]

ALPHA = 0.05
# z(0.975) + z(0.80): a two-sided 5% test with 80% power
_POWER_Z = 1.959964 + 0.841621
_Z975 = NormalDist().inv_cdf(0.975)
TOO_FEW = "too few"

Pairs = Mapping[str, tuple[Sequence[float], Sequence[float]]]


@dataclass(frozen=True)
class PairedResult:
    metric: str
    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    test: str
    p_value: float
    p_adjusted: float
    verdict: str  # "A better", "B better", "tied" or "too few" (no test could decide)
    detectable: float  # smallest difference this n detects with 80% power
    warning: str | None = None
    tests: int = 1  # how many tests Holm corrected together with this one


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def min_pairs(tests: int = 1, alpha: float = ALPHA) -> int:
    """The fewest pairs at which a test among ``tests`` corrected together can reach
    ``alpha``: n pairs all favouring one side give p = 2/2^n (sign-flip, Wilcoxon and exact
    McNemar alike), and Holm multiplies the smallest p by the number of tests."""
    n = 1
    while tests * 2 / 2**n >= alpha:
        n += 1
    return n


def _mcnemar_applies(a: Sequence[float], b: Sequence[float], kind: ScoreKind | None) -> bool:
    # pass/fail by the metric's type; with repeats an item's value is its pass share, and
    # then the pairs are no longer 0/1 and the signed-rank test applies
    return kind is not None and kind.binary and all(v in (0.0, 1.0) for v in (*a, *b))


def paired_test(
    a: Sequence[float], b: Sequence[float], kind: ScoreKind | None = None
) -> tuple[str, float]:
    """(test name, two-sided p-value): exact McNemar for a pass/fail metric, else the
    Wilcoxon signed-rank test (zeros split)."""
    from scipy import stats

    if _mcnemar_applies(a, b, kind):
        only_a = sum(1 for x, y in zip(a, b, strict=True) if x == 1 and y == 0)
        only_b = sum(1 for x, y in zip(a, b, strict=True) if x == 0 and y == 1)
        if only_a + only_b == 0:
            return "mcnemar", 1.0
        return "mcnemar", float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    if all(d == 0 for d in diffs):
        return "wilcoxon", 1.0
    result = stats.wilcoxon(diffs, zero_method="zsplit")
    return "wilcoxon", float(result.pvalue)


def _guarded_sd(diffs: Sequence[float]) -> float:
    """The SD of the differences; when they are all equal, the SD with one pseudo-pair at
    each end of [-1, 1], so that a handful of equal differences does not give a
    zero-width interval (or a claim that any difference is detectable)."""
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    if sd > 0:
        return sd
    padded = [*diffs, -1.0, 1.0]
    m2 = sum(padded) / len(padded)
    return math.sqrt(sum((d - m2) ** 2 for d in padded) / (len(padded) - 1))


def paired_interval(
    a: Sequence[float], b: Sequence[float], kind: ScoreKind | None = None
) -> tuple[float, float]:
    """95% interval of mean(a - b) for values on 0..1, clipped to [-1, 1]."""
    n = len(a)
    if _mcnemar_applies(a, b, kind):
        # Bonett and Price (2012): add one to each discordant cell and two to n
        only_a = sum(1 for x, y in zip(a, b, strict=True) if x > y)
        only_b = sum(1 for x, y in zip(a, b, strict=True) if x < y)
        pa, pb = (only_a + 1) / (n + 2), (only_b + 1) / (n + 2)
        centre = pa - pb
        half = _Z975 * math.sqrt(max(0.0, pa + pb - centre * centre) / (n + 2))
    else:
        diffs = [x - y for x, y in zip(a, b, strict=True)]
        centre = sum(diffs) / n
        half = t_quantile(0.975, n - 1) * _guarded_sd(diffs) / math.sqrt(n)
    return max(-1.0, centre - half), min(1.0, centre + half)


def _raw(
    metric: str, a: Sequence[float], b: Sequence[float], kind: ScoreKind | None
) -> PairedResult:
    n = len(a)
    if n != len(b):
        raise ValueError(f"{metric}: A has {n} values, B has {len(b)}")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    mean_d = sum(diffs) / n
    if n < 2:  # no spread, no test: _finish says there are too few
        mean_a, mean_b = sum(a) / n, sum(b) / n
        return PairedResult(
            metric, n, mean_a, mean_b, mean_d, -1.0, 1.0, "none", 1.0, 1.0, "tied", math.inf
        )
    low, high = paired_interval(a, b, kind)
    test, p = paired_test(a, b, kind)
    detectable = _POWER_Z * _guarded_sd(diffs) / math.sqrt(n)
    return PairedResult(
        metric, n, sum(a) / n, sum(b) / n, mean_d, low, high, test, p, p, "tied", detectable
    )


def _reachable(p_values: Sequence[float], sizes: Sequence[int]) -> list[bool]:
    """Whether each test could reach ALPHA after Holm's correction if all its pairs favoured
    one side (p = 2/2^n), the other tests' p-values as they are."""
    out = []
    for i, n in enumerate(sizes):
        best = list(p_values)
        best[i] = min(p_values[i], 2 / 2 ** min(n, 1000))
        out.append(holm(best)[i] < ALPHA)
    return out


def _finish(
    r: PairedResult, p_adj: float, tests: int, reachable: bool, min_effect: float | None
) -> PairedResult:
    needed = min_pairs(1)
    if not reachable:
        where = (
            f"with fewer than {needed} pairs"
            if tests == 1
            else f"with so few pairs among the {tests} tests corrected together (Holm)"
        )
        return replace(
            r,
            p_adjusted=p_adj,
            verdict=TOO_FEW,
            detectable=math.inf,
            tests=tests,
            warning=f"n={r.n} pairs: no test can reach p<{ALPHA:g} {where}; no verdict",
        )
    significant = p_adj < ALPHA and (r.ci_low > 0 or r.ci_high < 0)
    verdict = ("A better" if r.diff > 0 else "B better") if significant else "tied"
    warning = None
    if min_effect is not None and verdict == "tied" and r.detectable > min_effect:
        sd = r.detectable * math.sqrt(r.n) / _POWER_Z
        items = max(needed, math.ceil((_POWER_Z * sd / min_effect) ** 2))
        warning = (
            f"with n={r.n} only differences of {r.detectable:.3f} or more are "
            f"detectable (80% power); min_effect {min_effect:g} needs about {items} items"
        )
    return replace(r, p_adjusted=p_adj, verdict=verdict, warning=warning, tests=tests)


def compare_families(
    families: Sequence[Pairs],
    *,
    kinds: Mapping[str, ScoreKind] | None = None,
    min_effect: float | None = None,
) -> list[list[PairedResult]]:
    """Several comparisons shown together (one per model two runs share): every test of
    every family is corrected together by Holm, so that ten equally good models do not
    produce a false winner a third of the time."""
    kinds = kinds or {}
    raw = [
        [_raw(metric, a, b, kinds.get(metric)) for metric, (a, b) in pairs.items() if len(a)]
        for pairs in families
    ]
    flat = [r for family in raw for r in family]
    p_values = [r.p_value for r in flat]
    adjusted = iter(holm(p_values))
    reachable = iter(_reachable(p_values, [r.n for r in flat]))
    tests = len(flat)
    return [
        [_finish(r, next(adjusted), tests, next(reachable), min_effect) for r in family]
        for family in raw
    ]


def compare_metrics(
    pairs: Pairs,
    *,
    kinds: Mapping[str, ScoreKind] | None = None,
    min_effect: float | None = None,
    seed: int = 0,
) -> list[PairedResult]:
    """Compare A and B on each metric's paired values (0..1, higher is better), with Holm's
    correction across the metrics. ``kinds`` choose each metric's test (a metric without
    one is taken for a scale). ``seed`` is kept for callers; nothing here is random."""
    (results,) = compare_families([pairs], kinds=kinds, min_effect=min_effect)
    return results
