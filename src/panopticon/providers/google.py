"""Google Gemini through the official ``google-genai`` SDK (imported lazily)."""

from __future__ import annotations

from typing import Any

from panopticon.errors import MissingDependencyError, ProviderError, ProviderTimeoutError
from panopticon.providers._messages import normalize_finish, split_system
from panopticon.providers.base import (
    RESERVED_PARAMS,
    ChatRequest,
    ChatResponse,
    Provider,
    ProviderConfig,
)
from panopticon.providers.egress import EgressRefused, guarded_httpx_client
from panopticon.providers.http import error_from_status, parse_retry_after

__all__ = ["KIND", "GoogleProvider", "create"]

KIND = "google"
_PARAM_NAMES = {"max_tokens": "max_output_tokens", "stop": "stop_sequences"}


class GoogleProvider(Provider):
    """Gemini models via ``client.aio.models.generate_content``."""

    kind = KIND
    key_env = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
    default_base_url = "https://generativelanguage.googleapis.com"
    requires = (("google.genai", "google-genai", "google"),)

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        try:
            from google import genai
            from google.genai import errors, types
        except ImportError:
            raise MissingDependencyError("google-genai", "google", "provider 'google'") from None
        self._types = types
        self._errors = errors
        # The URL is checked here, and every address the SDK connects to by the guarded
        # httpx client it is given (without one it would use aiohttp, following redirects).
        self._http = guarded_httpx_client(config.egress)
        http = types.HttpOptions(
            base_url=config.base_url,
            timeout=int(config.timeout_s * 1000),
            httpx_async_client=self._http,
        )
        self._client = genai.Client(api_key=config.api_key or "unset", http_options=http)
        self._url = config.base_url or self.default_base_url
        self._refused = config.egress.url_refusal(self._url)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        import httpx

        types = self._types
        system, messages = split_system(request.messages)
        contents = [
            types.Content(
                role="model" if m["role"] == "assistant" else "user",
                parts=[types.Part(text=m["content"])],
            )
            for m in messages
        ]
        params: dict[str, Any] = {
            _PARAM_NAMES.get(k, k): v for k, v in request.params.items() if k not in RESERVED_PARAMS
        }
        if request.json_mode:
            params["response_mime_type"] = "application/json"
        config = types.GenerateContentConfig(system_instruction=system, **params)
        if self._refused is not None:
            raise ProviderError(f"not sent to {self._url}: {self._refused}", kind="egress")
        try:
            resp = await self._client.aio.models.generate_content(
                model=request.model, contents=contents, config=config
            )
        except self._errors.APIError as exc:
            headers = getattr(getattr(exc, "response", None), "headers", None)
            raise error_from_status(
                int(exc.code), str(exc.message), parse_retry_after(headers), self._url
            ) from None
        except EgressRefused as exc:
            raise ProviderError(f"not sent to {self._url}: {exc}", kind="egress") from None
        except httpx.TimeoutException:
            raise ProviderTimeoutError(
                f"no answer from {self._url} within {self.config.timeout_s:g} s"
            ) from None
        except httpx.TransportError as exc:
            raise ProviderError(
                f"cannot connect to {self._url}: {exc}", retryable=True, kind="connection"
            ) from None
        candidate = resp.candidates[0] if resp.candidates else None
        finish = getattr(candidate, "finish_reason", None)
        usage = resp.usage_metadata
        return ChatResponse(
            text=resp.text or "",
            finish_reason=normalize_finish(
                str(finish.value if hasattr(finish, "value") else finish) if finish else None
            ),
            input_tokens=getattr(usage, "prompt_token_count", None),
            output_tokens=getattr(usage, "candidates_token_count", None),
            model=getattr(resp, "model_version", None) or request.model,
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def create(config: ProviderConfig) -> Provider:
    return GoogleProvider(config)
