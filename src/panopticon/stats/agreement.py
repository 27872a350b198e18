"""Agreement between raters: a judge and people, or judges with each other.

Cohen's kappa (pass/fail) with a Jeffreys posterior interval, Spearman's rho (scores) with a
Fisher-z interval (Bonett and Wright's variance), and Krippendorff's alpha for several
raters with missing ratings (nominal or interval data).

When several labels describe one item (several annotators of one answer), the labels are
not independent: give ``clusters`` (the item of each label); kappa's interval then weighs
each item as one and Spearman's comes from a cluster bootstrap over items, so that a
second copy of the same labels adds no certainty.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from statistics import NormalDist
from typing import Any

from panopticon.stats.intervals import Interval

__all__ = ["cohen_kappa", "krippendorff_alpha", "spearman"]

_Z975 = NormalDist().inv_cdf(0.975)


def _kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    n = len(a)
    labels = set(a) | set(b)
    observed = sum(1 for x, y in zip(a, b, strict=True) if x == y) / n
    expected = sum(
        (sum(1 for x in a if x == c) / n) * (sum(1 for y in b if y == c) / n) for c in labels
    )
    if expected == 1.0:
        return 1.0  # both raters used a single, identical label
    return (observed - expected) / (1 - expected)


def _cluster_indices(n: int, clusters: Sequence[Hashable] | None) -> list[list[int]]:
    if clusters is None:
        return [[i] for i in range(n)]
    if len(clusters) != n:
        raise ValueError("clusters must name the item of every label")
    groups: dict[Hashable, list[int]] = {}
    for i, c in enumerate(clusters):
        groups.setdefault(c, []).append(i)
    return list(groups.values())


def cohen_kappa(
    a: Sequence[Hashable],
    b: Sequence[Hashable],
    *,
    clusters: Sequence[Hashable] | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Cohen's kappa with a 95% interval over items (``clusters``: the item of each label
    pair; each item weighs one, however many labels it has).

    The interval is the posterior one of kappa under a Jeffreys prior (Dirichlet 0.5 per
    cell) on the (rater a x rater b) table of items, each item's labels counting as one
    item in all (``resamples`` posterior draws, seeded). The percentile bootstrap it
    replaces collapsed to [1, 1] whenever every sampled pair agreed, which ten items with
    95% agreement do 60% of the time: it covered 39% there, 64-80% at 10 items and 62-96%
    at 20. This covers 92-97% at 10, 20, 40 and 100 items (tests/test_agreement_coverage.py).
    Two labels of one item are not two items: a second annotator with the same labels
    gives the same interval."""
    import numpy as np

    if len(a) != len(b) or not a:
        raise ValueError("kappa needs two equally long, non-empty label lists")
    k = _kappa(a, b)
    groups = _cluster_indices(len(a), clusters)
    if len(groups) < 2:
        return Interval(k, None, None, len(a), clusters=len(groups))
    # each item's label pairs spread over the table with a total weight of one; at least
    # two labels (pass and fail), so that agreement on one label alone is not certain
    labels = sorted(set(a) | set(b), key=repr)
    codes = {c: i for i, c in enumerate(labels)}
    width = max(2, len(codes))
    table = np.zeros((width, width))
    for members in groups:
        for i in members:
            table[codes[a[i]], codes[b[i]]] += 1 / len(members)
    rng = np.random.default_rng(seed)
    draws = rng.dirichlet(table.ravel() + 0.5, size=resamples).reshape(-1, width, width)
    low, high = np.quantile(_kappas(draws), [0.025, 0.975])
    return Interval(k, float(min(low, k)), float(max(high, k)), len(a), clusters=len(groups))


