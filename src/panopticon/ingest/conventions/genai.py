"""OpenTelemetry GenAI semantic conventions, current and deprecated names.

Current: ``gen_ai.provider.name``, ``gen_ai.operation.name``, ``gen_ai.request.model`` /
``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` / ``output_tokens``,
``gen_ai.input.messages`` / ``gen_ai.output.messages`` / ``gen_ai.system_instructions``
(JSON, messages made of typed parts), ``gen_ai.conversation.id``, and
``gen_ai.evaluation.result`` events. Deprecated but still emitted: ``gen_ai.system``,
``gen_ai.usage.prompt_tokens`` / ``completion_tokens``, flattened ``gen_ai.prompt.N.*`` and
``gen_ai.completion.N.*`` (OpenLLMetry uses these), and per-message span events
(``gen_ai.user.message``, ``gen_ai.choice``, ...).
"""

from __future__ import annotations

from typing import Any

from panopticon.ingest.attrs import Attrs, as_json, unflatten
from panopticon.ingest.conventions._messages import message, set_if_empty, tool_call
from panopticon.ingest.model import RawSpan, ScoreIn, Span

__all__ = ["apply"]

OPERATIONS = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "completion": "llm",
    "embeddings": "embedding",
    "embedding": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "invoke_workflow": "agent",
    "retrieval": "retrieval",
}

_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _parts_message(m: Any) -> dict[str, Any] | None:
    """One message of ``gen_ai.input.messages``: ``{role, parts: [{type, ...}]}``."""
    if not isinstance(m, dict):
        return None
    parts = m.get("parts")
    if not isinstance(parts, list):  # an OpenAI-style message
        calls = [
            tool_call(
                c.get("id"),
                (c.get("function") or {}).get("name"),
                (c.get("function") or {}).get("arguments"),
            )
            for c in m.get("tool_calls") or []
            if isinstance(c, dict)
        ]
        return message(m.get("role"), m.get("content"), calls, tool_call_id=m.get("tool_call_id"))
    texts: list[str] = []
    calls = []
    response_id = None
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" or kind == "reasoning":
            if isinstance(part.get("content"), str):
                texts.append(part["content"])
        elif kind == "tool_call":
            calls.append(tool_call(part.get("id"), part.get("name"), part.get("arguments")))
        elif kind == "tool_call_response":
            response_id = part.get("id")
            resp = part.get("response") if "response" in part else part.get("result")
            texts.append(resp if isinstance(resp, str) else str(as_json(resp)))
    return message(
        m.get("role"),
        "\n".join(texts) if texts else None,
        calls,
        tool_call_id=response_id,
        finish_reason=m.get("finish_reason"),
    )


def _json_messages(value: Any) -> list[dict[str, Any]] | None:
    value = as_json(value)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return None
    out = [m for m in (_parts_message(v) for v in value) if m is not None]
    return out or None


def _flat_messages(a: Attrs, prefix: str) -> list[dict[str, Any]] | None:
    items = unflatten(a.listed(prefix), prefix)
    if not items:
        return None
    out = []
    for item in items:
        calls = [
            tool_call(c.get("id"), c.get("name"), c.get("arguments"))
            for c in unflatten(item, "tool_calls")
        ]
        fc = item.get("function_call.name")
        if fc:
            calls.append(tool_call(None, fc, item.get("function_call.arguments")))
        out.append(
            message(
                item.get("role") or ("assistant" if prefix.endswith("completion") else "user"),
                item.get("content"),
                calls,
                tool_call_id=item.get("tool_call_id"),
                finish_reason=item.get("finish_reason"),
            )
        )
    return out


def _system(a: Attrs) -> list[dict[str, Any]]:
    value = as_json(a.take("gen_ai.system_instructions"))
    if value is None:
        return []
    if isinstance(value, list):
        texts = [p.get("content") for p in value if isinstance(p, dict) and p.get("content")]
        return [message("system", "\n".join(str(t) for t in texts))] if texts else []
    return [message("system", value)]


def _events(raw: RawSpan, span: Span, scores: list[ScoreIn]) -> list[dict[str, Any]]:
    """Message and evaluation events read; the other events returned to be kept."""
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    kept = []
    for name, time_ns, attrs in raw.events:
        if name in _MESSAGE_EVENTS:
            inputs.append(message(attrs.get("role") or _MESSAGE_EVENTS[name], attrs.get("content")))
        elif name == "gen_ai.choice":
            body = as_json(attrs.get("message"))
            content = body.get("content") if isinstance(body, dict) else attrs.get("content")
            outputs.append(message("assistant", content, finish_reason=attrs.get("finish_reason")))
        elif name == "gen_ai.evaluation.result":
            label = attrs.get("gen_ai.evaluation.score.label")
            value = attrs.get("gen_ai.evaluation.score.value")
            scores.append(
                ScoreIn(
                    trace_id=raw.trace_id,
                    span_id=raw.span_id,
                    name=str(attrs.get("gen_ai.evaluation.name") or "evaluation"),
                    value=float(value)
                    if isinstance(value, int | float) and not isinstance(value, bool)
                    else None,
                    label=None if label is None else str(label),
                    comment=attrs.get("gen_ai.evaluation.explanation"),
                    source="api",
                )
            )
        else:
            kept.append({"name": name, "time_unix_nano": time_ns, "attributes": attrs})
    if inputs and span.input_messages is None:
        span.input_messages = inputs
    if outputs and span.output_messages is None:
        span.output_messages = outputs
    return kept


def apply(a: Attrs, raw: RawSpan, span: Span, scores: list[ScoreIn]) -> None:
    if "gen_ai" not in a.namespaces:
        span.events = _events(raw, span, scores) or None
        return
    op = a.text("gen_ai.operation.name")
    if op and span.kind == "other":
        span.kind = OPERATIONS.get(op, "other")
    input_messages = _json_messages(a.take("gen_ai.input.messages"))
    system = _system(a)
    if input_messages is not None or system:
        input_messages = system + (input_messages or [])
    set_if_empty(
        span,
        provider=a.text("gen_ai.provider.name", "gen_ai.system"),
        model_requested=a.text("gen_ai.request.model"),
        model_served=a.text("gen_ai.response.model"),
        input_tokens=a.integer("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
        output_tokens=a.integer("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
        cached_tokens=a.integer(
            "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"
        ),
        reasoning_tokens=a.integer("gen_ai.usage.reasoning_tokens"),
        input_messages=input_messages or _flat_messages(a, "gen_ai.prompt"),
        output_messages=_json_messages(a.take("gen_ai.output.messages"))
        or _flat_messages(a, "gen_ai.completion"),
    )
    if span.kind == "tool":
        set_if_empty(
            span,
            input_value=a.text("gen_ai.tool.call.arguments"),
            output_value=a.text("gen_ai.tool.call.result"),
        )
    span.hints.session_id = span.hints.session_id or a.text("gen_ai.conversation.id")
    span.events = _events(raw, span, scores) or None
