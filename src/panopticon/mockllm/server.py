"""The mock LLM over real HTTP: OpenAI, Anthropic and Gemini wire formats.

Routes::

    POST /v1/chat/completions            OpenAI Chat Completions (``stream: true`` too)
    POST /v1/embeddings                  OpenAI embeddings (bag-of-words hashing vectors)
    GET  /v1/models                      model list
    POST /v1/responses                   OpenAI Responses (``stream: true`` too)
    POST /v1/messages                    Anthropic Messages (``stream: true`` too)
    POST /v1beta/models/{model}:generateContent   Gemini
    GET  /_mock/stats                    request counters (``answered_duplicates`` included)
    GET|POST /_mock/config               read or change behaviour at run time
    POST /_mock/reset                    zero the counters

Injected failures: 429 with ``Retry-After`` and ``retry-after-ms``, 500, time-outs (the
server holds the request for ``timeout_hang_s``) and garbage (a 200 that is not JSON), drawn
from a seeded RNG; streams can be slowed (``stream_chunk_delay_ms``), sized
(``stream_chunks``) and cut mid-way (``stream_reset_after``). ``streams_cut`` counts streams
that did not reach their end (the client went away, or a reset).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import threading
import time
from collections import Counter
from typing import Any

import orjson
from aiohttp import web

from panopticon.mockllm.behaviour import (
    MockAnswer,
    MockConfig,
    embed,
    estimate_tokens,
    respond,
    tool_call_for,
)

__all__ = ["MOCK_KEY", "MockServer", "MockStats", "build_app", "serve_forever"]


class MockStats:
    """Counters of what the server saw. ``answered`` counts successful answers only."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.by_route: Counter[str] = Counter()
        self.by_model: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.answered = 0
        self.fingerprints: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.streams_cut = 0
        self.last_body: dict[str, Any] | None = None  # the last JSON body received
        self.tokens_in = 0
        self.tokens_out = 0
        self.first_request_at: float | None = None  # Unix time, for benchmarks
        self.last_answer_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_route": dict(self.by_route),
            "by_model": dict(self.by_model),
            "injected": dict(self.injected),
            "answered": self.answered,
            "answered_duplicates": sum(1 for c in self.fingerprints.values() if c > 1),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "streams_cut": self.streams_cut,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "first_request_at": self.first_request_at,
            "last_answer_at": self.last_answer_at,
        }


