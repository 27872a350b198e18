"""The plan: every case (query x prompt x model x repeat) of a run, and what is already
known."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from panopticon.evaluation.keys import answer_key
from panopticon.evaluation.prompts import PromptVariant, arm_label, render_messages
from panopticon.evaluation.suite import LoadedSuite, ModelSpec, QueryItem

DEFAULT_VARIANT = PromptVariant("", None, None)

__all__ = ["DEFAULT_VARIANT", "Case", "KnownResult", "Plan", "build_cases"]


@dataclass(frozen=True)
class Case:
    query: QueryItem
    query_id: int
    model: ModelSpec
    model_id: int
    repeat: int
    messages: list[dict[str, str]]
    params: dict[str, Any]
    cache_key: str
    prompt: PromptVariant = DEFAULT_VARIANT

    @property
    def arm(self) -> str:
        """What is compared: the model, or ``model@prompt`` with prompt variants."""
        return arm_label(self.model.id, self.prompt.id)

    @property
    def slot(self) -> tuple[int, int, int]:
        # with prompt variants model_id is the id of the model@prompt row, so the slot
        # (and the result's unique key) tells variants apart
        return (self.query_id, self.model_id, self.repeat)


@dataclass(frozen=True)
class KnownResult:
    """A stored answer: from this run (resume) or another (cache)."""

    id: uuid.UUID
    response_text: str
    finish_reason: str | None
    latency_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    scored: frozenset[int] = frozenset()  # metric ids with a stored, error-free score


@dataclass
class Plan:
    run_id: int
    cases: list[Case]
    metric_ids: dict[str, int]  # metric name -> id
    done: dict[tuple[int, int, int], KnownResult] = field(default_factory=dict)
    cache: dict[str, KnownResult] = field(default_factory=dict)
    # (metric id, query id, repeat, model a id, model b id) already judged without error
    pairwise_done: set[tuple[int, int, int, int, int]] = field(default_factory=set)
    judge_cache: dict[str, tuple[str, str, int | None, int | None, float | None]] = field(
        default_factory=dict
    )  # key -> (text, model, in, out, cost)
    # what this run already paid for judgements that failed and are to be retried, by
    # ("score", result id, metric id) or ("pair", metric id, query id, repeat, a id, b id):
    # a retry's record adds it, so that no spend is lost when the failure is replaced
    failed_spend: dict[tuple[Any, ...], float] = field(default_factory=dict)


def build_cases(
    loaded: LoadedSuite,
    query_ids: list[int],
    model_ids: dict[str, int],
) -> list[Case]:
    """Cases in the order they run: repeat-major, then query, then prompt, then model, so
    that a budget or an interruption leaves every model and prompt with a comparable share
    of the queries. ``model_ids`` maps a model's id, or with prompt variants each
    ``model@prompt``, to its stored id."""
    suite = loaded.suite
    cases = []
    variants = loaded.prompts
    default = variants[0].is_default
    rendered = [
        [render_messages(suite, q, None if default else v) for v in variants]
        for q in loaded.queries
    ]
    fingerprints = {}
    params = {}
    for m in suite.models:
        params[m.id] = {**suite.params, **m.params}
        fingerprints[m.id] = {**m.settings_fingerprint(), "params": params[m.id]}
    for repeat in range(suite.repeats):
        for qi, q in enumerate(loaded.queries):
            for vi, v in enumerate(variants):
                messages = rendered[qi][vi]
                for m in suite.models:
                    key = answer_key(
                        fingerprints[m.id],
                        messages,
                        repeat,
                        None if default else (v.id, v.content_hash),
                    )
                    cases.append(
                        Case(
                            q,
                            query_ids[qi],
                            m,
                            model_ids[arm_label(m.id, v.id)],
                            repeat,
                            messages,
                            params[m.id],
                            key,
                            v,
                        )
                    )
    return cases
