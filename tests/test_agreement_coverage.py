"""Judge calibration with several people per answer: the kappa interval clustered by
answer covers the true kappa; counting each label as independent did not."""

from __future__ import annotations

import numpy as np

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
    assert clustered / DATASETS >= 0.92  # 94% with this seed
    assert independent / DATASETS < 0.87  # the labels as independent: 83%
