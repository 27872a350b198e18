"""Upstream streams to the client, event by event, in the dialect the client speaks: passed
through (chunk by chunk, as they arrive) or translated (OpenAI <-> Anthropic); the text,
usage and model served are collected into the call for its log as they go by."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import orjson

from panopticon.gateway.call import (
    Call,
    note_anthropic_event,
    note_openai_chunk,
    note_responses_event,
)
from panopticon.gateway.routing import Route
from panopticon.gateway.translate import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from panopticon.gateway.upstream import UpstreamError
from panopticon.gateway.wire import SSEParser, sse

__all__ = ["Send", "pump"]

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def pump(
    call: Call,
    route: Route,
    resp: aiohttp.ClientResponse,
    send: Send,
    include_usage: bool,
) -> None:
    """Forward the upstream stream, event by event, as the client's dialect wants it."""
    parser = SSEParser()
    endpoint, kind = call.endpoint, route.kind
    to_openai = (
        AnthropicToOpenAIStream(route.provider_model, include_usage)
        if (endpoint == "chat.completions" and kind == "anthropic")
        else None
    )
    to_anthropic = (
        OpenAIToAnthropicStream(route.provider_model)
        if (endpoint == "messages" and kind == "openai")
        else None
    )
    done = False
    async for chunk in resp.content.iter_any():
        out: list[bytes] = []
        for raw, event, data in parser.feed(chunk):
            if data is None:
                continue
            if data == b"[DONE]":
                done = True
                if to_anthropic is not None:
                    out += [sse(d, e) for e, d in to_anthropic.finish_events()]
                    call.input_tokens, call.output_tokens = (
                        to_anthropic.input_tokens,
                        to_anthropic.output_tokens,
                    )
                else:
                    out.append(raw)
                continue
            obj = orjson.loads(data)
            if not isinstance(obj, dict):
                raise ValueError("a stream event that is not a JSON object")
            if ("error" in obj and endpoint != "responses") or obj.get("type") == "error":
                err = obj.get("error") or {}
                raise UpstreamError(
                    f"model '{route.name}' upstream failed mid-stream: "
                    f"{err.get('message') if isinstance(err, dict) else err}",
                    502,
                    retryable=False,
                )
            if to_openai is not None:
                for c in to_openai.feed(event, obj):
                    note_openai_chunk(call, c)
                    out.append(sse(c))
                if obj.get("type") == "message_stop":
                    out.append(b"data: [DONE]\n\n")
                    done = True
                    call.input_tokens, call.output_tokens = (
                        to_openai.input_tokens,
                        to_openai.output_tokens,
                    )
                    call.model_served = to_openai.served
            elif to_anthropic is not None:
                note_openai_chunk(call, obj)
                out += [sse(d, e) for e, d in to_anthropic.feed(obj)]
            elif endpoint == "chat.completions":
                usage_only = note_openai_chunk(call, obj)
                if not usage_only or include_usage:
                    out.append(raw)
            elif endpoint == "messages":
                note_anthropic_event(call, obj)
                out.append(raw)
                if obj.get("type") == "message_stop":
                    done = True
            else:  # responses
                note_responses_event(call, obj)
                out.append(raw)
                if obj.get("type") in (
                    "response.completed",
                    "response.failed",
                    "response.incomplete",
                ):
                    done = True
        if out:
            if call.ttft_ms is None:
                call.ttft_ms = (time.perf_counter() - call.started) * 1000.0
            await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
    if not done:
        raise UpstreamError(
            f"model '{route.name}' upstream closed the stream before it ended",
            502,
            retryable=False,
        )
