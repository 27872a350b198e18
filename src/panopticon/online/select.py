"""Which spans a rule judges: its filter, deterministic sampling, and deduplication.

Everything here is a pure function of the rule and the span, so every replica, worker and
rerun decides the same, and the ledger can say why for each span.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import orjson

from panopticon.online.outcomes import Decision, Outcome
from panopticon.online.rules import RuleFilter, RuleSpec

__all__ = [
    "Candidate",
    "decide",
    "dedup_key",
    "filter_reason",
    "prompt_keys",
    "sample_point",
    "segment_of",
]


def prompt_keys(key: str) -> tuple[str, ...]:
    """Where a span says which prompt served it (``key``: ``name`` or ``version``): these
    attributes of the span, first found wins, then the same keys in its trace's metadata.
    Rules filter on them, and a prompts comparison splits production scores by them."""
    return (f"prompt.{key}", f"prompt_{key}", f"panopticon.prompt.{key}")


@dataclass(frozen=True)
class Candidate:
    """What a rule reads of a production span (and its trace)."""

    trace_id: str
    span_id: str
    kind: str
    model: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    user: str | None = None
    environment: str | None = None
    status: str = "ok"
    input_text: str = ""
    output_text: str = ""


def _any(values: list[str], value: str | None, *, wildcards: bool = False) -> bool:
    if value is None:
        return False
    if wildcards:
        return any(fnmatchcase(value, pattern) for pattern in values)
    return value in values


def filter_reason(f: RuleFilter, c: Candidate) -> str | None:
    """None when the span matches; else the first condition it fails, in words."""
    if c.kind not in f.span_kinds:
        return f"span kind '{c.kind}' is not in {f.span_kinds}"
    if f.models and not _any(f.models, c.model, wildcards=True):
        return f"model '{c.model}' is not in {f.models}"
    if f.prompt_names and not _any(f.prompt_names, c.prompt_name):
        return f"prompt '{c.prompt_name}' is not in {f.prompt_names}"
    if f.prompt_versions and not _any(f.prompt_versions, c.prompt_version):
        return f"prompt version '{c.prompt_version}' is not in {f.prompt_versions}"
    missing = [t for t in f.tags if t not in c.tags]
    if missing:
        return f"the trace lacks the tag(s) {missing}"
    for key, want in f.metadata.items():
        if c.metadata.get(key) != want:
            return f"metadata {key}={c.metadata.get(key)!r}, the rule wants {want!r}"
    if f.users and not _any(f.users, c.user):
        return f"user '{c.user}' is not in {f.users}"
    if f.environments and not _any(f.environments, c.environment):
        return f"environment '{c.environment}' is not in {f.environments}"
    if f.status != "any" and c.status != f.status:
        return f"status '{c.status}', the rule wants '{f.status}'"
    for label, text, low, high in (
        ("input", c.input_text, f.min_input_chars, f.max_input_chars),
        ("output", c.output_text, f.min_output_chars, f.max_output_chars),
    ):
        if low is not None and len(text) < low:
            return f"{label} has {len(text)} characters, fewer than {low}"
        if high is not None and len(text) > high:
            return f"{label} has {len(text)} characters, more than {high}"
    return None


def sample_point(rule_name: str, trace_id: str) -> float:
    """A number in [0, 1) fixed by the rule and the trace: a span is sampled when it is
    below the rate. Keyed by trace, so every span of a sampled trace is sampled together;
    keyed by rule, so two rules at 10% do not pick the same 10%."""
    digest = hashlib.blake2b(f"{rule_name}\x00{trace_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def segment_of(rule: RuleSpec, c: Candidate) -> str:
    by = rule.sampling.segment_by
    value = {
        "model": c.model,
        "user": c.user,
        "environment": c.environment,
        "prompt": c.prompt_name,
    }[by]
    return f"{by}={value or '-'}"


def decide(rule: RuleSpec, c: Candidate, judged_in_segment_this_hour: int = 0) -> Decision:
    """Filter, then sample. A selected span is ``pending``: budgets, the per-minute cap and
    deduplication are decided when a worker takes it."""
    reason = filter_reason(rule.filter, c)
    if reason is not None:
        return Decision(Outcome.FILTERED_OUT, reason)
    point = sample_point(rule.name, c.trace_id)
    rate = rule.sampling.rate
    if point < rate:
        return Decision(Outcome.PENDING, f"sampled ({point:.4f} < rate {rate:g})")
    floor = rule.sampling.min_per_hour
    if floor is not None and judged_in_segment_this_hour < floor:
        return Decision(
            Outcome.PENDING,
            f"below the minimum of {floor} per hour for {segment_of(rule, c)} "
            f"({judged_in_segment_this_hour} so far)",
        )
    return Decision(Outcome.NOT_SAMPLED, f"not in the sampled {rate:.0%} ({point:.4f} >= {rate:g})")


def dedup_key(metric: dict[str, Any], judge: str | None, c: Candidate, context: str | None) -> str:
    """Spans with the same input, output and context, judged by the same metric settings and
    judge, get the same key: the second is recorded as deduplicated and shares the scores."""
    payload = orjson.dumps(
        [metric, judge, c.input_text, c.output_text, context], option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(payload).hexdigest()[:32]
