"""The pairwise judge's position preference, on simulated judges of known behaviour."""

from __future__ import annotations

import numpy as np

from panopticon.stats.position import position_bias

DATASETS = 1000


def _judge(
    rng: np.random.Generator, pairs: int, accuracy: float, first: float
) -> list[tuple[str, str]]:
    """Each pair judged in both orders; a is the better answer. With probability ``first``
    a judgement picks whatever is shown first, else it picks the better answer with
    probability ``accuracy``."""
    out = []
    for _ in range(pairs):
        verdicts = []
        for shown_first in ("a", "b"):
            if rng.random() < first:
                verdicts.append(shown_first)
            else:
                verdicts.append("a" if rng.random() < accuracy else "b")
        out.append((verdicts[0], verdicts[1]))
    return out


def test_a_fair_but_noisy_judge_has_no_position_preference() -> None:
    """80% accurate, no position preference: the old 'position-bias rate' said 0.33 (the
    orders disagree that often); the preference is 0 and its interval covers 0."""
    rng = np.random.default_rng(21)
    covered = 0
    disagreement = []
    for _ in range(DATASETS):
        bias = position_bias(_judge(rng, 30, 0.8, 0.0))
        assert bias.preference is not None and bias.preference.low is not None
        covered += bias.preference.low <= 0.0 <= (bias.preference.high or 0)
        disagreement.append(bias.disagreement)
    assert covered / DATASETS >= 0.93
    assert 0.30 <= float(np.mean(disagreement)) <= 0.34  # 2 x 0.8 x 0.2 = 0.32


def test_a_judge_that_favours_the_first_answer_is_measured() -> None:
    rng = np.random.default_rng(22)
    covered = 0
    for _ in range(DATASETS):
        bias = position_bias(_judge(rng, 30, 0.8, 0.3))
        p = bias.preference
        assert p is not None and p.low is not None and p.high is not None
        covered += p.low <= 0.3 <= p.high  # P(first) - P(second) = 0.3
    assert covered / DATASETS >= 0.93


def _pair(a: str, b: str, final: str) -> dict[str, object]:
    return {
        "metric": "pref",
        "error": None,
        "model_a": a,
        "model_b": b,
        "final": final,
        "verdict_ab": final,
        "verdict_ba": final,
    }


def _win_rate(finals: list[str]) -> dict[str, object]:
    from panopticon.reports.data import pairwise_summary

    (pw,) = pairwise_summary([_pair("x", "y", f) for f in finals], ["x", "y"])
    return next(w for w in pw["win_rates"] if w["a"] == "x")


def test_a_tie_counts_half_a_win_in_the_interval_too() -> None:
    """2 wins, 1 tie, 7 losses is 2.5 wins: its interval lies strictly between those of
    2 and 3 wins (rounding the count to 2 made the tie a loss)."""
    two = _win_rate(["a"] * 2 + ["b"] * 8)
    half = _win_rate(["a"] * 2 + ["tie"] + ["b"] * 7)
    three = _win_rate(["a"] * 3 + ["b"] * 7)
    assert half["win_rate"] == 0.25
    assert two["low"] < half["low"] < three["low"]  # type: ignore[operator]
    assert two["high"] < half["high"] < three["high"]  # type: ignore[operator]


def test_win_rate_intervals_with_ties_cover_the_truth() -> None:
    rng = np.random.default_rng(23)
    covered = 0
    for _ in range(DATASETS):
        finals = list(rng.choice(["a", "tie", "b"], size=12, p=[0.15, 0.4, 0.45]))
        w = _win_rate(finals)
        covered += w["low"] <= 0.35 <= w["high"]  # type: ignore[operator]
    assert covered / DATASETS >= 0.93
