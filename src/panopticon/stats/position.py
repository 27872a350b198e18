"""Does a pairwise judge prefer the answer shown first? Measured from each pair judged in
both orders.

Two numbers, because they answer different questions. The order-disagreement rate is the
share of pairs whose two orders gave different verdicts: any noisy judge has it (one with
no position preference and 80% accuracy disagrees on about a third of the pairs), so it
is not a bias. The directional preference is P(first shown wins) - P(second shown wins)
over every judgement: 0 for a judge without a position preference, +1 for one that always
picks the first. Its 95% interval clusters the two judgements of a pair and stays within
[-1, 1] (:func:`~panopticon.stats.intervals.bounded_interval`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from panopticon.stats.intervals import ClusterSums, Interval, bounded_interval

__all__ = ["PositionBias", "position_bias"]


@dataclass(frozen=True)
class PositionBias:
    pairs: int
    disagreement: float | None  # share of pairs whose two orders disagreed
    preference: Interval | None  # P(first wins) - P(second wins), with its interval


def _first_minus_second(verdict: str, first: str) -> float:
    """+1 when the answer shown first won, -1 when the second did, 0 for a tie."""
    if verdict == "tie":
        return 0.0
    return 1.0 if verdict == first else -1.0


def position_bias(
    verdicts: Iterable[tuple[str, str]], clusters: Sequence[Hashable] | None = None
) -> PositionBias:
    """``verdicts``: per pair, (verdict with a shown first, verdict with b shown first),
    each "a", "b" or "tie" in terms of the pair's a and b. ``clusters``: the query of each
    pair; the pairs of one query (its repeats, several pairs of models) are one cluster
    in the interval. Without it, each pair is its own."""
    pairs = [(_first_minus_second(ab, "a"), _first_minus_second(ba, "b")) for ab, ba in verdicts]
    if not pairs:
        return PositionBias(0, None, None)
    if clusters is not None and len(clusters) != len(pairs):
        raise ValueError("clusters must name the query of every pair")
    groups: dict[Hashable, list[float]] = defaultdict(list)
    for i, (x, y) in enumerate(pairs):
        groups[("p", i) if clusters is None else ("q", clusters[i])] += [x, y]
    disagreed = sum(1 for x, y in pairs if x != -y)  # same verdict: opposite signs
    return PositionBias(
        len(pairs),
        disagreed / len(pairs),
        bounded_interval(ClusterSums.of(groups.values()), -1.0, 1.0),
    )
