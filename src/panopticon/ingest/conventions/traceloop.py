"""OpenLLMetry (Traceloop): ``traceloop.span.kind`` (workflow, task, agent, tool),
``traceloop.entity.input`` / ``output`` (JSON), ``traceloop.association.properties.*``
(session and user ids, free metadata), ``llm.request.type`` and ``llm.usage.total_tokens``.
Its messages use the deprecated ``gen_ai.prompt.N.*`` names, read by the GenAI mapper."""

from __future__ import annotations

from panopticon.ingest.attrs import Attrs
from panopticon.ingest.conventions._messages import set_if_empty
from panopticon.ingest.model import RawSpan, ScoreIn, Span

__all__ = ["apply"]

KINDS = {"workflow": "chain", "task": "chain", "agent": "agent", "tool": "tool"}
REQUEST_TYPES = {
    "chat": "llm",
    "completion": "llm",
    "embedding": "embedding",
    "rerank": "retrieval",
}


def apply(a: Attrs, raw: RawSpan, span: Span, scores: list[ScoreIn]) -> None:
    if not a.namespaces & {"traceloop", "llm"}:
        return
    kind = a.text("traceloop.span.kind")
    request_type = a.text("llm.request.type")
    if span.kind == "other":
        span.kind = KINDS.get(kind or "", REQUEST_TYPES.get(request_type or "", "other"))
    set_if_empty(
        span,
        input_value=a.text("traceloop.entity.input"),
        output_value=a.text("traceloop.entity.output"),
    )
    a.take("llm.usage.total_tokens", "traceloop.entity.name", "traceloop.workflow.name")
    props = a.prefixed("traceloop.association.properties")
    hints = span.hints
    for key, value in props.items():
        name = key.removeprefix("traceloop.association.properties.")
        if name in ("session_id", "chat_id", "conversation_id", "thread_id"):
            hints.session_id = hints.session_id or str(value)
        elif name in ("user_id", "user"):
            hints.user_id = hints.user_id or str(value)
        elif name in ("tenant_id", "customer_id"):
            hints.tenant_id = hints.tenant_id or str(value)
        else:
            hints.metadata[name] = value
