"""Every OpenAI-compatible chat endpoint: OpenAI, Azure OpenAI, vLLM, Ollama, llama.cpp,
OpenRouter, Together, Groq, and Panopticon's own mock server.

This adapter speaks the wire protocol over one pooled aiohttp session instead of going
through the ``openai`` SDK: the SDK costs about 3.6 ms of CPU per call (pydantic models,
httpx), which alone would use a whole core at the throughput ``bench/`` asks for. The
request and response shapes are the documented Chat Completions API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from panopticon.errors import ProviderError, ProviderTimeoutError
from panopticon.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Provider,
    ProviderConfig,
    ToolCall,
)
from panopticon.providers.egress import EgressRefused, guarded_resolver
from panopticon.providers.http import (
    MAX_ANSWER_BYTES,
    MAX_ERROR_BYTES,
    error_from_status,
    parse_retry_after,
    read_at_most,
    redirect_error,
)
from panopticon.providers.redact import mask_secrets

__all__ = ["KIND", "OpenAIProvider", "create"]

KIND = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider(Provider):
    """Chat Completions over HTTP; ``options.azure``/``api_version`` switch to Azure paths."""

    kind = KIND
    native_streaming = True
    supports_tools = True
    key_env = ("OPENAI_API_KEY",)
    default_base_url = DEFAULT_BASE_URL

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        base = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._refused = config.egress.url_refusal(base)
        api_version = config.options.get("api_version")
        if config.options.get("azure") or api_version:
            # Azure OpenAI: deployments/{model}/chat/completions?api-version=..., api-key header
            self._azure = True
            self._url_tmpl = base + "/openai/deployments/{model}/chat/completions"
            self._query = {"api-version": str(api_version or "2024-10-21")}
        else:
            self._azure = False
            self._url_tmpl = base + "/chat/completions"
            self._query = {}
        self._headers = {"Content-Type": "application/json"}
        if config.api_key:
            if self._azure:
                self._headers["api-key"] = config.api_key
            else:
                self._headers["Authorization"] = f"Bearer {config.api_key}"
        for name, value in (config.options.get("headers") or {}).items():
            self._headers[str(name)] = str(value)
        self._session: Any = None
        self._timeout_s = config.timeout_s
        self._timeout: Any = None

    def _client(self) -> Any:
        if self._session is None:
            import aiohttp

            self._timeout = aiohttp.ClientTimeout(total=self._timeout_s)
            # the resolver checks every address connected to (egress.py); no proxies from
            # the environment (trust_env is off), no redirects (allow_redirects below)
            connector = aiohttp.TCPConnector(
                limit=0, ttl_dns_cache=300, resolver=guarded_resolver(self.config.egress)
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                headers=self._headers,
            )
        return self._session

    def _body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        # params first: they pass through whatever they hold, but never replace the model,
        # the messages or the stream flag this call is about.
        body: dict[str, Any] = dict(request.params)
        body["model"] = request.model
        body["messages"] = request.messages
        if request.json_mode:
            body["response_format"] = {"type": "json_object"}
        if request.tools:
            body["tools"] = request.tools
            if request.tool_choice is not None:
                body["tool_choice"] = request.tool_choice
        if stream:
            body["stream"] = True
            # usage arrives in a last chunk; servers that do not know the option ignore it
            body["stream_options"] = {"include_usage": True}
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return body

    @asynccontextmanager
    async def _post(self, request: ChatRequest, *, stream: bool) -> AsyncIterator[Any]:
        """The HTTP exchange, with every transport failure turned into a ProviderError."""
        import aiohttp

        url = self._url_tmpl.format(model=request.model)
        if self._refused is not None:
            raise ProviderError(f"not sent to {url}: {self._refused}", kind="egress")
        session = self._client()
        try:
            async with session.post(
                url,
                data=orjson.dumps(self._body(request, stream=stream)),
                params=self._query or None,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                if 300 <= resp.status < 400:
                    raise redirect_error(resp.status, resp.headers.get("Location"), url)
                if resp.status >= 400:
                    raw, _ = await read_at_most(resp, MAX_ERROR_BYTES)
                    raise error_from_status(
                        resp.status,
                        raw.decode("utf-8", "replace"),
                        parse_retry_after(resp.headers),
                        url,
                    )
                yield resp
        except ProviderError:
            raise
        except TimeoutError:
            raise ProviderTimeoutError(
                f"no answer from {url} within {self._timeout_s:g} s"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, EgressRefused):
                raise ProviderError(f"not sent to {url}: {exc.os_error}", kind="egress") from None
            raise ProviderError(
                f"cannot connect to {url}: {exc.os_error or exc}; check base_url and that "
                "the server is running",
                retryable=True,
                kind="connection",
            ) from None
        except aiohttp.ClientError as exc:
            raise ProviderError(
                f"connection to {url} failed: {exc.__class__.__name__}: {exc}",
                retryable=True,
                kind="connection",
            ) from None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        async with self._post(request, stream=False) as resp:
            raw, whole = await read_at_most(resp, MAX_ANSWER_BYTES)
            url = str(resp.url)
        if not whole:
            raise ProviderError(
                f"the answer from {url} is longer than {MAX_ANSWER_BYTES // 2**20} MB; "
                "check base_url",
                kind="server",
            )
        return parse_chat_completion(raw, url)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Server-sent events, one ChatChunk per ``data:`` line, as they arrive."""
        async with self._post(request, stream=True) as resp:
            url = str(resp.url)
            async for line in resp.content:
                if not line.startswith(b"data:"):
                    continue  # blank separators, comments (": keep-alive"), event names
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    return
                for chunk in parse_stream_chunk(payload, url):
                    yield chunk

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def parse_chat_completion(raw: bytes, url: str) -> ChatResponse:
    try:
        data = orjson.loads(raw)
        choice = data["choices"][0]
        message = choice.get("message") or {}
        text = message.get("content")
        if text is None:
            # refusals and tool-only answers have no content; keep what there is
            text = message.get("refusal") or ""
        usage = data.get("usage") or {}
        calls = tuple(
            ToolCall(
                str(c.get("id") or ""),
                str((c.get("function") or {}).get("name") or ""),
                str((c.get("function") or {}).get("arguments") or ""),
            )
            for c in message.get("tool_calls") or ()
        )
        return ChatResponse(
            text=text,
            finish_reason=choice.get("finish_reason"),
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            model=data.get("model"),
            tool_calls=calls,
        )
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
        raise ProviderError(
            f"unreadable answer from {url}: {mask_secrets(repr(raw[:200]))}",
            retryable=True,
            kind="server",
        ) from None


