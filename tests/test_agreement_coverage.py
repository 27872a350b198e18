"""Judge calibration with several people per answer: the kappa interval clustered by
answer covers the true kappa; counting each label as independent did not."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from panopticon.stats.agreement import _kappa, cohen_kappa

DATASETS = 1000


def _labels(
    rng: np.random.Generator, answers: int, people: int = 3
) -> tuple[list[bool], list[bool], list[int]]:
    """Each answer is truly good or not; the judge is right 85% of the time, each person
    90%. One (judge, person) pair per person per answer: the judge's label repeats."""
    truth = rng.random(answers) < 0.5
    judge = np.where(rng.random(answers) < 0.85, truth, ~truth)
    right = rng.random((answers, people)) < 0.9
    human = np.where(right, truth[:, None], ~truth[:, None])
    return (
        [bool(j) for j in np.repeat(judge, people)],
        [bool(h) for h in human.ravel()],
        [int(g) for g in np.repeat(np.arange(answers), people)],
    )


def test_kappa_intervals_clustered_by_answer_cover_the_truth() -> None:
    rng = np.random.default_rng(31)
    truth = _kappa(*_labels(rng, 200_000)[:2])
    clustered = independent = 0
    for _ in range(DATASETS):
        a, b, answers = _labels(rng, 40)
        ci = cohen_kappa(a, b, clusters=answers, resamples=1000)
        clustered += (ci.low or 0) <= truth <= (ci.high or 0)
        naive = cohen_kappa(a, b, resamples=1000)
        independent += (naive.low or 0) <= truth <= (naive.high or 0)
    assert clustered / DATASETS >= 0.92  # 99% with this seed (94% by the bootstrap)
    assert independent / DATASETS < 0.87  # the labels as independent: 83%


def _pair(rng: np.random.Generator, answers: int, share: float, agree: float) -> Any:
    """One label per answer from each rater: the first passes ``share`` of the answers,
    the second agrees with it ``agree`` of the time (so kappa is known exactly)."""
    first = rng.random(answers) < share
    second = np.where(rng.random(answers) < agree, first, ~first)
    return [bool(x) for x in first], [bool(y) for y in second]


@pytest.mark.parametrize("answers", [10, 20])
def test_kappa_intervals_at_few_answers_and_high_agreement_cover_the_truth(answers: int) -> None:
    """Ten or twenty labelled answers, mostly passing, a judge that mostly agrees: the
    percentile bootstrap gave [1, 1] whenever every sampled answer agreed and covered 42%
    (10 answers, 90% passing, 95% agreement), 65% and 80% in the other two cases (20
    answers: 64%, 87%, 94%). The Jeffreys posterior interval: 93-96%."""
    coverage = {}
    for share, agree in [(0.5, 0.85), (0.8, 0.9), (0.9, 0.95)]:
        other = share * agree + (1 - share) * (1 - agree)
        expected = share * other + (1 - share) * (1 - other)
        truth = (agree - expected) / (1 - expected)
        rng = np.random.default_rng(32 + answers)
        covered = 0
        for _ in range(DATASETS):
            a, b = _pair(rng, answers, share, agree)
            ci = cohen_kappa(a, b, clusters=list(range(answers)), resamples=1000)
            assert ci.low is not None and ci.high is not None and ci.high - ci.low > 0.1
            covered += ci.low <= truth <= ci.high
        coverage[(share, agree)] = covered / DATASETS
    assert min(coverage.values()) >= 0.92, coverage
