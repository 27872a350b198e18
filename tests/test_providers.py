"""Providers over real HTTP against the mock, and the policies every call goes through."""

from __future__ import annotations

import asyncio
import random

import pytest

from panopticon.errors import ConfigError, MissingDependencyError, ProviderError
from panopticon.mockllm.server import MockServer
from panopticon.providers.base import (
    ChatRequest,
    ChatResponse,
    Provider,
    ProviderConfig,
    create_provider,
    register_provider,
)
from panopticon.providers.client import ModelClient, RetryPolicy
from panopticon.providers.limits import AdaptiveLimiter, TokenBucket
from panopticon.providers.pricing import Price, lookup_price

HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"}]


def complete(kind: str, base_url: str, model: str, **options: object) -> ChatResponse:
    async def go() -> ChatResponse:
        provider = create_provider(
            ProviderConfig(kind, base_url=base_url, api_key="k", timeout_s=5, options=dict(options))
        )
        try:
            return await provider.complete(ChatRequest(model, HELLO, {"max_tokens": 50}))
        finally:
            await provider.aclose()

    return asyncio.run(go())


def test_openai_compatible_answers_with_text_tokens_and_finish_reason(mock: MockServer) -> None:
    r = complete("openai", mock.url, "mock-a")
    assert r.text.startswith("[mock-a] Hello?")
    assert r.input_tokens and r.output_tokens and r.finish_reason in ("stop", "length")
    assert mock.stats.by_route["chat"] == 1


def test_anthropic_goes_through_the_official_sdk(mock: MockServer) -> None:
    r = complete("anthropic", mock.root, "claude-test")
    assert r.text.startswith("[claude-test]") and r.input_tokens and r.output_tokens == 50
    assert r.finish_reason == "length"
    assert mock.stats.by_route["messages"] == 1


def test_google_goes_through_the_official_sdk(mock: MockServer) -> None:
    r = complete("google", mock.root, "gemini-test")
    assert r.text.startswith("[gemini-test]") and r.output_tokens == 50
    assert r.finish_reason == "length"  # cut at max_tokens; reported in OpenAI's words
    assert mock.stats.by_route["generateContent"] == 1


def test_errors_are_classified_with_retry_after(mock: MockServer) -> None:
    mock.config.update({"rate_429": 1.0, "retry_after_s": 2.5})
    with pytest.raises(ProviderError) as info:
        complete("openai", mock.url, "m")
    assert info.value.kind == "rate_limit" and info.value.retryable
    assert info.value.retry_after == 2.5
    mock.config.update({"rate_429": 0.0, "rate_500": 1.0})
    with pytest.raises(ProviderError) as info:
        complete("anthropic", mock.root, "m")
    assert info.value.kind == "server" and info.value.retryable


def test_a_wrong_key_is_an_auth_error_that_is_not_retried() -> None:
    with MockServer(api_key="right") as server, pytest.raises(ProviderError) as info:
        complete("openai", server.url, "m")
    assert info.value.kind == "auth" and not info.value.retryable
    assert "api_key_env" in info.value.message


def test_a_hung_call_times_out(mock: MockServer) -> None:
    mock.config.update({"rate_timeout": 1.0, "timeout_hang_s": 3.0})

    async def go() -> None:
        provider = create_provider(ProviderConfig("openai", base_url=mock.url, timeout_s=0.3))
        try:
            await provider.complete(ChatRequest("m", HELLO))
        finally:
            await provider.aclose()

    with pytest.raises(ProviderError) as info:
        asyncio.run(go())
    assert info.value.kind == "timeout" and info.value.retryable


def test_an_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        create_provider(ProviderConfig("nope"))
    assert "openai" in str(info.value) and "anthropic" in str(info.value)


def test_a_missing_sdk_says_what_to_install() -> None:
    err = MissingDependencyError("anthropic", "anthropic", "provider 'anthropic'")
    assert "pip install -e '.[anthropic]' in Panopticon's source folder" in str(err)


class Scripted(Provider):
    """A provider registered like any plugin, failing as scripted, then answering."""

    kind = "scripted"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.script: list[ProviderError] = list(config.options["errors"])
        self.calls = 0

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        return ChatResponse("ok", "stop", 3, 4)


def scripted_client(
    errors: list[ProviderError], max_retries: int = 5
) -> tuple[ModelClient, list[float]]:
    register_provider("scripted", Scripted)
    provider = create_provider(ProviderConfig("scripted", options={"errors": errors}))
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    client = ModelClient(
        provider,
        concurrency=4,
        retry=RetryPolicy(max_retries=max_retries),
        sleep=fake_sleep,
        rng=random.Random(1),
    )
    return client, sleeps