def sse_event(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def _error(
    status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> web.Response:
    return _json({"error": {"message": message, "type": kind, "code": status}}, status, headers)


class _Mock:
    def __init__(self, config: MockConfig, api_key: str | None) -> None:
        self.config = config
        self.stats = MockStats()
        self.api_key = api_key
        self.rng = random.Random(config.seed)

    # --- shared request path -------------------------------------------------------------
    async def _gate(self, request: web.Request, model: str, route: str) -> web.Response | None:
        """Count, authenticate, inject faults and latency. None means: answer normally."""
        st = self.stats
        st.requests += 1
        if st.first_request_at is None:
            st.first_request_at = time.time()
        st.by_route[route] += 1
        st.by_model[model] += 1
        if self.config.echo_key_in_errors:
            sent = request.headers.get("Authorization") or request.headers.get("x-api-key")
            return _error(
                401,
                f"Incorrect API key provided: {sent}. You sent: Authorization: {sent}",
                "authentication_error",
            )
        if self.api_key is not None:
            given = (
                request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                or request.headers.get("x-api-key")
                or request.headers.get("api-key")
                or request.headers.get("x-goog-api-key")
            )
            if given != self.api_key:
                return _error(401, "invalid API key", "authentication_error")
        cfg = self.config
        r = self.rng.random()
        if r < cfg.rate_429:
            st.injected["429"] += 1
            wait = cfg.retry_after_s
            return _error(
                429,
                "rate limit reached (injected)",
                "rate_limit_error",
                {
                    "Retry-After": str(max(0, math.ceil(wait))),
                    "retry-after-ms": str(int(wait * 1000)),
                },
            )
        latency = cfg.latency_for(model)
        if cfg.jitter_ms:
            latency += self.rng.uniform(-cfg.jitter_ms, cfg.jitter_ms)
        if r < cfg.rate_429 + cfg.rate_500:
            st.injected["500"] += 1
            await asyncio.sleep(max(0.0, latency) / 2000.0)
            return _error(500, "internal error (injected)", "server_error")
        if r < cfg.rate_429 + cfg.rate_500 + cfg.rate_timeout:
            st.injected["timeout"] += 1
            await asyncio.sleep(cfg.timeout_hang_s)
            return _error(504, "gateway time-out (injected)", "timeout")
        if latency > 0:
            await asyncio.sleep(latency / 1000.0)
        if r < cfg.rate_429 + cfg.rate_500 + cfg.rate_timeout + cfg.rate_garbage:
            st.injected["garbage"] += 1
            return web.Response(body=b"<html>\x00garbage", status=200, content_type="text/html")
        return None

    def _answered(self, model: str, messages: Any, answer: MockAnswer) -> None:
        st = self.stats
        st.answered += 1
        st.last_answer_at = time.time()
        key = hashlib.blake2b(orjson.dumps([model, messages]), digest_size=12).hexdigest()
        st.fingerprints[key] += 1
        st.tokens_in += answer.input_tokens
        st.tokens_out += answer.output_tokens

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "request body is not JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object", "invalid_request_error")
        self.stats.last_body = body
        return body

    async def _tracked(self, handler: Any, request: web.Request) -> web.StreamResponse:
        st = self.stats
        st.in_flight += 1
        st.max_in_flight = max(st.max_in_flight, st.in_flight)
        try:
            resp: web.StreamResponse = await handler(request)
            return resp
        finally:
            st.in_flight -= 1

    # --- OpenAI ---------------------------------------------------------------------------
    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._tracked(self._chat, request)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        model = body.get("model")
        messages = body.get("messages")
        if not isinstance(model, str) or not isinstance(messages, list) or not messages:
            return _error(
                400,
                "'model' (string) and 'messages' (non-empty list) are required",
                "invalid_request_error",
            )
        gate = await self._gate(request, model, "chat")
        if gate is not None:
            return gate
        json_mode = (body.get("response_format") or {}).get("type") in (
            "json_object",
            "json_schema",
        )
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        answer = respond(self.config, model, messages, json_mode, max_tokens)
        self._answered(model, messages, answer)
        created = int(time.time())
        rid = "chatcmpl-" + hashlib.blake2b(answer.text.encode(), digest_size=8).hexdigest()
        usage = {
            "prompt_tokens": answer.input_tokens,
            "completion_tokens": answer.output_tokens,
            "total_tokens": answer.input_tokens + answer.output_tokens,
        }
        call = tool_call_for(body.get("tools"), body.get("tool_choice"), messages)
        if call is not None:
            return await self._tool_answer(request, body, rid, created, model, call, usage)
        if body.get("stream"):
            return await self._stream(
                request,
                rid,
                created,
                model,
                answer,
                usage,
                bool((body.get("stream_options") or {}).get("include_usage")),
            )
        return _json(
            {
                "id": rid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": answer.finish_reason,
                        "message": {"role": "assistant", "content": answer.text},
                    }
                ],
                "usage": usage,
            }
        )

    async def _stream(
        self,
        request: web.Request,
        rid: str,
        created: int,
        model: str,
        answer: MockAnswer,
        usage: dict[str, int],
        include_usage: bool,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
        first = {"role": "assistant", "content": ""}
        events = [
            sse_event(dict(base, choices=[{"index": 0, "delta": first, "finish_reason": None}]))
        ]
        events += [
            sse_event(
                dict(base, choices=[{"index": 0, "delta": {"content": p}, "finish_reason": None}])
            )
            for p in self._pieces(answer.text)
        ]
        events.append(
            sse_event(
                dict(
                    base, choices=[{"index": 0, "delta": {}, "finish_reason": answer.finish_reason}]
                )
            )
        )
        if include_usage:
            events.append(sse_event(dict(base, choices=[], usage=usage)))
        events.append(b"data: [DONE]\n\n")
        return await self._write_stream(request, resp, events)

    def _pieces(self, text: str) -> list[str]:
        """The answer cut into stream chunks: ``stream_chunks`` of them, or four words each."""
        n = self.config.stream_chunks
        if n > 0:
            size = max(1, math.ceil(len(text) / n))
            pieces = [text[i : i + size] for i in range(0, len(text), size)]
            return pieces + ["."] * (n - len(pieces))
        words = text.split(" ")
        return [
            " ".join(words[i : i + 4]) + (" " if i + 4 < len(words) else "")
            for i in range(0, len(words), 4)
        ]

    async def _write_stream(
        self, request: web.Request, resp: web.StreamResponse, events: list[bytes]
    ) -> web.StreamResponse:
        """Write the events, pausing and cutting as configured; count streams cut short."""
        cfg = self.config
        try:
            for i, event in enumerate(events):
                if cfg.stream_reset_after and i >= cfg.stream_reset_after:
                    self.stats.streams_cut += 1
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                if cfg.stream_chunk_delay_ms and i > 0:
                    await asyncio.sleep(cfg.stream_chunk_delay_ms / 1000.0)
                await resp.write(event)
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            self.stats.streams_cut += 1
            raise
        return resp

    async def _tool_answer(
        self,
        request: web.Request,
        body: dict[str, Any],
        rid: str,
        created: int,
        model: str,
        call: tuple[str, str],
        usage: dict[str, int],
    ) -> web.StreamResponse:
        name, arguments = call
        call_id = "call_" + hashlib.blake2b(arguments.encode(), digest_size=6).hexdigest()
        if not body.get("stream"):
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }
                ],
            }
            return _json(
                {
                    "id": rid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": message}],
                    "usage": usage,
                }
            )
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}
        half = len(arguments) // 2
        deltas = [
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments[:half]},
                    }
                ],
            },
            {"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]},
        ]
        chunks = [
            dict(base, choices=[{"index": 0, "delta": d, "finish_reason": None}]) for d in deltas
        ]
        chunks.append(
            dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append(dict(base, choices=[], usage=usage))
        for chunk in chunks:
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        model = str(body.get("model") or "mock-embedding")
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            return _error(
                400, "'input' must be a string or a list of strings", "invalid_request_error"
            )
        gate = await self._gate(request, model, "embeddings")
        if gate is not None:
            return gate
        dims = int(body.get("dimensions") or 256)
        tokens = sum(estimate_tokens(t) for t in inputs)
        self.stats.answered += 1
        return _json(
            {
                "object": "list",
                "model": model,
                "data": [
                    {"object": "embedding", "index": i, "embedding": embed(t, dims)}
                    for i, t in enumerate(inputs)
                ],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def models(self, request: web.Request) -> web.Response:
        names = sorted(set(self.stats.by_model) | set(self.config.quality)) or ["mock-model"]
        return _json(
            {
                "object": "list",
                "data": [
                    {"id": n, "object": "model", "created": 0, "owned_by": "panopticon-mock"}
                    for n in names
                ],
            }
        )

    # --- Anthropic ------------------------------------------------------------------------
    async def messages(self, request: web.Request) -> web.StreamResponse:
        return await self._tracked(self._messages, request)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        model = body.get("model")
        messages = body.get("messages")
        if (
            not isinstance(model, str)
            or not isinstance(messages, list)
            or not body.get("max_tokens")
        ):
            return _error(
                400, "'model', 'messages' and 'max_tokens' are required", "invalid_request_error"
            )
        gate = await self._gate(request, model, "messages")
        if gate is not None:
            return gate
        if body.get("system"):
            messages = [{"role": "system", "content": body["system"]}, *messages]
        answer = respond(self.config, model, messages, False, int(body["max_tokens"]))
        self._answered(model, messages, answer)
        tools = [
            {"type": "function", "function": {"name": t.get("name")}}
            for t in body.get("tools") or ()
            if isinstance(t, dict)
        ]
        choice = body.get("tool_choice") or {}
        openai_choice: Any = None
        if choice.get("type") == "any":
            openai_choice = "required"
        elif choice.get("type") == "tool":
            openai_choice = {"type": "function", "function": {"name": choice.get("name")}}
        call = tool_call_for(tools, openai_choice, messages)
        if call is not None:
            content: list[dict[str, Any]] = [
                {
                    "type": "tool_use",
                    "id": "toolu_" + hashlib.blake2b(call[1].encode(), digest_size=6).hexdigest(),
                    "name": call[0],
                    "input": orjson.loads(call[1]),
                }
            ]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": answer.text}]
            stop = "max_tokens" if answer.finish_reason == "length" else "end_turn"
        message = {
            "id": "msg_mock",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens},
        }
        if body.get("stream"):
            return await self._messages_stream(request, message)
        return _json(message)

    async def _messages_stream(
        self, request: web.Request, message: dict[str, Any]
    ) -> web.StreamResponse:
        """Anthropic's event stream: message_start, content blocks in pieces, message_delta
        (stop reason, output tokens), message_stop; slowed, sized and cut as configured."""
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        events: list[bytes] = []

        def event(name: str, data: dict[str, Any]) -> None:
            events.append(sse_event(data, name))

        usage = message["usage"]
        start = dict(message, content=[], stop_reason=None)
        start["usage"] = {"input_tokens": usage["input_tokens"], "output_tokens": 1}
        event("message_start", {"type": "message_start", "message": start})
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
                for piece in self._pieces(block["text"]):
                    event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "text_delta", "text": piece},
                        },
                    )
            else:
                event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": dict(block, input={}),
                    },
                )
                event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {
                            "type": "input_json_delta",
                            "partial_json": orjson.dumps(block["input"]).decode(),
                        },
                    },
                )
            event("content_block_stop", {"type": "content_block_stop", "index": index})
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
        event("message_stop", {"type": "message_stop"})
        return await self._write_stream(request, resp, events)

    # --- OpenAI Responses -----------------------------------------------------------------
    async def responses(self, request: web.Request) -> web.StreamResponse:
        return await self._tracked(self._responses, request)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        model = body.get("model")
        inp = body.get("input")
        if not isinstance(model, str) or not isinstance(inp, (str, list)):
            return _error(
                400,
                "'model' (string) and 'input' (string or list) are required",
                "invalid_request_error",
            )
        messages: list[dict[str, Any]] = []
        if body.get("instructions"):
            messages.append({"role": "system", "content": str(body["instructions"])})
        if isinstance(inp, str):
            messages.append({"role": "user", "content": inp})
        else:
            for item in inp:
                content = item.get("content") if isinstance(item, dict) else item
                if isinstance(content, list):
                    content = " ".join(
                        str(p.get("text", "")) for p in content if isinstance(p, dict)
                    )
                messages.append(
                    {
                        "role": (item.get("role") if isinstance(item, dict) else None) or "user",
                        "content": str(content),
                    }
                )
        gate = await self._gate(request, model, "responses")
        if gate is not None:
            return gate
        answer = respond(self.config, model, messages, False, body.get("max_output_tokens"))
        self._answered(model, messages, answer)
        rid = "resp_" + hashlib.blake2b(answer.text.encode(), digest_size=8).hexdigest()
        message = {
            "id": "msg_" + rid[5:],
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": answer.text, "annotations": []}],
        }
        usage = {
            "input_tokens": answer.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": answer.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": answer.input_tokens + answer.output_tokens,
        }
        done = {
            "id": rid,
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed" if answer.finish_reason != "length" else "incomplete",
            "model": model,
            "output": [message],
            "usage": usage,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "metadata": {},
            "parallel_tool_calls": True,
            "temperature": body.get("temperature"),
            "tool_choice": "auto",
            "tools": [],
            "top_p": body.get("top_p"),
        }
        if not body.get("stream"):
            return _json(done)
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        started = dict(done, status="in_progress", output=[], usage=None)
        seq = iter(range(1_000_000))
        events = [
            sse_event(
                {"type": "response.created", "sequence_number": next(seq), "response": started},
                "response.created",
            ),
            sse_event(
                {
                    "type": "response.output_item.added",
                    "sequence_number": next(seq),
                    "output_index": 0,
                    "item": dict(message, status="in_progress", content=[]),
                },
                "response.output_item.added",
            ),
        ]
        events += [
            sse_event(
                {
                    "type": "response.output_text.delta",
                    "sequence_number": next(seq),
                    "item_id": message["id"],
                    "output_index": 0,
                    "content_index": 0,
                    "delta": p,
                    "logprobs": [],
                },
                "response.output_text.delta",
            )
            for p in self._pieces(answer.text)
        ]
        events += [
            sse_event(
                {
                    "type": "response.output_text.done",
                    "sequence_number": next(seq),
                    "item_id": message["id"],
                    "output_index": 0,
                    "content_index": 0,
                    "text": answer.text,
                    "logprobs": [],
                },
                "response.output_text.done",
            ),
            sse_event(
                {
                    "type": "response.output_item.done",
                    "sequence_number": next(seq),
                    "output_index": 0,
                    "item": message,
                },
                "response.output_item.done",
            ),
            sse_event(
                {"type": "response.completed", "sequence_number": next(seq), "response": done},
                "response.completed",
            ),
        ]
        return await self._write_stream(request, resp, events)

    # --- Gemini ---------------------------------------------------------------------------
    async def generate(self, request: web.Request) -> web.StreamResponse:
        return await self._tracked(self._generate, request)

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        model_action = request.match_info["model_action"]
        model, _, action = model_action.partition(":")
        if action != "generateContent":
            return _error(404, f"unsupported action '{action}'", "not_found")
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        gate = await self._gate(request, model, "generateContent")
        if gate is not None:
            return gate
        messages: list[dict[str, Any]] = []
        system = body.get("systemInstruction") or body.get("system_instruction")
        if system:
            messages.append(
                {
                    "role": "system",
                    "content": " ".join(p.get("text", "") for p in system.get("parts", [])),
                }
            )
        for content in body.get("contents") or []:
            messages.append(
                {
                    "role": content.get("role", "user"),
                    "content": " ".join(p.get("text", "") for p in content.get("parts", [])),
                }
            )
        gen = body.get("generationConfig") or {}
        answer = respond(
            self.config,
            model,
            messages,
            gen.get("responseMimeType") == "application/json",
            gen.get("maxOutputTokens"),
        )
        self._answered(model, messages, answer)
        return _json(
            {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": answer.text}]},
                        "finishReason": "MAX_TOKENS"
                        if answer.finish_reason == "length"
                        else "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": answer.input_tokens,
                    "candidatesTokenCount": answer.output_tokens,
                    "totalTokenCount": answer.input_tokens + answer.output_tokens,
                },
                "modelVersion": model,
            }
        )

    # --- control --------------------------------------------------------------------------
    async def get_stats(self, request: web.Request) -> web.Response:
        return _json(self.stats.as_dict())

    async def config_view(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            body = await self._body(request)
            if isinstance(body, web.Response):
                return body
            try:
                self.config.update(body)
            except ValueError as exc:
                return _error(400, str(exc), "invalid_request_error")
            if "seed" in body:
                self.rng.seed(self.config.seed)
        return _json(self.config.as_dict())

    async def reset(self, request: web.Request) -> web.Response:
        self.stats.reset()
        return _json({"ok": True})


MOCK_KEY = web.AppKey("mock", _Mock)


def build_app(config: MockConfig | None = None, api_key: str | None = None) -> web.Application:
    """The aiohttp application; ``app[MOCK_KEY]`` holds its config and stats."""
    mock = _Mock(config or MockConfig(), api_key)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[MOCK_KEY] = mock
    for prefix in ("/v1", ""):
        app.router.add_post(prefix + "/chat/completions", mock.chat)
        app.router.add_post(prefix + "/embeddings", mock.embeddings)
        app.router.add_get(prefix + "/models", mock.models)
    app.router.add_post("/v1/messages", mock.messages)
    app.router.add_post("/v1/responses", mock.responses)
    app.router.add_post("/responses", mock.responses)
    app.router.add_post("/v1beta/models/{model_action}", mock.generate)
    app.router.add_get("/_mock/stats", mock.get_stats)
    app.router.add_get("/_mock/config", mock.config_view)
    app.router.add_post("/_mock/config", mock.config_view)
    app.router.add_post("/_mock/reset", mock.reset)
    return app


class MockServer:
    """Runs the mock in a background thread with its own event loop, on a real port.

    >>> with MockServer(MockConfig(latency_ms=5)) as server:
    ...     server.url   # 'http://127.0.0.1:PORT/v1'
    """

    def __init__(
        self,
        config: MockConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
    ) -> None:
        self.config = config or MockConfig()
        self.host = host
        self.port = port
        self.api_key = api_key
        self._app = build_app(self.config, api_key)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def root(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI-style base URL (``.../v1``)."""
        return self.root + "/v1"

    @property
    def stats(self) -> MockStats:
        return self._app[MOCK_KEY].stats

    def reset(self, config: MockConfig | None = None) -> None:
        """Restore the given (default) behaviour, zero the counters and re-seed faults."""
        mock = self._app[MOCK_KEY]
        mock.config.update((config or MockConfig()).as_dict())
        mock.stats.reset()
        mock.rng.seed(mock.config.seed)

    def start(self) -> MockServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as exc:  # reported to the caller of start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_site())
            loop.close()

        self._thread = threading.Thread(target=run, name="panopticon-mockllm", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    async def _start_site(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    async def _stop_site(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def serve_forever(
    config: MockConfig, host: str, port: int, api_key: str | None = None, on_ready: Any = None
) -> None:
    """Run the mock in the current event loop until cancelled (the CLI's entry)."""
    runner = web.AppRunner(build_app(config, api_key), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    server = getattr(site, "_server", None)
    actual = server.sockets[0].getsockname()[1] if server and server.sockets else port
    if on_ready is not None:
        on_ready(f"http://{host}:{actual}")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
