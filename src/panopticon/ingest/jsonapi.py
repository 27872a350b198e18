"""The JSON API's input for apps without OpenTelemetry: ``POST /api/traces`` (traces with
nested spans), ``POST /api/logs`` (one LLM call in one request) and ``POST /api/scores``.
Each becomes the same normalised :class:`Span` values as OTLP does."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from panopticon.ingest.conventions._messages import tool_call
from panopticon.ingest.model import Span, TraceHints

__all__ = [
    "DocumentIn",
    "LogIn",
    "MessageIn",
    "ScoreCreate",
    "SpanIn",
    "TraceIn",
    "TracesIn",
    "log_spans",
    "trace_spans",
]

HEX32 = r"^[0-9a-f]{32}$"
HEX16 = r"^[0-9a-f]{16}$"
Kind = Literal["llm", "embedding", "retrieval", "tool", "agent", "chain", "guardrail", "other"]


COUNT = 2**31 - 1  # token counts are 32-bit integers in the store
MAX_MS = 1e10  # about 115 days: longer than any retention


def _shift(moment: datetime, ms: float) -> datetime:
    """``moment`` moved by ``ms`` milliseconds; at the ends of the calendar, unmoved (the
    time check then refuses the span for being far in the past or future)."""
    try:
        return moment + timedelta(milliseconds=ms)
    except OverflowError:
        return moment


class _In(BaseModel):
    # numbers are strict (strict=True on each): JSON true is not the number 1, nor "5" the
    # number 5, as the schema says
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ToolCallIn(_In):
    id: str | None = Field(default=None, max_length=200)
    name: str = Field(max_length=200)
    arguments: str | dict[str, Any] | None = None


class MessageIn(_In):
    role: str = Field(max_length=50, examples=["user"])
    content: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = Field(default=None, max_length=200)


class DocumentIn(_In):
    id: str | None = Field(default=None, max_length=200)
    content: str
    score: float | None = Field(default=None, strict=True)
    metadata: dict[str, Any] | None = None


class SpanIn(_In):
    id: str | None = Field(
        default=None, pattern=HEX16, description="16 hex digits; made up when absent."
    )
    name: str = Field(max_length=500)
    kind: Kind = "other"
    start_time: datetime | None = Field(
        default=None,
        description="Absent: the parent's start, or for a root span now less latency_ms.",
    )
    end_time: datetime | None = Field(default=None, description="Or give latency_ms.")
    latency_ms: float | None = Field(default=None, ge=0, le=MAX_MS, strict=True)
    model: str | None = Field(default=None, max_length=200, description="The model asked for.")
    model_served: str | None = Field(default=None, max_length=200)
    provider: str | None = Field(default=None, max_length=100)
    input: str | list[MessageIn] | None = None
    output: str | list[MessageIn] | None = None
    documents: list[DocumentIn] | None = None
    input_tokens: int | None = Field(default=None, ge=0, le=COUNT, strict=True)
    output_tokens: int | None = Field(default=None, ge=0, le=COUNT, strict=True)
    cached_tokens: int | None = Field(default=None, ge=0, le=COUNT, strict=True)
    reasoning_tokens: int | None = Field(default=None, ge=0, le=COUNT, strict=True)
    cost_usd: float | None = Field(default=None, ge=0, strict=True)
    ttft_ms: float | None = Field(default=None, ge=0, le=MAX_MS, strict=True)
    status: Literal["ok", "error", "unset"] = "ok"
    error: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    spans: list[SpanIn] = Field(default_factory=list, description="Child spans.")

    @field_validator("start_time", "end_time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class TraceIn(_In):
    id: str | None = Field(
        default=None, pattern=HEX32, description="32 hex digits; made up when absent."
    )
    name: str | None = Field(default=None, max_length=500)
    session_id: str | None = Field(default=None, max_length=200)
    user_id: str | None = Field(default=None, max_length=200)
    tenant_id: str | None = Field(default=None, max_length=200)
    environment: str | None = Field(default=None, max_length=100)
    release: str | None = Field(default=None, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=100)
    metadata: dict[str, Any] = Field(default_factory=dict)
    spans: list[SpanIn] = Field(min_length=1, description="Root spans, with their children nested.")


class TracesIn(_In):
    traces: list[TraceIn] = Field(min_length=1, max_length=1000)


class LogIn(_In):
    """One LLM call, the shape a gateway logs: what was asked, what came back, by whom."""

    prompt: str
    response: str | None = None
    model: str = Field(max_length=200)
    latency_ms: float | None = Field(default=None, ge=0, le=MAX_MS, strict=True)
    user_id: str | None = Field(default=None, max_length=200)
    session_id: str | None = Field(default=None, max_length=200)
    status: Literal["success", "ok", "error"] = "success"
    error: str | None = None
    tags: list[str] = Field(default_factory=list, max_length=100)
    metadata: dict[str, Any] = Field(default_factory=dict)
    provider: str | None = Field(default=None, max_length=100)
    input_tokens: int | None = Field(default=None, ge=0, le=COUNT, strict=True)
    output_tokens: int | None = Field(default=None, ge=0, le=COUNT, strict=True)
    cost_usd: float | None = Field(default=None, ge=0, strict=True)
    timestamp: datetime | None = Field(
        default=None, description="When the call ended; now when absent."
    )
    trace_id: str | None = Field(default=None, pattern=HEX32)


class ScoreCreate(_In):
    """A score on a trace (or one of its spans): a number, a label, or both."""

    trace_id: str = Field(pattern=HEX32)
    span_id: str | None = Field(default=None, pattern=HEX16)
    name: str = Field(min_length=1, max_length=200, examples=["user_feedback"])
    value: float | None = Field(default=None, allow_inf_nan=False, strict=True)
    label: str | None = Field(default=None, max_length=200, examples=["thumbs_up"])
    comment: str | None = Field(default=None, max_length=10_000)
    source: Literal["online", "guardrail", "human", "api"] = "api"

    @model_validator(mode="after")
    def _something(self) -> ScoreCreate:
        if self.value is None and self.label is None:
            raise ValueError("give a value, a label or both")
        return self


def _messages(
    value: str | list[MessageIn] | None, role: str
) -> tuple[list[dict[str, Any]] | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str):
        return None, value
    out = []
    for m in value:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            d["tool_calls"] = [tool_call(tc.id, tc.name, tc.arguments) for tc in m.tool_calls]
        if m.tool_call_id:
            d["tool_call_id"] = m.tool_call_id
        out.append(d)
    return out, None


def _span(
    trace_id: str, parent: str | None, s: SpanIn, hints: TraceHints, default_start: datetime
) -> Span:
    start = s.start_time or default_start
    end = s.end_time or (_shift(start, s.latency_ms) if s.latency_ms is not None else start)
    in_messages, in_value = _messages(s.input, "user")
    out_messages, out_value = _messages(s.output, "assistant")
    kind = s.kind
    if kind == "other" and (s.model or in_messages):
        kind = "llm"
    return Span(
        trace_id=trace_id,
        span_id=s.id or secrets.token_hex(8),
        parent_id=parent,
        name=s.name,
        kind=kind,
        start_time=start,
        end_time=max(end, start),
        status=s.status,
        error=s.error,
        model_requested=s.model,
        model_served=s.model_served or s.model,
        provider=s.provider,
        input_messages=in_messages,
        output_messages=out_messages,
        input_value=in_value,
        output_value=out_value,
        documents=[d.model_dump(exclude_none=True) for d in s.documents] if s.documents else None,
        input_tokens=s.input_tokens,
        output_tokens=s.output_tokens,
        cached_tokens=s.cached_tokens,
        reasoning_tokens=s.reasoning_tokens,
        cost_usd=s.cost_usd,
        cost_source="span" if s.cost_usd is not None else None,
        ttft_ms=s.ttft_ms,
        attributes=dict(s.attributes),
        hints=hints,
    )


def trace_spans(t: TraceIn, now: datetime) -> list[Span]:
    """A trace's spans, flattened, children after their parents. A span without a start
    starts with its parent; a root span without one ended ``now``."""
    trace_id = t.id or secrets.token_hex(16)
    hints = TraceHints(
        session_id=t.session_id,
        user_id=t.user_id,
        tenant_id=t.tenant_id,
        environment=t.environment,
        release=t.release,
        tags=list(t.tags),
        metadata=dict(t.metadata),
    )
    out: list[Span] = []

    def walk(items: list[SpanIn], parent: Span | None) -> None:
        for s in items:
            default = parent.start_time if parent is not None else _shift(now, -(s.latency_ms or 0))
            span = _span(trace_id, parent.span_id if parent else None, s, hints, default)
            if parent is None and t.name:
                span.name = t.name if len(t.spans) == 1 else span.name
            out.append(span)
            walk(s.spans, span)

    walk(t.spans, None)
    return out


def log_spans(log: LogIn, now: datetime) -> list[Span]:
    end = log.timestamp.replace(tzinfo=log.timestamp.tzinfo or UTC) if log.timestamp else now
    start = _shift(end, -(log.latency_ms or 0))
    failed = log.status == "error"
    span = Span(
        trace_id=log.trace_id or secrets.token_hex(16),
        span_id=secrets.token_hex(8),
        parent_id=None,
        name="llm call",
        kind="llm",
        start_time=start,
        end_time=end,
        status="error" if failed else "ok",
        error=(log.error or "error") if failed else None,
        model_requested=log.model,
        model_served=log.model,
        provider=log.provider,
        input_messages=[{"role": "user", "content": log.prompt}],
        output_messages=(
            [{"role": "assistant", "content": log.response}] if log.response is not None else None
        ),
        input_tokens=log.input_tokens,
        output_tokens=log.output_tokens,
        cost_usd=log.cost_usd,
        cost_source="span" if log.cost_usd is not None else None,
        hints=TraceHints(
            session_id=log.session_id,
            user_id=log.user_id,
            tags=list(log.tags),
            metadata=dict(log.metadata),
        ),
    )
    return [span]
