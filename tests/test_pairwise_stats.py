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


def _repeated(
    rng: np.random.Generator,
    queries: int,
    repeats: int,
    models: list[str],
    win: dict[tuple[str, str], float],
    first: float = 0.0,
) -> list[dict[str, object]]:
    """Pairwise judgements of ``queries`` queries, each judged ``repeats`` times per pair
    of models. Queries differ: on each one, P(a wins) is drawn from a Beta around
    ``win[(a, b)]`` (so repeats of a query agree more than queries do) and the judge picks
    whatever is shown first with a probability drawn around ``first``."""
    out = []
    for q in range(queries):
        lean = rng.beta(first * 2, (1 - first) * 2) if first else 0.0
        for (a, b), p_ab in win.items():
            p = rng.beta(p_ab, 1 - p_ab)  # mean p_ab, concentration 1
            for r in range(repeats):
                shown = []
                for shown_first in ("a", "b"):
                    if rng.random() < lean:
                        shown.append(shown_first)
                    else:
                        shown.append("a" if rng.random() < p else "b")
                out.append(
                    {
                        "metric": "pref",
                        "error": None,
                        "model_a": a,
                        "model_b": b,
                        "final": "a" if rng.random() < p else "b",
                        "verdict_ab": shown[0],
                        "verdict_ba": shown[1],
                        "query_id": q,
                        "repeat": r,
                    }
                )
    return out


def test_win_rates_with_repeats_are_clustered_by_query() -> None:
    """20 queries judged 5 times each: the 100 judgements are not 100 independent ones.
    Counted as independent the interval covered 74%; clustered by query, 97%."""
    from panopticon.reports.data import pairwise_summary

    rng = np.random.default_rng(24)
    covered = 0
    for _ in range(DATASETS):
        pairs = _repeated(rng, 20, 5, ["x", "y"], {("x", "y"): 0.6})
        (pw,) = pairwise_summary(pairs, ["x", "y"])
        w = next(w for w in pw["win_rates"] if w["a"] == "x")
        covered += w["low"] <= 0.6 <= w["high"]
    assert covered / DATASETS >= 0.93
    assert w["n"] == 100 and w["queries"] == 20  # shown: judgements, and queries behind them


def test_position_preference_with_repeats_is_clustered_by_query() -> None:
    """The judge's lean to the first answer differs by query (mean 0.3): repeats of a query
    share it. Clustered by pair only, the interval covered 87%; by query, 98%."""
    from panopticon.reports.data import pairwise_summary

    rng = np.random.default_rng(25)
    covered = 0
    for _ in range(DATASETS):
        pairs = _repeated(rng, 20, 5, ["x", "y"], {("x", "y"): 0.8}, first=0.3)
        (pw,) = pairwise_summary(pairs, ["x", "y"])
        covered += pw["position_preference_low"] <= 0.3 <= pw["position_preference_high"]
    assert covered / DATASETS >= 0.93


def test_bradley_terry_intervals_with_repeats_cover_the_strengths() -> None:
    """Three models, 15 queries of 4 repeats per pair: a bootstrap over games covered
    the true strengths 77% of the time; over queries, widened for their small number,
    97% (150 data sets of 100 resamples each: the fits are slow)."""
    from panopticon.reports.data import pairwise_summary
    from panopticon.stats.ranking import bradley_terry

    strength = {"m0": -0.5, "m1": 0.0, "m2": 0.5}  # log-strengths, mean 0
    models = list(strength)
    win = {
        (a, b): 1 / (1 + np.exp(strength[b] - strength[a]))
        for a, b in [("m0", "m1"), ("m0", "m2"), ("m1", "m2")]
    }
    rng = np.random.default_rng(26)
    # the report ranks with the queries as clusters
    pairs = _repeated(rng, 15, 4, models, win)
    (pw,) = pairwise_summary(pairs, models)
    games = [(p["model_a"], p["model_b"], 1.0 if p["final"] == "a" else 0.0) for p in pairs]
    queries = [("q", p["query_id"]) for p in pairs]
    assert pw["ranking"] == [vars(r) for r in bradley_terry(models, games, clusters=queries)]
    covered = total = 0
    for _ in range(150):
        pairs = _repeated(rng, 15, 4, models, win)
        games = [(p["model_a"], p["model_b"], 1.0 if p["final"] == "a" else 0.0) for p in pairs]
        ratings = bradley_terry(
            models, games, clusters=[p["query_id"] for p in pairs], resamples=100
        )
        for r in ratings:
            total += 1
            covered += r.low <= 1000 + 400 / np.log(10) * strength[r.model] <= r.high
    assert covered / total >= 0.9


def test_head_to_head_win_rates_have_intervals_that_cover_the_truth() -> None:
    """The report's head to head (no pairwise judge): each shared query is one outcome
    (1, a tie 0.5, or 0). Its win rate had no interval at all; now it has one that covers
    the truth, ties included, at 12 queries."""
    from panopticon.reports.data import head_to_head

    levels = [0.0, 0.5, 1.0]  # a reference metric's three steps
    pa, pb = [0.2, 0.3, 0.5], [0.3, 0.4, 0.3]
    truth = sum(
        pa[i] * pb[j] * (1.0 if i > j else 0.5 if i == j else 0.0)
        for i in range(3)
        for j in range(3)
    )
    rng = np.random.default_rng(28)
    covered = 0
    for _ in range(DATASETS):
        rows = []
        for q in range(12):
            for model, probs in (("x", pa), ("y", pb)):
                value = float(rng.choice(levels, p=probs))
                score = {"error": None, "normalized": value, "passed": None}
                rows.append({"model": model, "query_id": q, "error": None, "scores": {"s": score}})
        h = next(h for h in head_to_head(rows, ["x", "y"], set()) if h["a"] == "x")
        assert h["n"] == 12 and 0.0 <= h["low"] < h["win_rate"] < h["high"] <= 1.0
        covered += h["low"] <= truth <= h["high"]
    assert covered / DATASETS >= 0.93
