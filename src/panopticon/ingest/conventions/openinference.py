"""OpenInference (Arize Phoenix): ``openinference.span.kind``, flattened
``llm.input_messages.N.message.*``, ``llm.token_count.*``, ``retrieval.documents.N.document.*``,
``input.value``/``output.value``, ``session.id``, ``user.id``, ``metadata``, ``tag.tags``."""

from __future__ import annotations

from typing import Any

from panopticon.ingest.attrs import Attrs, as_json, unflatten
from panopticon.ingest.conventions._messages import message, set_if_empty, tool_call
from panopticon.ingest.model import RawSpan, ScoreIn, Span

__all__ = ["apply"]

KINDS = {
    "LLM": "llm",
    "EMBEDDING": "embedding",
    "RETRIEVER": "retrieval",
    "RERANKER": "retrieval",
    "TOOL": "tool",
    "AGENT": "agent",
    "CHAIN": "chain",
    "GUARDRAIL": "guardrail",
}


def _messages(a: Attrs, prefix: str) -> list[dict[str, Any]] | None:
    items = unflatten(a.listed(prefix), prefix)
    if not items:
        return None
    out = []
    for item in items:
        calls = [
            tool_call(
                c.get("tool_call.id"),
                c.get("tool_call.function.name"),
                c.get("tool_call.function.arguments"),
            )
            for c in unflatten(item, "message.tool_calls")
        ]
        content: Any = item.get("message.content")
        if content is None:
            parts = unflatten(item, "message.contents")
            texts = [p.get("message_content.text") for p in parts if p.get("message_content.text")]
            content = "\n".join(str(t) for t in texts) if texts else None
        out.append(
            message(
                item.get("message.role"),
                content,
                calls,
                tool_call_id=item.get("message.tool_call_id"),
                name=item.get("message.name"),
            )
        )
    return out


def _documents(a: Attrs, prefix: str) -> list[dict[str, Any]] | None:
    items = unflatten(a.listed(prefix), prefix)
    if not items:
        return None
    docs = []
    for item in items:
        doc: dict[str, Any] = {"content": item.get("document.content")}
        if item.get("document.id") is not None:
            doc["id"] = str(item["document.id"])
        if item.get("document.score") is not None:
            doc["score"] = item["document.score"]
        if item.get("document.metadata") is not None:
            doc["metadata"] = as_json(item["document.metadata"])
        docs.append(doc)
    return docs


NAMESPACES = {
    "openinference",
    "llm",
    "input",
    "output",
    "retrieval",
    "reranker",
    "embedding",
    "session",
    "user",
    "metadata",
    "tag",
    "tool",
}


def apply(a: Attrs, raw: RawSpan, span: Span, scores: list[ScoreIn]) -> None:
    ns = a.namespaces
    if ns.isdisjoint(NAMESPACES):
        return
    # each group of names is read only when its first segment is among the span's (an
    # agent's root with only ``user.id`` reads one name, not thirty)
    if "openinference" in ns:
        kind = a.text("openinference.span.kind")
        if kind and span.kind == "other":
            span.kind = KINDS.get(kind.upper(), "other")
    if "llm" in ns or "embedding" in ns:
        params = as_json(a.values.get("llm.invocation_parameters"))
        requested = params.get("model") if isinstance(params, dict) else None
        set_if_empty(
            span,
            model_served=a.text(
                "llm.response.model_name", "llm.model_name", "embedding.model_name"
            ),
            model_requested=a.text("llm.request.model_name") or requested,
            provider=a.text("llm.provider", "llm.system"),
            input_messages=_messages(a, "llm.input_messages"),
            output_messages=_messages(a, "llm.output_messages"),
            input_tokens=a.integer("llm.token_count.prompt"),
            output_tokens=a.integer("llm.token_count.completion"),
            cached_tokens=a.integer("llm.token_count.prompt_details.cache_read"),
            reasoning_tokens=a.integer("llm.token_count.completion_details.reasoning"),
        )
        a.take("llm.token_count.total")
        cost = a.number("llm.cost.total")
        if cost is not None and span.cost_usd is None:
            span.cost_usd, span.cost_source = cost, "span"
    if "input" in ns or "output" in ns:
        set_if_empty(span, input_value=a.text("input.value"), output_value=a.text("output.value"))
        a.take("input.mime_type", "output.mime_type")
    if "retrieval" in ns or "reranker" in ns:
        docs = _documents(a, "retrieval.documents") or _documents(a, "reranker.output_documents")
        set_if_empty(span, documents=docs)
    hints = span.hints
    if "session" in ns:
        hints.session_id = hints.session_id or a.text("session.id")
    if "user" in ns:
        hints.user_id = hints.user_id or a.text("user.id")
    if "metadata" in ns:
        meta = as_json(a.take("metadata"))
        if isinstance(meta, dict):
            hints.metadata.update(meta)
    if "tag" in ns:
        tags = a.take("tag.tags")
        if isinstance(tags, list):
            hints.tags.extend(str(t) for t in tags)
    if span.kind == "tool" and "tool" in ns:
        set_if_empty(span, input_value=a.text("tool.parameters"))
