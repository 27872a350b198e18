"""What the engine produces, and the sink protocol the store implements.

The engine knows ids only as opaque integers given to it in the plan; it never touches a
database (ARCHITECTURE.md: ``evaluation`` writes through a sink).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = ["PairwiseRecord", "ResultRecord", "ResultSink", "ScoreRecord", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


_ids = random.Random()  # seeded from os.urandom once; uuid4() reads urandom on every call


def new_id() -> uuid.UUID:
    """A random (version 4) UUID, without a system call per id."""
    return uuid.UUID(int=_ids.getrandbits(128), version=4)


@dataclass
class ResultRecord:
    """One answer (or the failure to get one) for one case."""

    run_id: int
    query_id: int
    model_id: int
    repeat: int
    cache_key: str
    request: dict[str, Any]
    response_text: str | None = None
    finish_reason: str | None = None
    latency_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None
    error_kind: str | None = None
    cached: bool = False
    attempts: int = 0
    prompt: str | None = None  # the prompt variant's id; None for a suite without prompts
    prompt_hash: str | None = None  # its content hash (the prompt table holds its text)
    id: uuid.UUID = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ScoreRecord:
    """One metric on one result, with what its judge said and cost."""

    run_id: int
    result_id: uuid.UUID
    metric_id: int
    value: float | None
    normalized: float | None
    passed: bool | None
    reasoning: str | None = None
    error: str | None = None
    judge_model: str | None = None
    judge_output: str | None = None
    judge_cache_key: str | None = None
    judge_input_tokens: int | None = None
    judge_output_tokens: int | None = None
    judge_cost_usd: float | None = None
    judge_cached: bool = False
    details: dict[str, Any] | None = None
    # the answer's model and query, copied onto the score so that aggregates over millions
    # of scores need no join
    model_id: int | None = None
    query_id: int | None = None
    id: uuid.UUID = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)


@dataclass
class PairwiseRecord:
    """Two answers to one query judged in both orders (verdicts in terms of a and b)."""

    run_id: int
    metric_id: int
    query_id: int
    repeat: int
    model_a_id: int
    model_b_id: int
    result_a_id: uuid.UUID
    result_b_id: uuid.UUID
    verdict_ab: str | None
    verdict_ba: str | None
    final: str | None
    reasoning_ab: str | None = None
    reasoning_ba: str | None = None
    judge_key_ab: str | None = None
    judge_output_ab: str | None = None
    judge_key_ba: str | None = None
    judge_output_ba: str | None = None
    judge_model: str | None = None
    judge_input_tokens: int | None = None
    judge_output_tokens: int | None = None
    judge_cost_usd: float | None = None
    judge_cached: bool = False
    error: str | None = None
    id: uuid.UUID = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)


class ResultSink(Protocol):
    """Where results and scores go, as soon as they exist. Must not block for long."""

    def save_result(self, record: ResultRecord) -> None: ...

    def save_score(self, record: ScoreRecord) -> None: ...

    def save_pairwise(self, record: PairwiseRecord) -> None: ...

    def flush(self) -> None:
        """Return once everything saved so far is durable."""


class MemorySink:
    """A sink that keeps everything in lists: for tests and embedding without a database."""

    def __init__(self) -> None:
        self.results: list[ResultRecord] = []
        self.scores: list[ScoreRecord] = []
        self.pairwise: list[PairwiseRecord] = []

    def save_result(self, record: ResultRecord) -> None:
        self.results.append(record)

    def save_score(self, record: ScoreRecord) -> None:
        self.scores.append(record)

    def save_pairwise(self, record: PairwiseRecord) -> None:
        self.pairwise.append(record)

    def flush(self) -> None:
        return None