def test_retries_honour_retry_after_and_back_off_exponentially() -> None:
    client, sleeps = scripted_client(
        [
            ProviderError("429", retryable=True, kind="rate_limit", retry_after=7.0),
            ProviderError("500", retryable=True, kind="server"),
            ProviderError("500", retryable=True, kind="server"),
        ]
    )
    outcome = asyncio.run(client.call(ChatRequest("m", HELLO)))
    assert outcome.response is not None and outcome.attempts == 4
    assert 7.0 <= sleeps[0] <= 7.7  # Retry-After, plus at most 10% jitter
    assert 0.5 <= sleeps[1] <= 1.0 and 1.0 <= sleeps[2] <= 2.0  # jittered 2^n back-off


def test_a_non_retryable_error_is_not_retried_and_retries_are_bounded() -> None:
    client, sleeps = scripted_client([ProviderError("400", kind="bad_request")])
    outcome = asyncio.run(client.call(ChatRequest("m", HELLO)))
    assert outcome.error is not None and outcome.attempts == 1 and sleeps == []
    client, sleeps = scripted_client(
        [ProviderError("500", retryable=True, kind="server")] * 9, max_retries=2
    )
    outcome = asyncio.run(client.call(ChatRequest("m", HELLO)))
    assert outcome.error is not None and outcome.attempts == 3
    assert "(after 3 attempts)" in outcome.error.message


def test_a_429_halves_concurrency_once_per_generation_and_successes_grow_it_back() -> None:
    async def go() -> None:
        limiter = AdaptiveLimiter(16)
        gens = [await limiter.acquire() for _ in range(8)]
        for g in gens:  # eight 429s from calls started under the same limit
            limiter.release()
            limiter.on_rate_limited(g)
        assert limiter.limit == 8
        g = await limiter.acquire()
        limiter.release()
        limiter.on_rate_limited(g)
        assert limiter.limit == 4
        for _ in range(40):
            limiter.on_success()
        assert limiter.limit == 16

    asyncio.run(go())


def test_the_limiter_never_lets_more_calls_in_flight_than_its_limit() -> None:
    async def go() -> int:
        limiter = AdaptiveLimiter(3)
        peak = 0

        async def work() -> None:
            nonlocal peak
            await limiter.acquire()
            peak = max(peak, limiter.in_use)
            await asyncio.sleep(0.001)
            limiter.release()

        await asyncio.gather(*(work() for _ in range(50)))
        return peak

    assert asyncio.run(go()) == 3


def test_the_token_bucket_paces_requests_per_minute() -> None:
    now = [0.0]

    async def fake_sleep(seconds: float) -> None:
        now[0] += seconds

    async def go() -> None:
        bucket = TokenBucket(60, clock=lambda: now[0], sleep=fake_sleep)  # one per second
        for _ in range(60):
            await bucket.take(1)
        assert now[0] == 0.0  # a full bucket allows a burst
        for _ in range(5):
            await bucket.take(1)
        assert now[0] == pytest.approx(5.0)

    asyncio.run(go())


def test_concurrency_against_the_server_respects_the_model_limit(mock: MockServer) -> None:
    mock.config.latency_ms = 30

    async def go() -> None:
        provider = create_provider(ProviderConfig("openai", base_url=mock.url))
        client = ModelClient(provider, concurrency=5)
        await asyncio.gather(*(client.call(ChatRequest(f"m{i}", HELLO)) for i in range(40)))
        await client.aclose()

    asyncio.run(go())
    assert mock.stats.max_in_flight == 5 and mock.stats.answered == 40


def test_prices_come_from_the_table_by_name_or_prefix_and_unknown_is_none() -> None:
    assert lookup_price("openai", "gpt-4o-mini") == lookup_price("openai", "gpt-4o-mini-2024-07-18")
    assert lookup_price("openai", "gpt-4o-2024-08-06") == lookup_price("openai", "gpt-4o")
    mini = lookup_price("openai", "gpt-4o-mini")
    assert mini is not None and mini.input < lookup_price("openai", "gpt-4o").input  # type: ignore[union-attr]
    assert lookup_price("openai", "anthropic/claude-sonnet-4") is not None  # OpenRouter style
    assert lookup_price("openai", "my-finetune") is None
    assert mini.cost(1_000_000, 0) == mini.input and mini.cost(None, 5) is None
    # a cost reads as the decimal it is in exports, not as the float arithmetic's noise
    # (21 x 0.15 + 31 x 0.6 per million tokens was 2.1749999999999997e-05)
    assert repr(Price(0.15, 0.6).cost(21, 31)) == "2.175e-05"
