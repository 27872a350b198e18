"""The gateway's side towards providers: one pooled aiohttp session, the request for each
provider kind (:func:`build_request`), one attempt (:meth:`Upstream.send`), retries and
ordered fallbacks (:meth:`Upstream.with_fallbacks`), and judge calls for guardrails.
Errors of an attempt are classified (:class:`UpstreamError`) so the gateway knows whether to
retry, fall back to the next model, or pass the provider's answer on."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from yarl import URL

from panopticon.errors import GatewayError
from panopticon.gateway.call import Call, read_answer
from panopticon.gateway.guardrails import JudgeFactory
from panopticon.gateway.responses import responses_request_to_chat
from panopticon.gateway.routing import Route, RouteTable
from panopticon.gateway.translate import anthropic_request_to_openai, openai_request_to_anthropic
from panopticon.judges.base import JudgeCall, JudgeReply
from panopticon.providers.egress import EgressPolicy, guarded_resolver
from panopticon.providers.http import MAX_ANSWER_BYTES, MAX_ERROR_BYTES, read_at_most
from panopticon.providers.redact import mask_secrets

__all__ = ["RETRYABLE", "Upstream", "UpstreamError", "build_request", "retry_after"]

RETRYABLE = {408, 409, 429, 500, 502, 503, 504, 529}


class UpstreamError(Exception):
    """An upstream attempt failed; ``retryable`` ones go to a retry or the next model."""

    def __init__(
        self,
        message: str,
        status: int,
        *,
        retryable: bool,
        retry_after: float | None = None,
        body: bytes | None = None,
        kind: str = "api_error",
        forwarded: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.body = body
        self.kind = kind
        self.forwarded = forwarded  # the client already has the provider's error


def retry_after(headers: Any) -> float | None:
    from panopticon.providers.http import parse_retry_after

    try:
        return parse_retry_after(headers)
    except (ValueError, TypeError, OverflowError):
        return None


class Upstream:
    """The pooled session to providers, opened and closed with the gateway."""

    def __init__(self, routes: RouteTable, allow_private_urls: bool = True) -> None:
        self.routes = routes
        self.egress = EgressPolicy(allow_private=allow_private_urls)
        self.session: aiohttp.ClientSession | None = None
        self._rng = random.Random()
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    async def open(self) -> None:
        # every address connected to is checked (link-local and metadata never; private
        # ranges as the operator says); no proxies from the environment, no redirects
        connector = aiohttp.TCPConnector(
            limit=0,
            ttl_dns_cache=300,
            keepalive_timeout=30,
            resolver=guarded_resolver(self.egress),
        )
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",)
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def send(
        self, route: Route, url: str, payload: bytes, call: Call
    ) -> aiohttp.ClientResponse:
        """One attempt: the response with a 2xx status, headers read (body not yet)."""
        assert self.session is not None
        call.attempts += 1
        try:
            target = self._urls.get(url)
            if target is None:  # parsed once: yarl's parse is a dozen regex searches
                if len(self._urls) > 10_000:
                    self._urls.clear()
                target = self._urls[url] = URL(url)
            timeout = self._timeouts.get(route.timeout_s)
            if timeout is None:
                timeout = self._timeouts[route.timeout_s] = aiohttp.ClientTimeout(
                    total=None, sock_connect=10, sock_read=route.timeout_s
                )
            resp = await self.session.post(
                target,
                data=payload,
                headers=route.headers,
                timeout=timeout,
                allow_redirects=False,
            )
        except TimeoutError:
            raise UpstreamError(
                f"model '{route.name}' did not answer within {route.timeout_s:g} s",
                504,
                retryable=True,
                kind="timeout",
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"cannot reach model '{route.name}' upstream: {_unreachable(exc)}; an admin "
                f"can check its base_url (GET /api/models/{route.name}) and that its server "
                "is running",
                502,
                retryable=True,
                kind="connection",
            ) from None
        if resp.status >= 400:
            try:
                body, _ = await read_at_most(resp, MAX_ERROR_BYTES)
            except (aiohttp.ClientError, TimeoutError):
                body = b""
            finally:
                resp.release()
            # a provider may repeat the key it was sent: masked before anyone sees the body
            text = mask_secrets(body.decode("utf-8", "replace"), route.secrets(), limit=None)
            body = text.encode()
            snippet = text[:300]
            raise UpstreamError(
                f"model '{route.name}' upstream answered {resp.status}: {snippet}",
                resp.status,
                retryable=resp.status in RETRYABLE,
                retry_after=retry_after(resp.headers),
                body=body,
                kind="rate_limit" if resp.status == 429 else "upstream",
            )
        return resp

    async def with_fallbacks(
        self,
        call: Call,
        first: Route,
        build: Callable[[Route], tuple[str, bytes]],
    ) -> tuple[Route, aiohttp.ClientResponse]:
        """Try the model, its retries, then each fallback in order; the first 2xx wins."""
        key = call.key
        assert key is not None
        cfg = key.info.config
        names = [first.name, *cfg.fallbacks.get(first.name, [])]
        tried: list[str] = []
        unknown: list[str] = []  # fallbacks no model is registered as: never called
        last: UpstreamError | None = None
        for i, name in enumerate(names):
            route = first if i == 0 else await self.routes.get(key.info.workspace_id, name)
            if route is None:
                unknown.append(name)
                continue
            tried.append(name)
            url, payload = build(route)
            call.route = route  # the model tried: a failure is logged (and worded) as its
            for attempt in range(cfg.retries + 1):
                try:
                    resp = await self.send(route, url, payload, call)
                    return route, resp
                except UpstreamError as exc:
                    last = exc
                    if not exc.retryable:
                        raise
                    wait = exc.retry_after
                    if wait is not None and wait > cfg.max_retry_after_s:
                        break  # too long: go to the next model now
                    if attempt < cfg.retries:
                        await asyncio.sleep(
                            wait
                            if wait is not None
                            else 0.05 * 2**attempt * (1 + self._rng.random())
                        )
        assert last is not None
        if len(names) > 1:
            note = f"after trying {', '.join(tried)}"
            if unknown:
                note += f"; fallback {', '.join(unknown)} is not a registered model"
            last.message = f"{last.message} ({note})"
        raise last

    def judges(self, call: Call) -> JudgeFactory:
        """Judge calls for the guardrails of ``call``'s key: a registered model of the same
        workspace, called upstream directly (not logged as a call; its cost is the span's
        guardrail score's)."""
        key = call.key
        assert key is not None

        def factory(default: str) -> JudgeCall:
            async def judge(
                messages: list[dict[str, str]], json_mode: bool, model: str | None = None
            ) -> JudgeReply:
                name = model or default
                route = await self.routes.get(key.info.workspace_id, name)
                if route is None:
                    return JudgeReply(None, name, error=f"no registered judge model '{name}'")
                body: dict[str, Any] = {"model": name, "messages": messages}
                if json_mode:
                    body["response_format"] = {"type": "json_object"}
                probe = Call("chat.completions", "openai", time.perf_counter(), time.time())
                url, payload = build_request(probe, body)(route)
                try:
                    resp = await self.send(route, url, payload, probe)
                    try:
                        raw, whole = await read_at_most(resp, MAX_ANSWER_BYTES)
                    finally:
                        resp.release()
                    if not whole:
                        raise ValueError(f"an answer over {MAX_ANSWER_BYTES // 2**20} MB")
                    read_answer(probe, route, raw)
                except (UpstreamError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    return JudgeReply(None, name, error=str(exc)[:300])
                return JudgeReply(
                    "".join(probe.output),
                    name,
                    probe.input_tokens,
                    probe.output_tokens,
                    route.cost(probe.input_tokens, probe.output_tokens),
                )

            return judge

        return factory


def build_request(call: Call, body: dict[str, Any]) -> Callable[[Route], tuple[str, bytes]]:
    """The URL and payload for ``route``, for the API the client spoke."""
    endpoint = call.endpoint

    def build(route: Route) -> tuple[str, bytes]:
        if endpoint == "chat.completions":
            if route.kind == "anthropic":
                return route.url("messages"), orjson.dumps(
                    openai_request_to_anthropic(body, route.provider_model)
                )
            if route.kind != "openai":
                raise _unsupported(route, "/v1/chat/completions")
            out = body
            if body.get("model") != route.provider_model or (
                call.stream and not (body.get("stream_options") or {}).get("include_usage")
            ):
                out = dict(body, model=route.provider_model)
                if call.stream:
                    out["stream_options"] = {
                        **(body.get("stream_options") or {}),
                        "include_usage": True,
                    }
            return route.url("chat/completions"), orjson.dumps(out)
        if endpoint == "messages":
            if route.kind == "openai":
                return route.url("chat/completions"), orjson.dumps(
                    anthropic_request_to_openai(body, route.provider_model)
                )
            if route.kind != "anthropic":
                raise _unsupported(route, "/v1/messages")
            return route.url("messages"), orjson.dumps(dict(body, model=route.provider_model))
        if endpoint == "responses" and route.kind == "anthropic":
            chat = responses_request_to_chat(body)
            if call.stream:
                chat["stream"] = True
            return route.url("messages"), orjson.dumps(
                openai_request_to_anthropic(chat, route.provider_model)
            )
        if route.kind != "openai":
            raise _unsupported(route, "/v1/" + endpoint)
        return route.url(endpoint), orjson.dumps(dict(body, model=route.provider_model))

    return build


def _unsupported(route: Route, path: str) -> GatewayError:
    return GatewayError(
        f"model '{route.name}' is served by a '{route.kind}' provider, which the gateway "
        f"cannot reach through {path} yet: the gateway serves openai-compatible models on "
        "every route and anthropic models on every route but /v1/embeddings",
        400,
        param="model",
    )


def _unreachable(exc: aiohttp.ClientError) -> str:
    """Why a connection failed, in words (the message said only 'ClientConnectorError'),
    without the provider's address: the caller is an app, not the admin who set it."""
    import errno

    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "its host name does not resolve"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "the TLS handshake failed (certificate or protocol)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        code = exc.os_error.errno
        if code == errno.ECONNREFUSED:
            return "the connection was refused (nothing listens at its address)"
        if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "its address is unreachable from the gateway"
        return f"cannot connect ({exc.os_error.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection before answering"
    return exc.__class__.__name__
