"""Confidence intervals: t for means, Wilson for proportions, bootstrap where asked.

Pure Python (NumPy only for the bootstrap) so that the end-of-run summary can show
uncertainty without importing SciPy, whose stats module alone costs 0.6 s of start-up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist, fmean, stdev

__all__ = [
    "Interval",
    "bootstrap_mean",
    "mean_interval",
    "moments_interval",
    "t_quantile",
    "wilson",
]

_NORMAL = NormalDist()


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided confidence interval. ``low``/``high`` are None when
    the sample is too small to have one (n < 2)."""

    estimate: float
    low: float | None
    high: float | None
    n: int
    level: float = 0.95

    @property
    def half_width(self) -> float | None:
        return None if self.low is None or self.high is None else (self.high - self.low) / 2


def _t_two_sided(t: float, df: int) -> float:
    """P(|T| < t) for integer df: the closed forms of Abramowitz and Stegun 26.7.3-4."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    term, total = 1.0, 1.0
    if df % 2 == 1:
        for k in range(1, (df - 1) // 2):
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        body = math.sin(theta) * math.cos(theta) * total if df > 1 else 0.0
        return 2 / math.pi * (theta + body)
    for k in range(1, df // 2):
        term *= c2 * (2 * k - 1) / (2 * k)
        total += term
    return math.sin(theta) * total


@lru_cache(maxsize=4096)
def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t for integer df: the exact CDF inverted by bisection."""
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    if df < 1:
        raise ValueError("df must be >= 1")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    if df > 1000:
        return _NORMAL.inv_cdf(p)
    target = 2 * p - 1  # P(|T| < t)
    low, high = 0.0, 1.0
    while _t_two_sided(high, df) < target:
        high *= 2
    for _ in range(100):
        mid = (low + high) / 2
        if _t_two_sided(mid, df) < target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def mean_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """The mean with a t interval."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = fmean(values)
    if n < 2:
        return Interval(mean, None, None, n, level)
    sd = stdev(values, mean)
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level)


def moments_interval(n: int, total: float, squares: float, level: float = 0.95) -> Interval:
    """The same t interval as :func:`mean_interval`, from the count, the sum and the sum of
    squares (what a database's GROUP BY returns), without the values themselves."""
    if n == 0:
        raise ValueError("no values")
    mean = total / n
    if n < 2:
        return Interval(mean, None, None, n, level)
    variance = max(0.0, (squares - n * mean * mean) / (n - 1))  # rounding may dip below 0
    half = t_quantile(0.5 + level / 2, n - 1) * math.sqrt(variance) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level)


def wilson(successes: int, n: int, level: float = 0.95) -> Interval:
    """A proportion with the Wilson score interval (sound at 0%, 100% and small n)."""
    if n == 0:
        raise ValueError("n must be > 0")
    if not 0 <= successes <= n:
        raise ValueError("successes must be within 0..n")
    z = _NORMAL.inv_cdf(0.5 + level / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n, level)


def bootstrap_mean(
    values: Sequence[float], *, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> Interval:
    """The mean with a percentile bootstrap interval (seeded: reports are reproducible)."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    n = len(data)
    if n == 0:
        raise ValueError("no values")
    if n < 2:
        return Interval(float(data[0]), None, None, n, level)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(data.mean()), float(low), float(high), n, level)
