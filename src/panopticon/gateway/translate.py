"""OpenAI Chat Completions <-> Anthropic Messages, both ways, streams included.

An OpenAI-SDK client may call a Claude model, and an Anthropic-SDK client an OpenAI-style
model: the request is rewritten for the upstream API and its answer (or stream of events)
rewritten back. Text, system prompts, images by URL, stop sequences, sampling parameters
and function tools are carried over; fields with no counterpart in the other API are
dropped (they would be refused there).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from panopticon.gateway.wire import iter_text_parts

__all__ = [
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "anthropic_request_to_openai",
    "anthropic_response_to_openai",
    "openai_request_to_anthropic",
    "openai_response_to_anthropic",
]

DEFAULT_MAX_TOKENS = 4096
_STOP_TO_OPENAI = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
_FINISH_TO_ANTHROPIC = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def _text(content: Any) -> str:
    return "".join(iter_text_parts(content))


# -- OpenAI request -> Anthropic ------------------------------------------------------------


def _to_anthropic_blocks(content: Any) -> Any:
    if isinstance(content, str) or content is None:
        return content or ""
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                blocks.append(
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": media, "data": data},
                    }
                )
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
    return blocks


def openai_request_to_anthropic(body: dict[str, Any], model: str) -> dict[str, Any]:
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for m in body.get("messages") or []:
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(_text(m.get("content")))
        elif role == "tool":
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": m.get("tool_call_id", ""),
                            "content": _text(m.get("content")),
                        }
                    ],
                }
            )
        elif role == "assistant" and m.get("tool_calls"):
            blocks: list[dict[str, Any]] = []
            if m.get("content"):
                blocks.append({"type": "text", "text": _text(m.get("content"))})
            for call in m["tool_calls"]:
                fn = call.get("function") or {}
                try:
                    args = orjson.loads(fn.get("arguments") or "{}")
                except orjson.JSONDecodeError:
                    args = {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": fn.get("name", ""),
                        "input": args,
                    }
                )
            messages.append({"role": "assistant", "content": blocks})
        else:
            messages.append(
                {
                    "role": "assistant" if role == "assistant" else "user",
                    "content": _to_anthropic_blocks(m.get("content")),
                }
            )
    out: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        out["system"] = "\n\n".join(system)
    for name in ("temperature", "top_p", "stream"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    tools = body.get("tools")
    if tools:
        out["tools"] = [
            {
                "name": (t.get("function") or {}).get("name", ""),
                "description": (t.get("function") or {}).get("description", ""),
                "input_schema": (t.get("function") or {}).get("parameters")
                or {"type": "object", "properties": {}},
            }
            for t in tools
            if t.get("type") == "function"
        ]
        choice = body.get("tool_choice")
        if choice == "required":
            out["tool_choice"] = {"type": "any"}
        elif choice == "none":
            out["tool_choice"] = {"type": "none"}
        elif isinstance(choice, dict):
            out["tool_choice"] = {
                "type": "tool",
                "name": (choice.get("function") or {}).get("name"),
            }
    return out


def anthropic_response_to_openai(msg: dict[str, Any], model: str) -> dict[str, Any]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in msg.get("content") or []:
        if block.get("type") == "text":
            text.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(text) if text or not calls else None,
    }
    if calls:
        message["tool_calls"] = calls
    usage = msg.get("usage") or {}
    prompt = _anthropic_input_tokens(usage)
    completion = usage.get("output_tokens")
    return {
        "id": "chatcmpl-" + str(msg.get("id", "")).removeprefix("msg_"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": msg.get("model") or model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _STOP_TO_OPENAI.get(msg.get("stop_reason") or "", "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": (prompt or 0) + (completion or 0),
        },
    }


def _anthropic_input_tokens(usage: dict[str, Any]) -> int | None:
    base = usage.get("input_tokens")
    if base is None:
        return None
    return (
        int(base)
        + int(usage.get("cache_read_input_tokens") or 0)
        + int(usage.get("cache_creation_input_tokens") or 0)
    )


class AnthropicToOpenAIStream:
    """Anthropic stream events in, OpenAI ``chat.completion.chunk`` objects out."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = "chatcmpl-stream"
        self.created = int(time.time())
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.served: str | None = None
        self.finish: str | None = None
        self._tool_index: dict[int, int] = {}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.served or self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def feed(self, event: str | None, data: dict[str, Any]) -> list[dict[str, Any]]:
        kind = data.get("type") or event
        if kind == "message_start":
            msg = data.get("message") or {}
            self.id = "chatcmpl-" + str(msg.get("id", "stream")).removeprefix("msg_")
            self.served = msg.get("model")
            usage = msg.get("usage") or {}
            self.input_tokens = _anthropic_input_tokens(usage)
            if usage.get("output_tokens"):
                self.output_tokens = usage.get("output_tokens")
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                i = len(self._tool_index)
                self._tool_index[int(data.get("index", 0))] = i
                return [
                    self._chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": i,
                                    "id": block.get("id", ""),
                                    "type": "function",
                                    "function": {"name": block.get("name", ""), "arguments": ""},
                                }
                            ]
                        }
                    )
                ]
            return []
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                i = self._tool_index.get(int(data.get("index", 0)), 0)
                return [
                    self._chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": i,
                                    "function": {"arguments": delta.get("partial_json", "")},
                                }
                            ]
                        }
                    )
                ]
            return []
        if kind == "message_delta":
            usage = data.get("usage") or {}
            if usage.get("output_tokens") is not None:
                self.output_tokens = usage["output_tokens"]
            if usage.get("input_tokens") is not None and self.input_tokens is None:
                self.input_tokens = _anthropic_input_tokens(usage)
            stop = (data.get("delta") or {}).get("stop_reason")
            self.finish = _STOP_TO_OPENAI.get(stop or "", "stop")
            return [self._chunk({}, self.finish)]
        if kind == "message_stop":
            if not self.include_usage:
                return []
            chunk = self._chunk({})
            chunk["choices"] = []
            chunk["usage"] = {
                "prompt_tokens": self.input_tokens,
                "completion_tokens": self.output_tokens,
                "total_tokens": (self.input_tokens or 0) + (self.output_tokens or 0),
            }
            return [chunk]
        return []  # ping and unknown events


