"""The Responses API <-> Chat Completions, so a Responses client (the openai SDK's
``client.responses``) can call a model that only speaks Chat Completions or Anthropic
Messages: the request becomes a chat request, the chat answer (or chunk stream) becomes a
response (or Responses event stream). Text, instructions and sampling carry over."""

from __future__ import annotations

import time
from typing import Any

from panopticon.gateway.wire import iter_text_parts

__all__ = ["ChatToResponsesStream", "chat_to_response", "responses_request_to_chat"]


def responses_request_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": str(body["instructions"])})
    inp = body.get("input")
    if isinstance(inp, str):
        messages.append({"role": "user", "content": inp})
    elif isinstance(inp, list):
        for item in inp:
            if isinstance(item, dict) and item.get("type", "message") == "message":
                role = item.get("role", "user")
                messages.append(
                    {
                        "role": "system" if role == "developer" else role,
                        "content": "".join(iter_text_parts(item.get("content"))),
                    }
                )
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "stream", "user"):
        if body.get(name) is not None:
            out[name] = body[name]
    return out


def _usage(prompt: int | None, completion: int | None) -> dict[str, Any]:
    return {
        "input_tokens": prompt or 0,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion or 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": (prompt or 0) + (completion or 0),
    }


def _response(
    rid: str, model: str, text: str | None, usage: dict[str, Any] | None
) -> dict[str, Any]:
    output = []
    if text is not None:
        output.append(
            {
                "id": "msg_" + rid.removeprefix("resp_"),
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        )
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed" if usage is not None else "in_progress",
        "model": model,
        "output": output,
        "usage": usage,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "temperature": None,
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
    }


def chat_to_response(chat: dict[str, Any], model: str) -> dict[str, Any]:
    choice = (chat.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    usage = chat.get("usage") or {}
    rid = "resp_" + str(chat.get("id", "")).removeprefix("chatcmpl-")
    return _response(
        rid,
        chat.get("model") or model,
        message.get("content") or "",
        _usage(usage.get("prompt_tokens"), usage.get("completion_tokens")),
    )


class ChatToResponsesStream:
    """Chat chunks in, Responses events (name, data) out."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.rid = "resp_stream"
        self.text: list[str] = []
        self.seq = 0
        self.started = False
        self.prompt: int | None = None
        self.completion: int | None = None

    def _event(self, name: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        data = {"type": name, "sequence_number": self.seq, **data}
        self.seq += 1
        return name, data

    @property
    def item_id(self) -> str:
        return "msg_" + self.rid.removeprefix("resp_")

    def feed(self, chunk: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        out = []
        if not self.started:
            self.started = True
            self.rid = "resp_" + str(chunk.get("id", "stream")).removeprefix("chatcmpl-")
            self.model = chunk.get("model") or self.model
            out.append(
                self._event(
                    "response.created", {"response": _response(self.rid, self.model, None, None)}
                )
            )
            item = {"id": self.item_id, "type": "message", "status": "in_progress",
                    "role": "assistant", "content": []}  # fmt: skip
            out.append(self._event("response.output_item.added", {"output_index": 0, "item": item}))
            part = {"type": "output_text", "text": "", "annotations": []}
            out.append(
                self._event(
                    "response.content_part.added",
                    {"item_id": self.item_id, "output_index": 0, "content_index": 0, "part": part},
                )
            )
        usage = chunk.get("usage")
        if usage:
            self.prompt = usage.get("prompt_tokens")
            self.completion = usage.get("completion_tokens")
        for choice in chunk.get("choices") or []:
            text = (choice.get("delta") or {}).get("content")
            if text:
                self.text.append(text)
                out.append(
                    self._event(
                        "response.output_text.delta",
                        {
                            "item_id": self.item_id,
                            "output_index": 0,
                            "content_index": 0,
                            "delta": text,
                            "logprobs": [],
                        },
                    )
                )
        return out

    def finish(self) -> list[tuple[str, dict[str, Any]]]:
        text = "".join(self.text)
        done = _response(self.rid, self.model, text, _usage(self.prompt, self.completion))
        where = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
        part = {"type": "output_text", "text": text, "annotations": []}
        return [
            self._event("response.output_text.done", {**where, "text": text, "logprobs": []}),
            self._event("response.content_part.done", {**where, "part": part}),
            self._event(
                "response.output_item.done", {"output_index": 0, "item": done["output"][0]}
            ),
            self._event("response.completed", {"response": done}),
        ]