def _kappas(tables: Any) -> Any:
    """Kappa of each (rater a x rater b) count table, as :func:`_kappa` computes it."""
    import numpy as np

    n = tables.sum(axis=(1, 2))
    observed = np.trace(tables, axis1=1, axis2=2) / n
    expected = np.einsum("ri,ri->r", tables.sum(axis=2), tables.sum(axis=1)) / (n * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (observed - expected) / (1 - expected)
    return np.where(expected >= 1.0 - 1e-12, 1.0, kappa)


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _rho(a: Sequence[float], b: Sequence[float]) -> float:
    n = len(a)
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    return float("nan") if va == 0 or vb == 0 else cov / math.sqrt(va * vb)


def spearman(
    a: Sequence[float],
    b: Sequence[float],
    *,
    clusters: Sequence[Hashable] | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Spearman's rho (ties get mid-ranks) with a 95% Fisher-z interval; with
    ``clusters`` (the item of each pair), a percentile bootstrap over items instead, so
    that a second copy of the same labels gives the same interval."""
    n = len(a)
    if n != len(b) or n < 3:
        raise ValueError("spearman needs two equally long lists of at least 3 values")
    groups = _cluster_indices(n, clusters)
    if clusters is not None:
        import numpy as np

        rho = _rho(a, b)
        if math.isnan(rho) or len(groups) < 3:
            return Interval(rho, None, None, n, clusters=len(groups))
        # a resample counts each label as often as its item was drawn: ranks and the
        # correlation are weighted by those counts, for blocks of resamples at once
        item_of = np.empty(n, dtype=np.int64)
        for g, members in enumerate(groups):
            item_of[members] = g
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, len(groups), size=(resamples, len(groups)))
        rhos = []
        block = max(1, min(resamples, 2_000_000 // n))
        for start in range(0, resamples, block):
            part = draws[start : start + block]
            offsets = (np.arange(len(part))[:, None] * len(groups) + part).ravel()
            per_item = np.bincount(offsets, minlength=len(part) * len(groups))
            times = per_item.reshape(len(part), -1)[:, item_of].astype(float)
            rhos.append(_weighted_rho(_weighted_ranks(a, times), _weighted_ranks(b, times), times))
        kept = np.concatenate(rhos)
        kept = kept[~np.isnan(kept)]
        low, high = np.quantile(kept, [0.025, 0.975])
        return Interval(rho, float(low), float(high), n, clusters=len(groups))
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    if va == 0 or vb == 0:
        return Interval(float("nan"), None, None, n)
    rho = cov / math.sqrt(va * vb)
    if n <= 3 or abs(rho) >= 1:
        return Interval(rho, None, None, n)
    se = math.sqrt((1 + rho * rho / 2) / (n - 3))
    z = math.atanh(rho)
    return Interval(rho, math.tanh(z - _Z975 * se), math.tanh(z + _Z975 * se), n)


def _weighted_ranks(values: Sequence[float], times: Any) -> Any:
    """Mid-ranks of ``values`` in each row's sample, where value i appears times[r, i]
    times: (rows x values)."""
    import numpy as np

    levels, level_of = np.unique(np.asarray(values, dtype=float), return_inverse=True)
    counts = np.stack([np.bincount(level_of, weights=w, minlength=len(levels)) for w in times])
    mid = np.cumsum(counts, axis=1) - counts + (counts + 1) / 2
    return mid[:, level_of]


def _weighted_rho(rx: Any, ry: Any, w: Any) -> Any:
    import numpy as np

    total = w.sum(axis=1, keepdims=True)
    dx = rx - (w * rx).sum(axis=1, keepdims=True) / total
    dy = ry - (w * ry).sum(axis=1, keepdims=True) / total
    vx, vy = (w * dx * dx).sum(axis=1), (w * dy * dy).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((vx > 0) & (vy > 0), (w * dx * dy).sum(axis=1) / np.sqrt(vx * vy), np.nan)


def krippendorff_alpha(
    ratings: Sequence[Sequence[float | None]], *, level: str = "interval"
) -> float:
    """Alpha for ``ratings[rater][item]`` (None: not rated). Items rated by fewer than two
    raters are ignored. ``level``: ``interval`` (squared differences) or ``nominal``."""
    if level not in ("interval", "nominal"):
        raise ValueError("level must be 'interval' or 'nominal'")

    def delta(x: float, y: float) -> float:
        return (x - y) ** 2 if level == "interval" else float(x != y)

    units = []
    for item in range(max((len(r) for r in ratings), default=0)):
        values = [r[item] for r in ratings if item < len(r) and r[item] is not None]
        if len(values) >= 2:
            units.append([float(v) for v in values if v is not None])
    if not units:
        raise ValueError("no item has two or more ratings")
    n = sum(len(u) for u in units)
    observed = (
        sum(
            sum(delta(u[i], u[j]) for i in range(len(u)) for j in range(len(u)) if i != j)
            / (len(u) - 1)
            for u in units
        )
        / n
    )
    pooled = [v for u in units for v in u]
    expected = sum(
        delta(x, y) for i, x in enumerate(pooled) for j, y in enumerate(pooled) if i != j
    ) / (n * (n - 1))
    if expected == 0:
        return 1.0
    return 1 - observed / expected
