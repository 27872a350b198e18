"""A deterministic offline provider: the mock model's behaviour with no network at all.

``provider: fake`` needs no server and no key; answers and judge scores are the same as the
mock server's for the same model and messages. Options: ``quality`` (model -> 0..1) and
``latency_ms``.
"""

from __future__ import annotations

import asyncio

from panopticon.providers.base import ChatRequest, ChatResponse, Provider, ProviderConfig

__all__ = ["KIND", "FakeProvider", "create"]

KIND = "fake"


class FakeProvider(Provider):
    kind = KIND
    needs_key = False  # no network at all

    def __init__(self, config: ProviderConfig) -> None:
        # imported here: every process registers this class, few create one
        from panopticon.mockllm.behaviour import MockConfig

        super().__init__(config)
        self._mock = MockConfig(
            quality=dict(config.options.get("quality") or {}),
            latency_ms=float(config.options.get("latency_ms") or 0.0),
        )

    async def complete(self, request: ChatRequest) -> ChatResponse:
        from panopticon.mockllm.behaviour import respond  # imported by __init__ already

        if self._mock.latency_ms:
            await asyncio.sleep(self._mock.latency_ms / 1000.0)
        max_tokens = request.params.get("max_tokens")
        answer = respond(
            self._mock,
            request.model,
            list(request.messages),
            request.json_mode,
            int(max_tokens) if max_tokens else None,
        )
        return ChatResponse(
            answer.text,
            answer.finish_reason,
            answer.input_tokens,
            answer.output_tokens,
            request.model,
        )


def create(config: ProviderConfig) -> Provider:
    return FakeProvider(config)
