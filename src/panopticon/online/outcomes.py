"""The ledger's vocabulary: for every (span, rule) exactly one outcome, with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["FINAL", "Decision", "Outcome"]


class Outcome(StrEnum):
    PENDING = "pending"  # selected; a job will judge it
    RUNNING = "running"  # a worker is judging it (let go after a lease if the worker dies)
    EVALUATED = "evaluated"  # judged: its scores carry the rule version
    FILTERED_OUT = "filtered_out"  # the rule's filter does not match this span
    NOT_SAMPLED = "not_sampled"  # matched, but outside the sampled share
    DEDUPLICATED = "deduplicated"  # the same input, output and metric were judged before
    OVER_BUDGET = "over_budget"  # judging it would have passed a budget: no call was made
    RATE_LIMITED = "rate_limited"  # deferred by the rule's per-minute cap; judged later
    FAILED = "failed"  # the judge failed after every retry; the error is kept
    SUPERSEDED = "superseded"  # a newer version of the rule replaced this one first


# outcomes that end the (span, rule) entry; the others are waiting for a worker
FINAL = frozenset(
    {
        Outcome.EVALUATED,
        Outcome.FILTERED_OUT,
        Outcome.NOT_SAMPLED,
        Outcome.DEDUPLICATED,
        Outcome.OVER_BUDGET,
        Outcome.FAILED,
        Outcome.SUPERSEDED,
    }
)


@dataclass(frozen=True)
class Decision:
    """What a rule decided for one span, and why, in words a person can read on the trace
    page ("model 'gpt-4o' is not in ['claude-*']")."""

    outcome: Outcome
    reason: str