def parse_stream_chunk(payload: bytes, url: str) -> list[ChatChunk]:
    """The ChatChunks of one ``chat.completion.chunk`` event (usage-only events included)."""
    try:
        data = orjson.loads(payload)
        usage = data.get("usage") or {}
        model = data.get("model")
        out: list[ChatChunk] = []
        for choice in data.get("choices") or ():
            delta = choice.get("delta") or {}
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") or {}
                out.append(
                    ChatChunk(
                        tool_index=int(call.get("index") or 0),
                        tool_id=call.get("id"),
                        tool_name=fn.get("name"),
                        tool_arguments=fn.get("arguments") or "",
                        model=model,
                    )
                )
            text = delta.get("content") or delta.get("refusal") or ""
            if text or choice.get("finish_reason") or not out:
                out.append(
                    ChatChunk(text=text, finish_reason=choice.get("finish_reason"), model=model)
                )
        if usage:
            out.append(
                ChatChunk(
                    input_tokens=usage.get("prompt_tokens"),
                    output_tokens=usage.get("completion_tokens"),
                    model=model,
                )
            )
        return out
    except (orjson.JSONDecodeError, TypeError, AttributeError, ValueError):
        raise ProviderError(
            f"unreadable stream event from {url}: {mask_secrets(repr(payload[:200]))}",
            retryable=False,
            kind="server",
        ) from None


def create(config: ProviderConfig) -> Provider:
    return OpenAIProvider(config)
