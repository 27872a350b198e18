"""Anthropic's Messages API through the official ``anthropic`` SDK (imported lazily)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import orjson

from panopticon.errors import MissingDependencyError, ProviderError, ProviderTimeoutError
from panopticon.providers._messages import (
    anthropic_messages,
    anthropic_tool_choice,
    anthropic_tools,
    normalize_finish,
    split_system,
)
from panopticon.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Provider,
    ProviderConfig,
    ToolCall,
)
from panopticon.providers.egress import EgressRefused, guarded_httpx_client
from panopticon.providers.http import error_from_status, parse_retry_after

__all__ = ["KIND", "AnthropicProvider", "create"]

KIND = "anthropic"
_T = TypeVar("_T")
DEFAULT_MAX_TOKENS = 1024


class AnthropicProvider(Provider):
    """Claude models. ``max_tokens`` is required by the API; 1024 unless the suite sets it."""

    kind = KIND
    native_streaming = True
    supports_tools = True
    key_env = ("ANTHROPIC_API_KEY",)
    default_base_url = "https://api.anthropic.com"
    requires = (("anthropic", "anthropic", "anthropic"), ("httpx", "httpx", "anthropic"))

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        try:
            import anthropic
            import httpx  # noqa: F401 - the SDK's transport, guarded below
        except ImportError:
            raise MissingDependencyError("anthropic", "anthropic", "provider 'anthropic'") from None
        self._sdk = anthropic
        # The URL is checked here (scheme, metadata names, address literals), and every
        # address the SDK connects to by its guarded httpx client; redirects are off.
        self._refused = config.egress.url_refusal(config.base_url or self.default_base_url)
        # Retries are ours (shared back-off, Retry-After, adaptive concurrency): SDK's off.
        self._client = anthropic.AsyncAnthropic(
            api_key=config.api_key or "unset",
            base_url=config.base_url,
            max_retries=0,
            timeout=config.timeout_s,
            http_client=guarded_httpx_client(config.egress),
        )

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        system, rest = split_system(request.messages)
        params: dict[str, Any] = dict(request.params)
        params.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        if system is not None:
            if request.json_mode:
                system += "\n\nAnswer with one JSON object only."
            params["system"] = system
        tools = anthropic_tools(request.tools)
        if tools:
            params["tools"] = tools
            choice = anthropic_tool_choice(request.tool_choice)
            if choice is not None:
                params["tool_choice"] = choice
        params["model"] = request.model
        params["messages"] = anthropic_messages(rest)
        return params

    async def _guard(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """The SDK's exceptions as ProviderErrors."""
        sdk = self._sdk
        url = str(self._client.base_url)
        if self._refused is not None:
            raise ProviderError(f"not sent to {url}: {self._refused}", kind="egress")
        try:
            return await call()
        except sdk.APITimeoutError:
            raise ProviderTimeoutError(
                f"no answer from {url} within {self.config.timeout_s:g} s"
            ) from None
        except sdk.APIConnectionError as exc:
            if isinstance(exc.__cause__, EgressRefused):
                raise ProviderError(f"not sent to {url}: {exc.__cause__}", kind="egress") from None
            raise ProviderError(
                f"cannot connect to {url}: {exc}", retryable=True, kind="connection"
            ) from None
        except sdk.APIStatusError as exc:
            raise error_from_status(
                exc.status_code, str(exc.message), parse_retry_after(exc.response.headers), url
            ) from None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        arguments = self._arguments(request)
        msg = await self._guard(lambda: self._client.messages.create(**cast(Any, arguments)))
        text = "".join(getattr(b, "text", "") for b in msg.content if b.type == "text")
        calls = tuple(
            ToolCall(b.id, b.name, orjson.dumps(b.input).decode())
            for b in msg.content
            if b.type == "tool_use"
        )
        return ChatResponse(
            text=text,
            finish_reason=normalize_finish(msg.stop_reason),
            input_tokens=msg.usage.input_tokens,
            output_tokens=msg.usage.output_tokens,
            model=msg.model,
            tool_calls=calls,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """The Messages API's event stream as ChatChunks: text deltas, tool calls in pieces,
        then the stop reason with the token counts."""
        arguments = dict(self._arguments(request), stream=True)
        events = await self._guard(lambda: self._client.messages.create(**cast(Any, arguments)))
        input_tokens: int | None = None
        model: str | None = None
        tools: dict[int, int] = {}  # content block index -> tool index
        iterator = aiter(events)
        while True:
            try:
                event = await self._guard(lambda: anext(iterator))
            except StopAsyncIteration:
                return
            kind = event.type
            if kind == "message_start":
                input_tokens = event.message.usage.input_tokens
                model = event.message.model
            elif kind == "content_block_start" and event.content_block.type == "tool_use":
                tools[event.index] = len(tools)
                block = event.content_block
                yield ChatChunk(
                    tool_index=tools[event.index], tool_id=block.id, tool_name=block.name
                )
            elif kind == "content_block_delta":
                delta = event.delta
                if delta.type == "text_delta":
                    yield ChatChunk(text=delta.text)
                elif delta.type == "input_json_delta" and event.index in tools:
                    yield ChatChunk(
                        tool_index=tools[event.index], tool_arguments=delta.partial_json
                    )
            elif kind == "message_delta":
                yield ChatChunk(
                    finish_reason=normalize_finish(event.delta.stop_reason),
                    input_tokens=input_tokens,
                    output_tokens=event.usage.output_tokens,
                    model=model,
                )

    async def aclose(self) -> None:
        await self._client.close()


def create(config: ProviderConfig) -> Provider:
    return AnthropicProvider(config)