# -- Anthropic request -> OpenAI ------------------------------------------------------------


def anthropic_request_to_openai(body: dict[str, Any], model: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text(system)})
    for m in body.get("messages") or []:
        role = m.get("role", "user")
        content = m.get("content")
        if isinstance(content, str):
            messages.append({"role": role, "content": content})
            continue
        parts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for block in content or []:
            kind = block.get("type")
            if kind == "text":
                parts.append({"type": "text", "text": block.get("text", "")})
            elif kind == "image":
                src = block.get("source") or {}
                url = (
                    src.get("url")
                    if src.get("type") == "url"
                    else f"data:{src.get('media_type')};base64,{src.get('data', '')}"
                )
                parts.append({"type": "image_url", "image_url": {"url": url}})
            elif kind == "tool_use":
                calls.append(
                    {
                        "id": block.get("id", ""),
                        "type": "function",
                        "function": {
                            "name": block.get("name", ""),
                            "arguments": orjson.dumps(block.get("input") or {}).decode(),
                        },
                    }
                )
            elif kind == "tool_result":
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": block.get("tool_use_id", ""),
                        "content": _text(block.get("content")),
                    }
                )
        if calls:
            messages.append(
                {"role": "assistant", "content": _text(parts) or None, "tool_calls": calls}
            )
        elif parts:
            only_text = all(p["type"] == "text" for p in parts)
            messages.append({"role": role, "content": _text(parts) if only_text else parts})
    out: dict[str, Any] = {"model": model, "messages": messages}
    if body.get("max_tokens") is not None:
        out["max_tokens"] = body["max_tokens"]
    for name in ("temperature", "top_p", "stream"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    if body.get("stream"):
        out["stream_options"] = {"include_usage": True}
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        out["user"] = str(user)
    if body.get("tools"):
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name", ""),
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {"type": "object"},
                },
            }
            for t in body["tools"]
        ]
    return out


def openai_response_to_anthropic(data: dict[str, Any], model: str) -> dict[str, Any]:
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        try:
            args = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            args = {"arguments": fn.get("arguments")}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": fn.get("name", ""),
                "input": args,
            }
        )
    usage = data.get("usage") or {}
    return {
        "id": "msg_" + str(data.get("id", "")).removeprefix("chatcmpl-"),
        "type": "message",
        "role": "assistant",
        "model": data.get("model") or model,
        "content": content or [{"type": "text", "text": ""}],
        "stop_reason": _FINISH_TO_ANTHROPIC.get(choice.get("finish_reason") or "", "end_turn"),
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.get("prompt_tokens") or 0,
            "output_tokens": usage.get("completion_tokens") or 0,
        },
    }


class OpenAIToAnthropicStream:
    """OpenAI chunks in, Anthropic stream events (name, data) out."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False
        self.finish: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.served: str | None = None

    def _start(self, chunk: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        self.started = True
        self.served = chunk.get("model")
        return [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_" + str(chunk.get("id", "")).removeprefix("chatcmpl-"),
                        "type": "message",
                        "role": "assistant",
                        "model": self.served or self.model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 0, "output_tokens": 0},
                    },
                },
            ),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
        ]

    def feed(self, chunk: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        out = [] if self.started else self._start(chunk)
        usage = chunk.get("usage")
        if usage:
            self.input_tokens = usage.get("prompt_tokens")
            self.output_tokens = usage.get("completion_tokens")
        for choice in chunk.get("choices") or []:
            text = (choice.get("delta") or {}).get("content")
            if text:
                out.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "text_delta", "text": text},
                        },
                    )
                )
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return out

    def finish_events(self) -> list[tuple[str, dict[str, Any]]]:
        out = [] if self.started else self._start({})
        out += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": _FINISH_TO_ANTHROPIC.get(self.finish or "", "end_turn"),
                        "stop_sequence": None,
                    },
                    "usage": {"output_tokens": self.output_tokens or 0},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        return out
