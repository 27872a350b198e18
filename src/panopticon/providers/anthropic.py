"""Anthropic's Messages API through the official ``anthropic`` SDK (imported lazily)."""

from __future__ import annotations

from typing import Any, cast

from panopticon.errors import MissingDependencyError, ProviderError, ProviderTimeoutError
from panopticon.providers._messages import normalize_finish, split_system
from panopticon.providers.base import ChatRequest, ChatResponse, Provider, ProviderConfig
from panopticon.providers.http import error_from_status, parse_retry_after

__all__ = ["KIND", "AnthropicProvider", "create"]

KIND = "anthropic"
DEFAULT_MAX_TOKENS = 1024


class AnthropicProvider(Provider):
    """Claude models. ``max_tokens`` is required by the API; 1024 unless the suite sets it."""

    kind = KIND

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        try:
            import anthropic
        except ImportError:
            raise MissingDependencyError("anthropic", "anthropic", "provider 'anthropic'") from None
        self._sdk = anthropic
        # Retries are ours (shared back-off, Retry-After, adaptive concurrency): SDK's off.
        self._client = anthropic.AsyncAnthropic(
            api_key=config.api_key or "unset",
            base_url=config.base_url,
            max_retries=0,
            timeout=config.timeout_s,
        )

    async def complete(self, request: ChatRequest) -> ChatResponse:
        sdk = self._sdk
        system, messages = split_system(request.messages)
        params: dict[str, Any] = dict(request.params)
        params.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        if system is not None:
            if request.json_mode:
                system += "\n\nAnswer with one JSON object only."
            params["system"] = system
        url = str(self._client.base_url)
        try:
            msg = await self._client.messages.create(
                model=request.model, messages=cast(Any, messages), **params
            )
        except sdk.APITimeoutError:
            raise ProviderTimeoutError(
                f"no answer from {url} within {self.config.timeout_s:g} s"
            ) from None
        except sdk.APIConnectionError as exc:
            raise ProviderError(
                f"cannot connect to {url}: {exc}", retryable=True, kind="connection"
            ) from None
        except sdk.APIStatusError as exc:
            raise error_from_status(
                exc.status_code, str(exc.message), parse_retry_after(exc.response.headers), url
            ) from None
        text = "".join(getattr(b, "text", "") for b in msg.content if b.type == "text")
        return ChatResponse(
            text=text,
            finish_reason=normalize_finish(msg.stop_reason),
            input_tokens=msg.usage.input_tokens,
            output_tokens=msg.usage.output_tokens,
            model=msg.model,
        )

    async def aclose(self) -> None:
        await self._client.close()


def create(config: ProviderConfig) -> Provider:
    return AnthropicProvider(config)
