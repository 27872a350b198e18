"""Statistics agree with SciPy and with hand computations."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats

from panopticon.stats.agreement import cohen_kappa, krippendorff_alpha, spearman
from panopticon.stats.intervals import (
    bootstrap_mean,
    mean_interval,
    moments_interval,
    t_quantile,
    wilson,
)
from panopticon.stats.kinds import ScoreKind
from panopticon.stats.paired import compare_metrics, holm
from panopticon.stats.percentiles import percentiles
from panopticon.stats.ranking import bradley_terry

PASS_FAIL = ScoreKind(binary=True, low=0.0, high=1.0)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 10, 31, 200, 999])
@pytest.mark.parametrize("p", [0.1, 0.9, 0.975, 0.995])
def test_t_quantiles_match_scipy(df: int, p: float) -> None:
    assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9)


def test_a_mean_interval_is_the_t_interval() -> None:
    values = [3.0, 5.0, 4.0, 6.0, 7.0, 5.0]
    ci = mean_interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=5.0, scale=stats.sem(values))
    assert (ci.estimate, ci.low, ci.high) == pytest.approx((5.0, low, high), abs=1e-3)
    assert mean_interval([4.0]).low is None


def test_wilson_intervals_match_the_textbook_values() -> None:
    ci = wilson(8, 10)
    assert (ci.low, ci.high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    all_pass = wilson(20, 20)
    assert all_pass.high == 1.0 and all_pass.low == pytest.approx(0.8389, abs=1e-4)


def test_bootstrap_interval_contains_the_mean_and_is_reproducible() -> None:
    rng = random.Random(1)
    values = [rng.gauss(0, 1) for _ in range(200)]
    a, b = bootstrap_mean(values, seed=3), bootstrap_mean(values, seed=3)
    assert a == b and a.low is not None and a.high is not None
    assert a.low < a.estimate < a.high


def test_percentiles_match_numpy() -> None:
    import numpy as np

    rng = random.Random(2)
    values = [rng.random() for _ in range(101)]
    ours = percentiles(values)
    assert ours["p95"] == pytest.approx(float(np.percentile(values, 95)))
    assert ours["p5"] == pytest.approx(float(np.percentile(values, 5)))


def test_holm_adjusts_in_step_down_order() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_a_real_difference_is_found_and_noise_is_called_tied() -> None:
    rng = random.Random(7)
    n = 60
    base = [rng.uniform(0.3, 0.7) for _ in range(n)]
    better = [min(1.0, x + 0.15 + rng.gauss(0, 0.05)) for x in base]
    same = [x + rng.gauss(0, 0.05) for x in base]
    pass_a = [1.0 if rng.random() < 0.9 else 0.0 for _ in range(n)]
    pass_b = [1.0 if rng.random() < 0.5 else 0.0 for _ in range(n)]
    results = {
        r.metric: r
        for r in compare_metrics(
            {"quality": (better, base), "style": (same, base), "passed": (pass_b, pass_a)},
            kinds={"passed": PASS_FAIL},
        )
    }
    assert results["quality"].verdict == "A better" and results["quality"].test == "wilcoxon"
    assert results["style"].verdict == "tied"
    assert results["passed"].verdict == "B better" and results["passed"].test == "mcnemar"
    assert results["quality"].ci_low > 0.1


def test_too_few_items_for_the_effect_that_matters_is_warned() -> None:
    rng = random.Random(3)
    a = [rng.uniform(0, 1) for _ in range(8)]
    b = [x + rng.gauss(0, 0.3) for x in a]
    (r,) = compare_metrics({"q": (a, b)}, min_effect=0.05)
    assert r.verdict == "tied" and r.warning and "needs about" in r.warning


def test_mcnemar_p_value_is_the_exact_binomial() -> None:
    a = [1.0] * 10 + [0.0] * 2 + [1.0] * 20
    b = [0.0] * 10 + [1.0] * 2 + [1.0] * 20
    (r,) = compare_metrics({"p": (a, b)}, kinds={"p": PASS_FAIL})
    assert r.p_value == pytest.approx(stats.binomtest(10, 12, 0.5).pvalue)


def test_the_test_follows_the_metric_type_not_the_values() -> None:
    """A 1-10 rubric whose scores were all 1 or 10 (normalised 0 or 1) is still a scale."""
    a = [1.0] * 10 + [0.0] * 2 + [1.0] * 20
    b = [0.0] * 10 + [1.0] * 2 + [1.0] * 20
    (r,) = compare_metrics({"q": (a, b)}, kinds={"q": ScoreKind(binary=False, low=1, high=10)})
    assert r.test == "wilcoxon"


def test_kappa_matches_a_hand_computation() -> None:
    # 20 items: both pass 9, both fail 6, judge-only pass 3, person-only pass 2
    judge = [1] * 9 + [0] * 6 + [1] * 3 + [0] * 2
    person = [1] * 9 + [0] * 6 + [0] * 3 + [1] * 2
    # po = 15/20 = 0.75; pe = 0.6*0.55 + 0.4*0.45 = 0.51; kappa = 0.24/0.49
    ci = cohen_kappa(judge, person)
    assert ci.estimate == pytest.approx(0.24 / 0.49)
    assert ci.low is not None and ci.high is not None and ci.low < ci.estimate < ci.high


def test_spearman_matches_scipy_with_ties() -> None:
    a = [1, 2, 2, 3, 4, 5, 5, 6, 7, 8]
    b = [2, 1, 3, 3, 5, 4, 6, 8, 7, 9]
    ci = spearman(a, b)
    assert ci.estimate == pytest.approx(stats.spearmanr(a, b).statistic)
    assert ci.low is not None and ci.low < ci.estimate < (ci.high or 1)


def test_krippendorff_alpha_matches_the_published_example() -> None:
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal example
    # with missing values: alpha = 0.743
    nan = None
    ratings = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
    assert krippendorff_alpha(ratings, level="nominal") == pytest.approx(0.743, abs=1e-3)
    assert krippendorff_alpha([[1, 2, 3], [1, 2, 3]]) == 1.0


def test_bradley_terry_ranks_a_clear_order_with_intervals() -> None:
    rng = random.Random(5)
    strength = {"a": 3.0, "b": 1.5, "c": 0.5}
    games = []
    for _ in range(300):
        x, y = rng.sample(list(strength), 2)
        p = strength[x] / (strength[x] + strength[y])
        games.append((x, y, 1.0 if rng.random() < p else 0.0))
    ratings = bradley_terry(list(strength), games)
    assert [r.model for r in ratings] == ["a", "b", "c"]
    assert all(r.low <= r.score <= r.high for r in ratings)
    gap = ratings[0].score - ratings[1].score
    assert gap == pytest.approx(400 * math.log10(2.0), abs=60)


@pytest.mark.parametrize("games_per_pair", [3, 10, 30, 100])
def test_bradley_terry_intervals_contain_their_estimate_under_complete_separation(
    games_per_pair: int,
) -> None:
    """a always beats b and c, b always beats c: the plain estimate is infinite; the
    penalised one is finite, its interval contains it, and the separation is said."""
    games = [("a", "b", 1.0), ("b", "c", 1.0), ("a", "c", 1.0)] * games_per_pair
    ratings = bradley_terry(["a", "b", "c"], games)
    assert [r.model for r in ratings] == ["a", "b", "c"]
    assert all(r.low <= r.score <= r.high for r in ratings)
    assert [r.separated for r in ratings] == [True, False, True]


def test_an_interval_from_sums_equals_the_interval_from_the_values() -> None:
    """The dashboard computes intervals from GROUP BY sums: they must be the same."""
    values = [0.1, 0.5, 0.9, 0.4, 0.7, 0.3, 1.0, 0.0]
    direct = mean_interval(values)
    from_sums = moments_interval(len(values), sum(values), sum(v * v for v in values))
    assert from_sums.estimate == pytest.approx(direct.estimate)
    assert from_sums.low == pytest.approx(direct.low) and from_sums.high == pytest.approx(
        direct.high
    )
    assert moments_interval(1, 0.5, 0.25).low is None


def test_equal_differences_still_get_an_honest_warning_and_interval() -> None:
    """Ten pairs that all differ by nothing: the old power warning said nothing (its SD
    was 0, so every difference looked detectable) and the interval had no width."""
    a = [0.5] * 10
    (r,) = compare_metrics({"q": (a, list(a))}, min_effect=0.05)
    assert r.verdict == "tied" and r.ci_low < 0 < r.ci_high
    assert r.warning is not None and "needs about" in r.warning


def test_a_handful_of_pairs_gets_no_verdict_whatever_the_differences() -> None:
    a, b = [1.0] * 5, [0.0] * 5
    (r,) = compare_metrics({"q": (a, b)}, min_effect=0.05)
    assert r.verdict == "too few"
    assert r.warning == ("n=5 pairs: no test can reach p<0.05 with fewer than 6 pairs; no verdict")
    (six,) = compare_metrics({"q": ([1.0] * 6, [0.0] * 6)})
    assert six.verdict == "A better"


def test_with_holm_a_small_test_is_judged_against_the_others_p_values() -> None:
    """Seven pairs can reach a verdict when the other tests are decisive (Holm then asks
    little of the last one), and cannot beside nine other seven-pair tests."""
    strong = ([1.0] * 60, [0.0] * 60)
    small = ([0.9] * 7, [0.1] * 7)
    beside_strong = compare_metrics({"big": strong, "small": small})
    assert [r.verdict for r in beside_strong] == ["A better", "A better"]
    ten_small = compare_metrics({f"m{i}": small for i in range(10)})
    assert {r.verdict for r in ten_small} == {"too few"}
    assert ten_small[0].warning == (
        "n=7 pairs: no test can reach p<0.05 with so few pairs among the 10 tests "
        "corrected together (Holm); no verdict"
    )


def test_the_same_labels_twice_give_the_same_calibration_intervals() -> None:
    rng = random.Random(9)
    judge = [rng.randint(1, 10) for _ in range(80)]
    people = [min(10, max(1, j + rng.randint(-3, 3))) for j in judge]
    items = list(range(80))
    once = spearman(judge, people, clusters=items)
    twice = spearman(judge * 2, people * 2, clusters=items * 2)
    assert (twice.estimate, twice.low, twice.high) == pytest.approx(
        (once.estimate, once.low, once.high)
    )
    assert twice.clusters == 80 and twice.n == 160
    passed_j, passed_p = [j >= 6 for j in judge], [p >= 6 for p in people]
    k1 = cohen_kappa(passed_j, passed_p, clusters=items)
    k2 = cohen_kappa(passed_j * 2, passed_p * 2, clusters=items * 2)
    assert (k2.estimate, k2.low, k2.high) == pytest.approx((k1.estimate, k1.low, k1.high))


def test_weighted_ranks_are_the_ranks_of_the_repeated_sample() -> None:
    import numpy as np

    from panopticon.stats.agreement import _weighted_ranks, _weighted_rho

    rng = random.Random(4)
    a = [rng.randint(1, 5) for _ in range(50)]
    b = [rng.random() for _ in range(50)]
    times = np.array([[rng.randint(0, 3) for _ in range(50)]], dtype=float)
    repeated = times[0].astype(int)
    expected = stats.spearmanr(np.repeat(a, repeated), np.repeat(b, repeated)).statistic
    got = _weighted_rho(_weighted_ranks(a, times), _weighted_ranks(b, times), times)[0]
    assert got == pytest.approx(expected)
