"""The normalised model of production traces: what every convention is mapped onto.

A span arrives in one of several dialects (OpenTelemetry GenAI, OpenInference, OpenLLMetry,
OpenLIT, the JSON API); :mod:`panopticon.ingest.normalise` turns each into a :class:`Span`.
Trace-level facts (session, user, tags, ...) ride on the spans that carry them
(:class:`TraceHints`) and the writer merges them into the trace row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "KINDS",
    "SCORE_SOURCES",
    "STATUSES",
    "RawSpan",
    "Rejection",
    "ScoreIn",
    "Span",
    "TraceHints",
]

KINDS = ("llm", "embedding", "retrieval", "tool", "agent", "chain", "guardrail", "other")
STATUSES = ("ok", "error", "unset")
SCORE_SOURCES = ("run", "online", "guardrail", "human", "api")


@dataclass(slots=True)
class RawSpan:
    """One span as the wire gave it (OTLP protobuf or JSON), before any convention is read.

    Ids are lowercase hex; times are Unix nanoseconds; attribute values are str, int,
    float, bool, lists of those, or dicts (an OTLP kvlist)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    status_code: int = 0  # OTLP: 0 unset, 1 ok, 2 error
    status_message: str = ""
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""


@dataclass(slots=True)
class TraceHints:
    """Facts about the whole trace that a span may carry."""

    session_id: str | None = None
    user_id: str | None = None
    tenant_id: str | None = None
    environment: str | None = None
    release: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScoreIn:
    """A score that arrived with the data (an OTLP ``gen_ai.evaluation.result`` event, a
    gateway guardrail's verdict)."""

    trace_id: str
    span_id: str | None
    name: str
    value: float | None
    label: str | None
    comment: str | None
    source: str = "api"
    passed: bool | None = None  # None: read from the label (pass / fail), when it says
    details: dict[str, Any] | None = None


@dataclass(slots=True)
class Span:
    """One normalised span. Messages are ``{"role", "content", "tool_calls"?, ...}``;
    documents ``{"id"?, "content", "score"?, "metadata"?}``. Unknown costs and token
    counts are None, never 0."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    start_time: datetime
    end_time: datetime
    status: str = "unset"
    error: str | None = None
    model_requested: str | None = None
    model_served: str | None = None
    provider: str | None = None
    input_messages: list[dict[str, Any]] | None = None
    output_messages: list[dict[str, Any]] | None = None
    input_value: str | None = None
    output_value: str | None = None
    documents: list[dict[str, Any]] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    cost_source: str | None = None  # "span" (sent with it) or "price_table"
    ttft_ms: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] | None = None
    hints: TraceHints = field(default_factory=TraceHints)

    @property
    def latency_ms(self) -> float:
        return (self.end_time - self.start_time).total_seconds() * 1000.0


@dataclass(frozen=True)
class Rejection:
    """A span that was not kept, and why (the OTLP partial-success message counts these)."""

    reason: str
    trace_id: str | None = None
    span_id: str | None = None
