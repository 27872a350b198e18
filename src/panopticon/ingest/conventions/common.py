"""Names no single dialect owns: OpenTelemetry's general ``session.id``, ``user.id`` and
``enduser.id``, tenants, the resource's ``deployment.environment(.name)`` and
``service.version``, Langfuse's trace attributes, the time to first token some SDKs record
as an event, and the span's kind guessed from what it carries when no dialect said."""

from __future__ import annotations

from typing import Any

from panopticon.ingest.attrs import Attrs, as_json
from panopticon.ingest.model import RawSpan, ScoreIn, Span

__all__ = ["apply"]

_FIRST_TOKEN_EVENTS = ("First Token Stream Event", "gen_ai.content.completion.chunk", "first_token")


def _resource(raw: RawSpan, *keys: str) -> str | None:
    for key in keys:
        value = raw.resource.get(key)
        if value not in (None, ""):
            return str(value)
    return None


# the first segments of the attribute names read here: a span with none of them (most
# spans) skips the look-ups
NAMESPACES = frozenset(
    ("session", "langfuse", "user", "enduser", "tenant", "customer", "deployment", "service")
)


def apply(a: Attrs, raw: RawSpan, span: Span, scores: list[ScoreIn]) -> None:
    hints = span.hints
    if a.namespaces.isdisjoint(NAMESPACES):
        _from_resource(raw, span)
        return
    hints.session_id = hints.session_id or a.text("session.id", "langfuse.session.id")
    hints.user_id = hints.user_id or a.text("user.id", "enduser.id", "langfuse.user.id")
    hints.tenant_id = (
        hints.tenant_id or a.text("tenant.id", "customer.id") or _resource(raw, "tenant.id")
    )
    hints.environment = (
        hints.environment
        or a.text("deployment.environment.name", "deployment.environment", "langfuse.environment")
        or _resource(raw, "deployment.environment.name", "deployment.environment")
    )
    hints.release = (
        hints.release
        or a.text("langfuse.release", "service.version")
        or _resource(raw, "service.version")
    )
    tags: Any = as_json(a.take("langfuse.trace.tags"))
    if isinstance(tags, list):
        hints.tags.extend(str(t) for t in tags)
    _guesses(raw, span)


def _from_resource(raw: RawSpan, span: Span) -> None:
    """What :func:`apply` reads when the span has none of its attributes."""
    hints = span.hints
    if raw.resource:
        hints.tenant_id = hints.tenant_id or _resource(raw, "tenant.id")
        hints.environment = hints.environment or _resource(
            raw, "deployment.environment.name", "deployment.environment"
        )
        hints.release = hints.release or _resource(raw, "service.version")
    _guesses(raw, span)


def _guesses(raw: RawSpan, span: Span) -> None:
    """The time to first token from an event, and the kind from what the span carries."""
    if span.ttft_ms is None and raw.events:
        for name, time_ns, _ in raw.events:
            if name in _FIRST_TOKEN_EVENTS and time_ns >= raw.start_ns:
                span.ttft_ms = (time_ns - raw.start_ns) / 1e6
                break
    if span.kind == "other":
        if span.documents:
            span.kind = "retrieval"
        elif span.input_messages or span.output_messages or span.input_tokens is not None:
            span.kind = "llm"
