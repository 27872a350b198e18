"""Distributions: the percentiles reports show for latency, tokens, cost and scores."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["QUANTILES", "percentile", "percentiles"]

QUANTILES = (5, 25, 50, 75, 95, 99)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (NumPy's default method)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def percentiles(
    values: Sequence[float], qs: Sequence[float] = QUANTILES
) -> dict[str, float | None]:
    ordered = sorted(values)
    return {f"p{q:g}": percentile(ordered, q) for q in qs}
