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
from panopticon.gateway.responses import ChatToResponsesStream
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
    endpoint, kind = call.endpoint, route.kind
    if endpoint == "chat.completions" and kind == "anthropic":
        await _translated(
            call,
            route,
            resp,
            send,
            AnthropicToOpenAIStream(route.provider_model, include_usage),
            None,
        )
    elif endpoint == "responses" and kind == "anthropic":
        await _translated(
            call,
            route,
            resp,
            send,
            AnthropicToOpenAIStream(route.provider_model, True),
            None,
            ChatToResponsesStream(route.provider_model),
        )
    elif endpoint == "messages" and kind == "openai":
        await _translated(
            call, route, resp, send, None, OpenAIToAnthropicStream(route.provider_model)
        )
    else:
        await _relay(
            call, route, resp, send, drop_usage=endpoint == "chat.completions" and not include_usage
        )


def _is_usage_only(data: bytes) -> bool:
    """An OpenAI usage chunk (no choices), found without parsing it."""
    return b'"choices":[]' in data or b'"choices": []' in data


async def _relay(
    call: Call, route: Route, resp: aiohttp.ClientResponse, send: Send, *, drop_usage: bool
) -> None:
    """Same dialect on both sides: each complete event is sent on as it arrives; what the
    log needs is read from the events after they are sent. The usage chunk the gateway
    asked for is kept from a client that did not ask for it."""
    parser = SSEParser()
    endpoint = call.endpoint
    done = False
    failed: str | None = None
    async for chunk in resp.content.iter_any():
        out: list[bytes] = []
        seen: list[bytes] = []
        for raw, _event, data in parser.feed(chunk):
            if data is None:
                continue
            if data == b"[DONE]":
                done = True
                out.append(raw)
                continue
            seen.append(data)
            if not (drop_usage and _is_usage_only(data)):
                out.append(raw)
        if out:
            if call.ttft_ms is None:
                call.ttft_ms = (time.perf_counter() - call.started) * 1000.0
            await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
        for data in seen:
            obj = orjson.loads(data)
            if not isinstance(obj, dict):
                raise ValueError("a stream event that is not a JSON object")
            if ("error" in obj and endpoint != "responses") or obj.get("type") == "error":
                failed = _error_text(obj)
            elif endpoint == "chat.completions":
                note_openai_chunk(call, obj)
            elif endpoint == "messages":
                note_anthropic_event(call, obj)
                done = done or obj.get("type") == "message_stop"
            else:  # responses
                note_responses_event(call, obj)
                done = done or obj.get("type") in _RESPONSES_END
    if failed is not None:
        raise UpstreamError(
            f"model '{route.name}' upstream failed mid-stream: {failed}",
            502,
            retryable=False,
            forwarded=True,  # the client has the provider's error event already
        )
    if not done:
        raise UpstreamError(
            f"model '{route.name}' upstream closed the stream before it ended",
            502,
            retryable=False,
        )


_RESPONSES_END = ("response.completed", "response.failed", "response.incomplete")


def _error_text(obj: dict[str, Any]) -> str:
    err = obj.get("error") or {}
    return str(err.get("message") if isinstance(err, dict) else err)


async def _translated(
    call: Call,
    route: Route,
    resp: aiohttp.ClientResponse,
    send: Send,
    to_openai: AnthropicToOpenAIStream | None,
    to_anthropic: OpenAIToAnthropicStream | None,
    to_responses: ChatToResponsesStream | None = None,
) -> None:
    """Another dialect upstream: each event is read, rewritten and sent."""
    parser = SSEParser()
    done = False
    async for chunk in resp.content.iter_any():
        out: list[bytes] = []
        for _raw, event, data in parser.feed(chunk):
            if data is None:
                continue
            if data == b"[DONE]":
                done = True
                if to_anthropic is not None:
                    out += [sse(d, e) for e, d in to_anthropic.finish_events()]
                    call.input_tokens = to_anthropic.input_tokens
                    call.output_tokens = to_anthropic.output_tokens
                continue
            obj = orjson.loads(data)
            if not isinstance(obj, dict):
                raise ValueError("a stream event that is not a JSON object")
            if "error" in obj or obj.get("type") == "error":
                raise UpstreamError(
                    f"model '{route.name}' upstream failed mid-stream: {_error_text(obj)}",
                    502,
                    retryable=False,
                )
            if to_openai is not None:
                for c in to_openai.feed(event, obj):
                    note_openai_chunk(call, c)
                    if to_responses is None:
                        out.append(sse(c))
                    else:
                        out += [sse(d, e) for e, d in to_responses.feed(c)]
                if obj.get("type") == "message_stop":
                    if to_responses is None:
                        out.append(b"data: [DONE]\n\n")
                    else:
                        out += [sse(d, e) for e, d in to_responses.finish()]
                    done = True
                    call.input_tokens = to_openai.input_tokens
                    call.output_tokens = to_openai.output_tokens
                    call.model_served = to_openai.served
            elif to_anthropic is not None:
                note_openai_chunk(call, obj)
                out += [sse(d, e) for e, d in to_anthropic.feed(obj)]
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
