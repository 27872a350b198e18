"""One call in flight through the gateway (:class:`Call`), and how its answer and stream
events are read into it: text, tokens, the model served. Pure functions of the wire data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from panopticon.gateway.guardrails import Verdict
from panopticon.gateway.logging import new_trace_id
from panopticon.gateway.responses import chat_to_response
from panopticon.gateway.routing import KeyEntry, Route
from panopticon.gateway.translate import anthropic_response_to_openai, openai_response_to_anthropic
from panopticon.gateway.wire import iter_text_parts

__all__ = [
    "Call",
    "input_messages",
    "note_anthropic_event",
    "note_openai_chunk",
    "note_responses_event",
    "read_answer",
    "replace_text",
    "responses_text",
]


@dataclass(slots=True)
class Call:
    """One request in flight: what the log needs, filled in as the call goes."""

    endpoint: str
    client: str  # openai | anthropic: the error and stream dialect the client speaks
    started: float
    started_wall: float  # time.time() at the start (the log's datetimes come from it)
    trace_id: str = field(default_factory=new_trace_id)
    key: KeyEntry | None = None
    body: dict[str, Any] | None = None
    stream: bool = False
    route: Route | None = None  # resolved, then the one tried; the one that answered
    model_requested: str | None = None
    input_messages: list[dict[str, Any]] | None = None
    output: list[str] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    model_served: str | None = None
    ttft_ms: float | None = None
    attempts: int = 0
    cache_hit: bool = False
    verdicts: list[Verdict] = field(default_factory=list)
    guardrail_ms: float = 0.0
    user: str | None = None
    session: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    estimate: int = 0
    label: str | None = None  # the endpoint as logged, when it differs (seed 003's /chat)


def input_messages(call: Call, body: dict[str, Any]) -> list[dict[str, Any]] | None:
    if call.endpoint in ("chat.completions", "messages"):
        messages = list(body.get("messages") or [])
        if call.endpoint == "messages" and body.get("system"):
            system = body["system"]
            text = system if isinstance(system, str) else "".join(iter_text_parts(system))
            messages = [{"role": "system", "content": text}, *messages]
        return messages
    if call.endpoint == "responses":
        inp = body.get("input")
        out: list[dict[str, Any]] = []
        if body.get("instructions"):
            out.append({"role": "system", "content": body["instructions"]})
        if isinstance(inp, str):
            out.append({"role": "user", "content": inp})
        elif isinstance(inp, list):
            out += [
                {
                    "role": i.get("role", "user"),
                    "content": "".join(iter_text_parts(i.get("content"))),
                }
                for i in inp
                if isinstance(i, dict)
            ]
        return out
    if call.endpoint == "embeddings":
        inp = body.get("input")
        items = [inp] if isinstance(inp, str) else inp if isinstance(inp, list) else []
        return [{"role": "user", "content": i} for i in items if isinstance(i, str)]
    return None


def read_answer(call: Call, route: Route, raw: bytes) -> bytes:
    """Read the upstream answer for the log; rewrite it for the client if translated."""
    data = orjson.loads(raw)
    endpoint = call.endpoint
    if endpoint == "chat.completions" and route.kind == "anthropic":
        data = anthropic_response_to_openai(data, route.provider_model)
        raw = orjson.dumps(data)
    elif endpoint == "messages" and route.kind == "openai":
        data = openai_response_to_anthropic(data, route.provider_model)
        raw = orjson.dumps(data)
    elif endpoint == "responses" and route.kind == "anthropic":
        data = chat_to_response(
            anthropic_response_to_openai(data, route.provider_model), route.provider_model
        )
        raw = orjson.dumps(data)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    call.model_served = data.get("model")
    usage = data.get("usage") or {}
    if endpoint in ("chat.completions",):
        message = data["choices"][0].get("message") or {}
        call.output = [message.get("content") or message.get("refusal") or ""]
        call.input_tokens = usage.get("prompt_tokens")
        call.output_tokens = usage.get("completion_tokens")
    elif endpoint == "messages":
        call.output = [
            "".join(b.get("text", "") for b in data["content"] if b.get("type") == "text")
        ]
        call.input_tokens = usage.get("input_tokens")
        call.output_tokens = usage.get("output_tokens")
    elif endpoint == "responses":
        call.output = [responses_text(data)]
        call.input_tokens = usage.get("input_tokens")
        call.output_tokens = usage.get("output_tokens")
    elif endpoint == "embeddings":
        call.input_tokens = usage.get("prompt_tokens")
        call.output_tokens = 0 if call.input_tokens is not None else None
        call.output = []
    return raw


def replace_text(call: Call, payload: bytes, text: str) -> bytes:
    data = orjson.loads(payload)
    if call.endpoint == "chat.completions":
        data["choices"][0]["message"]["content"] = text
    elif call.endpoint == "messages":
        data["content"] = [{"type": "text", "text": text}]
    else:
        return payload
    return orjson.dumps(data)


def note_openai_chunk(call: Call, obj: dict[str, Any]) -> bool:
    """Collect text and usage; True when the chunk carries only usage."""
    if obj.get("model"):
        call.model_served = obj["model"]
    usage = obj.get("usage")
    if usage:
        call.input_tokens = usage.get("prompt_tokens")
        call.output_tokens = usage.get("completion_tokens")
    choices = obj.get("choices")
    if not choices:
        return bool(usage)
    for choice in choices:
        text = (choice.get("delta") or {}).get("content")
        if text:
            call.output.append(text)
    return False


def note_anthropic_event(call: Call, obj: dict[str, Any]) -> None:
    kind = obj.get("type")
    if kind == "message_start":
        msg = obj.get("message") or {}
        call.model_served = msg.get("model")
        call.input_tokens = (msg.get("usage") or {}).get("input_tokens")
    elif kind == "content_block_delta":
        delta = obj.get("delta") or {}
        if delta.get("type") == "text_delta":
            call.output.append(delta.get("text", ""))
    elif kind == "message_delta":
        usage = obj.get("usage") or {}
        if usage.get("output_tokens") is not None:
            call.output_tokens = usage["output_tokens"]


def note_responses_event(call: Call, obj: dict[str, Any]) -> None:
    kind = obj.get("type")
    if kind == "response.output_text.delta":
        call.output.append(obj.get("delta", ""))
    elif kind in ("response.completed", "response.incomplete"):
        response = obj.get("response") or {}
        call.model_served = response.get("model")
        usage = response.get("usage") or {}
        call.input_tokens = usage.get("input_tokens")
        call.output_tokens = usage.get("output_tokens")


def responses_text(data: dict[str, Any]) -> str:
    if isinstance(data.get("output_text"), str):
        return str(data["output_text"])
    parts: list[str] = []
    for item in data.get("output") or []:
        for content in item.get("content") or []:
            if content.get("type") == "output_text":
                parts.append(content.get("text", ""))
    return "".join(parts)
