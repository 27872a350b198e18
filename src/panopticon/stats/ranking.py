"""Ranking several models from pairwise verdicts: Bradley-Terry, with bootstrap intervals.

Strengths are fitted by Hunter's (2004) MM algorithm; a tie counts as half a win for each
side. Scores are reported on the Elo scale (400 log10 strength, centred on 1000) so that a
100-point gap means the stronger model wins about 64% of the time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Rating", "bradley_terry"]


@dataclass(frozen=True)
class Rating:
    model: str
    score: float
    low: float
    high: float
    rank: int


def _fit(
    models: Sequence[str], games: Sequence[tuple[int, int, float]], iterations: int = 200
) -> list[float]:
    k = len(models)
    wins = [0.0] * k
    pair_counts: dict[tuple[int, int], float] = {}
    for i, j, outcome in games:  # outcome: 1 i wins, 0 j wins, 0.5 tie
        wins[i] += outcome
        wins[j] += 1 - outcome
        key = (min(i, j), max(i, j))
        pair_counts[key] = pair_counts.get(key, 0.0) + 1
    # a pseudo-game against every other model keeps strengths finite when one never loses
    for i in range(k):
        wins[i] += 0.5
    p = [1.0] * k
    for _ in range(iterations):
        new = []
        for i in range(k):
            denom = sum(
                c / (p[i] + p[j])
                for (a, b), c in pair_counts.items()
                for j in ((b,) if a == i else (a,) if b == i else ())
            )
            denom += sum(0.5 / (p[i] + p[j]) for j in range(k) if j != i)
            new.append(wins[i] / denom if denom else p[i])
        total = sum(new)
        p = [x * k / total for x in new]
    return p


def _elo(strengths: Sequence[float]) -> list[float]:
    logs = [400 * math.log10(s) for s in strengths]
    mean = sum(logs) / len(logs)
    return [1000 + x - mean for x in logs]


def bradley_terry(
    models: Sequence[str],
    games: Sequence[tuple[str, str, float]],
    *,
    resamples: int = 200,
    seed: int = 0,
) -> list[Rating]:
    """``games``: (model a, model b, outcome for a: 1, 0.5 or 0). Best first."""
    import numpy as np

    index = {m: i for i, m in enumerate(models)}
    coded = [(index[a], index[b], float(o)) for a, b, o in games]
    scores = _elo(_fit(models, coded))
    rng = np.random.default_rng(seed)
    samples = []
    if coded:
        for idx in rng.integers(0, len(coded), size=(resamples, len(coded))):
            samples.append(_elo(_fit(models, [coded[i] for i in idx], iterations=50)))
    order = sorted(range(len(models)), key=lambda i: -scores[i])
    out = []
    for rank, i in enumerate(order, start=1):
        column = [s[i] for s in samples] or [scores[i]]
        low, high = np.quantile(column, [0.025, 0.975])
        out.append(Rating(models[i], scores[i], float(low), float(high), rank))
    return out
