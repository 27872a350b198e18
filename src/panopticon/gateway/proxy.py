"""The gateway's hot path: a raw ASGI application (no framework per request).

Per request it parses the JSON body once (orjson), authenticates the key from memory,
resolves the model from memory, takes RPM/TPM from in-memory chunks, forwards the body
upstream over one pooled aiohttp session and passes the answer back, a stream chunk by
chunk. Everything else (the trace, spend, the database) happens off the response path.

Routes::

    POST /v1/chat/completions   OpenAI Chat Completions (stream too), to any provider kind
    POST /v1/responses          OpenAI Responses (stream too), OpenAI-compatible upstreams
    POST /v1/embeddings         OpenAI embeddings, OpenAI-compatible upstreams
    GET  /v1/models             the workspace's registered models
    POST /v1/messages           Anthropic Messages (stream too), to any provider kind
    POST /chat                  seed 003's call: {prompt, user_id, model_version}
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from panopticon.errors import GatewayError
from panopticon.gateway.cache import ResponseCache
from panopticon.gateway.call import Call, input_messages, read_answer, replace_text
from panopticon.gateway.guardrails import GuardrailBlocked
from panopticon.gateway.limits import SpendTracker
from panopticon.gateway.logging import CallRecord, TraceSink, new_span_id
from panopticon.gateway.routing import KeyTable, Route, RouteTable
from panopticon.gateway.streams import pump
from panopticon.gateway.upstream import Upstream, UpstreamError, build_request
from panopticon.gateway.wire import anthropic_error, openai_error, sse
from panopticon.providers.http import MAX_ANSWER_BYTES, read_at_most

__all__ = ["Gateway", "GatewayOptions"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

TRACE_HEADER = b"x-panopticon-trace-id"
_EPOCH = "1970-01-01T00:00:00Z"
MAX_BODY = 32 * 1024 * 1024
# JSON nesting a request body or X-Panopticon-Metadata may have: far more than a chat request
# or a tool's JSON schema needs, and far less than the 254 levels orjson writes (the call's
# upstream request and its log record are written with it)
MAX_DEPTH = 64
_JSON = [(b"content-type", b"application/json")]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


@dataclass(frozen=True)
class GatewayOptions:
    logging: bool = True
    cache_entries: int = 10_000
    allow_private_urls: bool = True  # the operator's egress rule (providers/egress.py)


class Gateway:
    """The ASGI app. ``startup``/``shutdown`` run with the server (ASGI lifespan, or the
    combined app's)."""

    def __init__(
        self,
        keys: KeyTable,
        routes: RouteTable,
        spend: SpendTracker,
        sink: TraceSink,
        options: GatewayOptions | None = None,
    ) -> None:
        self.keys = keys
        self.routes = routes
        self.spend = spend
        self.sink = sink
        self.options = options or GatewayOptions()
        self.cache = ResponseCache(self.options.cache_entries)
        self.upstream = Upstream(routes, self.options.allow_private_urls)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.handlers: dict[tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            ("POST", "/v1/chat/completions"): self.chat_completions,
            ("POST", "/v1/responses"): self.responses,
            ("POST", "/v1/embeddings"): self.embeddings,
            ("GET", "/v1/models"): self.models,
            ("POST", "/v1/messages"): self.messages,
            ("POST", "/chat"): self.seed_chat,
        }
        self.paths = {p for _, p in self.handlers}

    # -- lifecycle ---------------------------------------------------------------------------
    async def startup(self) -> None:
        await self.upstream.open()
        self._stop.clear()
        self._tasks = [asyncio.create_task(self.spend.run(self._stop))]

    async def shutdown(self) -> None:
        self._stop.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, 10)
            except (TimeoutError, Exception):
                task.cancel()
        try:
            await self.spend.flush()
        except Exception as exc:
            log.warning("gateway spend not saved at shutdown: %s", exc)
        await self.upstream.close()

    # -- ASGI --------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        handler = self.handlers.get((scope["method"], scope["path"]))
        if handler is None:
            if scope["path"] in self.paths:
                await self._send_json(
                    send,
                    405,
                    openai_error(f"{scope['method']} is not allowed here", "invalid_request_error"),
                )
            else:
                await self._send_json(
                    send,
                    404,
                    openai_error(
                        f"no gateway route {scope['path']}; the gateway serves "
                        "/v1/chat/completions, "
                        "/v1/responses, /v1/embeddings, /v1/models, /v1/messages and /chat",
                        "invalid_request_error",
                        "not_found",
                    ),
                )
            return
        started = False

        async def tracked(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await handler(scope, receive, tracked)
        except Exception:  # a defect: this client gets a 500, every other carries on
            log.exception("gateway request failed")
            if not started:
                await self._send_json(
                    send,
                    500,
                    openai_error(
                        "the gateway failed on this request (its log has the details)",
                        "api_error",
                        "internal_error",
                    ),
                )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    async def _send_json(
        send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        head = [*_JSON, (b"content-length", b"%d" % len(body))]
        if headers:
            head += headers
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _read(receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise GatewayError("the client went away", 499, "client_closed")
            body = message.get("body", b"")
            size += len(body)
            if size > MAX_BODY:
                raise GatewayError(
                    f"request body over {MAX_BODY // (1024 * 1024)} MB", 413, code="too_large"
                )
            chunks.append(body)
            if not message.get("more_body"):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # -- the shared front half: auth, body, headers ------------------------------------------
    async def _begin(self, scope: Scope, receive: Receive, call: Call) -> dict[str, Any]:
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                v = value.decode("latin-1")
                token = v[7:].strip() if v[:7].lower() == "bearer " else v.strip()
            elif name == b"x-api-key":
                token = token or value.decode("latin-1").strip()
            elif name.startswith(b"x-panopticon-"):
                self._panopticon_header(
                    call, name[13:].decode("latin-1"), value.decode("utf-8", "replace")
                )
        if not token:
            raise GatewayError(
                "no gateway key: send it as 'Authorization: Bearer <key>' (the openai SDK's "
                "api_key) or 'x-api-key'; create one with `panopticon gateway keys create`",
                401,
                "authentication_error",
                code="missing_api_key",
            )
        entry = await self.keys.get(hashlib.sha256(token.encode()).hexdigest())
        if entry is None:
            raise GatewayError(
                "invalid or revoked gateway key",
                401,
                "authentication_error",
                code="invalid_api_key",
            )
        call.key = entry
        raw = await self._read(receive)
        if call.endpoint == "models":
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise GatewayError(f"the request body is not valid JSON: {exc}", 400) from None
        if not isinstance(body, dict):
            raise GatewayError("the request body must be a JSON object", 400)
        if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _deeper_than(body, MAX_DEPTH):
            raise GatewayError(
                f"the request body is nested more than {MAX_DEPTH} levels deep; flatten it", 400
            )
        call.body = body
        user = body.get("user")
        if isinstance(user, str) and user and call.user is None:
            call.user = user
        return body

    @staticmethod
    def _panopticon_header(call: Call, name: str, value: str) -> None:
        if name == "user":
            call.user = value
        elif name == "session":
            call.session = value
        elif name == "tags":
            call.tags = [t.strip() for t in value.split(",") if t.strip()]
        elif name == "metadata":
            try:
                data = orjson.loads(value)
            except orjson.JSONDecodeError:
                raise GatewayError(
                    "X-Panopticon-Metadata must be a JSON object",
                    400,
                    param="X-Panopticon-Metadata",
                ) from None
            if not isinstance(data, dict) or _deeper_than(data, MAX_DEPTH):
                raise GatewayError(
                    f"X-Panopticon-Metadata must be a JSON object nested at most {MAX_DEPTH} "
                    "levels deep",
                    400,
                    param="X-Panopticon-Metadata",
                )
            call.metadata.update(data)
        elif name.startswith("meta-"):
            call.metadata[name[5:]] = value

    async def _model(self, call: Call, body: dict[str, Any]) -> str:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise GatewayError(
                "'model' is required: the name of a registered model", 400, param="model"
            )
        call.model_requested = model
        return model

    async def _resolve(self, call: Call, name: str) -> Route:
        key = call.key
        assert key is not None
        allowed = key.info.config.models
        if allowed is not None and name not in allowed:
            raise GatewayError(
                f"gateway key '{key.info.name}' may not call model '{name}'; it may call: "
                + (", ".join(allowed) or "none"),
                403,
                "permission_error",
                param="model",
            )
        route = await self.routes.get(key.info.workspace_id, name)
        if route is None:
            known = ", ".join(n for n, _ in await self.routes.names(key.info.workspace_id))
            raise GatewayError(
                f"unknown model '{name}'; register it (POST /api/models) or use one of: "
                + (known or "none registered yet"),
                404,
                code="model_not_found",
                param="model",
            )
        return route

    async def _admit(self, call: Call, route: Route, raw_size: int) -> None:
        """Limits and budgets of the key and the model; raises a 429 naming the limit."""
        key = call.key
        assert key is not None
        call.estimate = max(1, raw_size // 4)
        if key.rpm is not None:
            await key.rpm.take(1)
        if key.tpm is not None:
            await key.tpm.take(call.estimate)
        for bucket, kind in self.routes.buckets(key.info.workspace_id, route):
            await bucket.take(1 if kind == "rpm" else call.estimate)
        cfg = key.info.config
        if cfg.budget_day_usd is not None or cfg.budget_month_usd is not None:
            await self.spend.check(
                key.scope,
                f"gateway key '{key.info.name}'",
                {"day": cfg.budget_day_usd, "month": cfg.budget_month_usd},
            )
        if route.budget_day_usd is not None or route.budget_month_usd is not None:
            await self.spend.check(
                f"model:{key.info.workspace_id}:{route.name}",
                f"model '{route.name}'",
                {"day": route.budget_day_usd, "month": route.budget_month_usd},
            )

    async def _guard_input(self, call: Call, messages: Any) -> None:
        key = call.key
        assert key is not None
        if not key.guardrails.on_input or not isinstance(messages, list):
            return
        started = time.perf_counter()
        try:
            for m in messages:
                if not isinstance(m, dict) or m.get("role") not in ("user", None):
                    continue
                content = m.get("content")
                if isinstance(content, str):
                    new, verdicts = await key.guardrails.run(
                        "input", content, judge=self.upstream.judges(call)
                    )
                    m["content"] = new
                    call.verdicts += verdicts
                elif isinstance(content, list):
                    for part in content:
                        if isinstance(part, dict) and isinstance(part.get("text"), str):
                            new, verdicts = await key.guardrails.run(
                                "input", part["text"], judge=self.upstream.judges(call)
                            )
                            part["text"] = new
                            call.verdicts += verdicts
        except GuardrailBlocked as exc:
            call.verdicts += exc.verdicts
            raise
        finally:
            call.guardrail_ms += (time.perf_counter() - started) * 1000.0

    async def _guard_output(self, call: Call, text: str, *, can_block: bool) -> str:
        key = call.key
        assert key is not None
        if not key.guardrails.on_output:
            return text
        started = time.perf_counter()
        try:
            new, verdicts = await key.guardrails.run(
                "output", text, can_block=can_block, judge=self.upstream.judges(call)
            )
            call.verdicts += verdicts
            return new
        except GuardrailBlocked as exc:
            call.verdicts += exc.verdicts
            raise
        finally:
            call.guardrail_ms += (time.perf_counter() - started) * 1000.0

    # -- upstream ----------------------------------------------------------------------------

    # -- building upstream requests ---------------------------------------------------------

    # -- the endpoints -----------------------------------------------------------------------
    async def chat_completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._serve(
            scope,
            receive,
            send,
            Call("chat.completions", "openai", time.perf_counter(), time.time()),
        )

    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._serve(
            scope, receive, send, Call("messages", "anthropic", time.perf_counter(), time.time())
        )

    async def responses(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._serve(
            scope, receive, send, Call("responses", "openai", time.perf_counter(), time.time())
        )

    async def embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._serve(
            scope, receive, send, Call("embeddings", "openai", time.perf_counter(), time.time())
        )

    async def models(self, scope: Scope, receive: Receive, send: Send) -> None:
        # the anthropic SDK sends anthropic-version: it gets Anthropic's list shape
        anthropic = any(name == b"anthropic-version" for name, _ in scope["headers"])
        call = Call("models", "anthropic" if anthropic else "openai", time.perf_counter(), 0.0)
        try:
            await self._begin(scope, receive, call)
            assert call.key is not None
            names = await self.routes.names(call.key.info.workspace_id)
            allowed = call.key.info.config.models
            listed = [(n, kind) for n, kind in names if allowed is None or n in allowed]
            if anthropic:
                page: dict[str, Any] = {
                    "data": [
                        {"type": "model", "id": n, "display_name": n, "created_at": _EPOCH}
                        for n, _ in listed
                    ],
                    "has_more": False,
                    "first_id": listed[0][0] if listed else None,
                    "last_id": listed[-1][0] if listed else None,
                }
            else:
                page = {
                    "object": "list",
                    "data": [
                        {"id": n, "object": "model", "created": 0, "owned_by": kind}
                        for n, kind in listed
                    ],
                }
            await self._send_json(send, 200, orjson.dumps(page))
        except GatewayError as exc:
            await self._send_json(
                send,
                exc.status,
                self._error_body(call, exc.status, exc.message, exc.kind, exc.code, exc.param),
            )

    async def seed_chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Seed 003's call: {prompt, user_id, model_version} -> {response, model_version,
        latency_ms}, served as a chat completion (and logged as one)."""
        call = Call("chat", "openai", time.perf_counter(), time.time())
        try:
            body = await self._begin(scope, receive, call)
            assert call.key is not None
            prompt = body.get("prompt")
            if not isinstance(prompt, str) or not prompt:
                raise GatewayError("'prompt' (a non-empty string) is required", 400, param="prompt")
            model = body.get("model_version") or call.key.info.config.default_model
            if not isinstance(model, str):
                raise GatewayError(
                    "'model_version' is required (or set the key's default_model)",
                    400,
                    param="model_version",
                )
            if body.get("user_id") is not None:
                call.user = str(body["user_id"])
            chat = {"model": model, "messages": [{"role": "user", "content": prompt}]}
            call.body = chat
            call.endpoint, call.label = "chat.completions", "chat"
            status, payload, headers = await self._complete(call, chat, len(prompt))
            if status == 200:
                data = orjson.loads(payload)
                payload = orjson.dumps(
                    {
                        "response": ((data.get("choices") or [{}])[0].get("message") or {}).get(
                            "content"
                        ),
                        "model_version": data.get("model") or model,
                        "latency_ms": round((time.perf_counter() - call.started) * 1000.0, 2),
                    }
                )
            await self._send_json(send, status, payload, headers)
        except GatewayError as exc:
            call.label = "chat"
            await self._refuse(call, send, exc)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, call: Call) -> None:
        try:
            body = await self._begin(scope, receive, call)
            call.stream = bool(body.get("stream")) and call.endpoint != "embeddings"
            if call.stream:
                await self._stream(call, body, receive, send)
                return
            status, payload, headers = await self._complete(call, body, 0)
            await self._send_json(send, status, payload, headers)
        except GatewayError as exc:
            await self._refuse(call, send, exc)

    def _error_body(
        self,
        call: Call,
        status: int,
        message: str,
        kind: str,
        code: str | None = None,
        param: str | None = None,
    ) -> bytes:
        if call.client == "anthropic":
            return anthropic_error(status, message)
        return openai_error(message, kind, code, param)

    async def _refuse(self, call: Call, send: Send, exc: GatewayError) -> None:
        headers = [(TRACE_HEADER, call.trace_id.encode())] if call.key is not None else []
        if exc.retry_after is not None:
            headers.append((b"retry-after", str(max(1, round(exc.retry_after))).encode()))
        await self._send_json(
            send,
            exc.status,
            self._error_body(call, exc.status, exc.message, exc.kind, exc.code, exc.param),
            headers,
        )
        if call.key is not None and exc.status != 401:
            self._log(call, exc.status, exc.message)

    async def _prepare(self, call: Call, body: dict[str, Any], raw_size: int) -> Route:
        model = await self._model(call, body)
        if call.endpoint in ("chat.completions", "messages") and not isinstance(
            body.get("messages"), list
        ):
            raise GatewayError("'messages' (a list) is required", 400, param="messages")
        if call.endpoint == "embeddings" and not isinstance(body.get("input"), (str, list)):
            raise GatewayError("'input' (a string or a list) is required", 400, param="input")
        if call.endpoint == "responses" and body.get("input") is None:
            raise GatewayError("'input' is required", 400, param="input")
        route = await self._resolve(call, model)
        # the span names the model routed to (and its provider) even when the call is
        # refused or fails before an answer: the views group a model's calls by it
        call.route = route
        await self._admit(call, route, raw_size or len(orjson.dumps(body)))
        if call.endpoint in ("chat.completions", "messages"):
            await self._guard_input(call, body.get("messages"))
        elif (
            call.endpoint == "responses"
            and isinstance(body.get("input"), str)
            and call.key
            and call.key.guardrails.on_input
        ):
            holder = [{"role": "user", "content": body["input"]}]
            await self._guard_input(call, holder)
            body["input"] = holder[0]["content"]
        call.input_messages = input_messages(call, body)
        return route

    # -- non-streamed calls ------------------------------------------------------------------
    async def _complete(
        self, call: Call, body: dict[str, Any], raw_size: int
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        route = await self._prepare(call, body, raw_size)
        key = call.key
        assert key is not None
        headers = [(TRACE_HEADER, call.trace_id.encode())]
        ttl = key.info.config.cache_ttl_s
        build = build_request(call, body)
        cache_key = None
        if ttl:
            _url, payload = build(route)
            cache_key = self.cache.key(key.info.id, call.endpoint, route.name, payload)
            hit = self.cache.get(cache_key)
            if hit is not None:
                call.cache_hit = True
                call.route = route
                call.model_served = hit.model_served
                if hit.output_text is not None:
                    call.output = [hit.output_text]
                headers.append((b"x-panopticon-cache", b"hit"))
                self._log(call, 200, None)
                return 200, hit.body, headers
            headers.append((b"x-panopticon-cache", b"miss"))
        try:
            served, resp = await self.upstream.with_fallbacks(call, route, build)
            try:
                raw, whole = await read_at_most(resp, MAX_ANSWER_BYTES)
            finally:
                resp.release()
            if not whole:
                raise UpstreamError(
                    f"model '{served.name}' upstream answered more than "
                    f"{MAX_ANSWER_BYTES // 2**20} MB",
                    502,
                    retryable=False,
                )
        except UpstreamError as exc:
            return self._upstream_failed(call, exc, headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._upstream_failed(
                call,
                UpstreamError(
                    f"model '{route.name}' upstream broke off: {exc.__class__.__name__}",
                    502,
                    retryable=False,
                ),
                headers,
            )
        try:
            payload = read_answer(call, served, raw)
        except (
            orjson.JSONDecodeError,
            KeyError,
            IndexError,
            TypeError,
            AttributeError,
            ValueError,
        ):
            return self._upstream_failed(
                call,
                UpstreamError(
                    f"model '{served.name}' upstream answered something that is not a valid "
                    "answer: "
                    f"{raw[:120]!r}",
                    502,
                    retryable=False,
                ),
                headers,
            )
        text = "".join(call.output)
        if key.guardrails.on_output and text:
            try:
                new = await self._guard_output(call, text, can_block=True)
            except GuardrailBlocked as exc:
                raise exc from None
            if new != text:
                payload = replace_text(call, payload, new)
                call.output = [new]
        if call.guardrail_ms:
            headers.append((b"x-panopticon-guardrail-ms", f"{call.guardrail_ms:.3f}".encode()))
        if cache_key is not None and ttl:
            self.cache.put(cache_key, payload, ttl, call.model_served, "".join(call.output))
        self._log(call, 200, None)
        return 200, payload, headers

    def _upstream_failed(
        self, call: Call, exc: UpstreamError, headers: list[tuple[bytes, bytes]]
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        status = exc.status
        same_dialect = call.route is None or (
            (call.client == "openai") == (call.route.kind == "openai")
        )
        if status in (401, 403):
            # the provider refused the gateway's own credential for the model, not the
            # caller's gateway key: passed on as a 401, SDKs told the caller their key was wrong
            status = 502
            served = call.route.name if call.route is not None else call.model_requested
            message = (
                f"model '{served}' upstream refused the gateway's credential ({exc.status}): "
                f"{exc.message}; the gateway key is valid, an admin must fix the model's "
                "credential or provider"
            )
            body = self._error_body(call, status, message, "api_error", "upstream_auth_error")
        elif not exc.retryable and exc.body and 400 <= status < 500 and same_dialect:
            body = exc.body  # the provider's own error, in the client's dialect
        else:
            if status >= 500 and exc.kind not in ("timeout",):
                status = 502
            if exc.kind == "timeout":
                status = 504
            kind = "rate_limit_error" if status == 429 else "api_error"
            body = self._error_body(call, status, exc.message, kind, exc.kind)
        if exc.retry_after is not None:
            headers.append((b"retry-after", str(max(1, round(exc.retry_after))).encode()))
        self._log(call, status, exc.message)
        return status, body, headers

    # -- streams -----------------------------------------------------------------------------
    async def _stream(self, call: Call, body: dict[str, Any], receive: Receive, send: Send) -> None:
        route = await self._prepare(call, body, 0)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        try:
            served, resp = await self.upstream.with_fallbacks(
                call, route, build_request(call, body)
            )
        except UpstreamError as exc:
            status, payload, headers = self._upstream_failed(
                call, exc, [(TRACE_HEADER, call.trace_id.encode())]
            )
            await self._send_json(send, status, payload, headers)
            return
        task = asyncio.current_task()
        assert task is not None
        gone = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    task.cancel()
                    return

        watcher = asyncio.create_task(watch())
        error: str | None = None
        status = 200
        headers = [*list(_SSE), (TRACE_HEADER, call.trace_id.encode())]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            try:
                await pump(call, served, resp, send, include_usage)
            finally:
                resp.close()
            if call.key is not None and call.key.guardrails.on_output:
                await self._guard_output(call, "".join(call.output), can_block=False)
        except asyncio.CancelledError:
            if not gone.is_set():
                raise
            error, status = "client disconnected mid-stream; the upstream call was cancelled", 499
        except (aiohttp.ClientError, TimeoutError, UpstreamError, ValueError) as exc:
            error = (
                exc.message
                if isinstance(exc, UpstreamError)
                else f"model '{served.name}' upstream broke off mid-stream: "
                f"{exc.__class__.__name__}: {exc}"
            )
            status = 502
            if not gone.is_set() and not getattr(exc, "forwarded", False):
                event = (
                    sse(
                        {"type": "error", "error": {"type": "api_error", "message": error}}, "error"
                    )
                    if call.client == "anthropic"
                    else sse(
                        {"error": {"message": error, "type": "api_error", "code": "upstream_error"}}
                    )
                )
                await send({"type": "http.response.body", "body": event, "more_body": True})
        finally:
            watcher.cancel()
            if gone.is_set():
                # the cancel was ours; let the task carry on to log
                task.uncancel()
            else:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            self._log(call, status, error)

    # -- the log -----------------------------------------------------------------------------
    def _log(self, call: Call, status: int, error: str | None) -> None:
        key = call.key
        if key is None:
            return
        route = call.route
        cost = None
        if call.cache_hit:
            cost = 0.0
        elif route is not None:
            cost = route.cost(call.input_tokens, call.output_tokens)
            if call.input_tokens is not None or call.output_tokens is not None:
                used = (call.input_tokens or 0) + (call.output_tokens or 0)
                if key.tpm is not None:
                    key.tpm.spend(used - call.estimate)
                for bucket, kind in self.routes.buckets(key.info.workspace_id, route):
                    if kind == "tpm":
                        bucket.spend(used - call.estimate)
            if cost:
                self.spend.add([key.scope, f"model:{key.info.workspace_id}:{route.name}"], cost)
        if not (self.options.logging and key.info.config.log):
            return
        end = time.perf_counter()
        record = CallRecord(
            trace_id=call.trace_id,
            span_id=new_span_id(),
            workspace_id=key.info.workspace_id,
            key_id=key.info.id,
            key_name=key.info.name,
            endpoint=call.label or call.endpoint,
            start_time=datetime.fromtimestamp(call.started_wall, UTC),
            end_time=datetime.fromtimestamp(call.started_wall + (end - call.started), UTC),
            status="ok" if error is None else "error",
            http_status=status,
            error=error,
            model_requested=call.model_requested,
            model_served=call.model_served or (route.provider_model if route else None),
            provider=route.kind if route else None,
            input_messages=call.input_messages,
            output_text="".join(call.output) if call.output else None,
            input_tokens=None if call.cache_hit else call.input_tokens,
            output_tokens=None if call.cache_hit else call.output_tokens,
            cost_usd=cost,
            ttft_ms=call.ttft_ms,
            stream=call.stream,
            cache_hit=call.cache_hit,
            attempts=call.attempts,
            user_id=call.user,
            session_id=call.session,
            tags=call.tags,
            metadata=call.metadata,
            guardrails=[v.score() for v in call.verdicts],
            guardrail_ms=call.guardrail_ms if call.verdicts else None,
        )
        self.sink.submit(record)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether the JSON ``value`` nests more than ``limit`` levels (an object or a list is
    one level); walked with a stack, so any depth is answered without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False
