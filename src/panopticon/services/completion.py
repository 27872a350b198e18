"""One completion from a registered model (``POST /api/completion``), through the same
client policies as a run: retries honouring Retry-After, time-outs, tokens and cost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from panopticon.evaluation.spec import DEFAULT_KEY_ENV
from panopticon.providers.base import ChatRequest, ProviderConfig, create_provider
from panopticon.providers.client import ModelClient, RetryPolicy
from panopticon.providers.pricing import Price, lookup_price
from panopticon.services.registry import ModelRegistry
from panopticon.store.engine import Engine

__all__ = ["complete"]


async def complete(
    engine: Engine,
    workspace_id: int,
    env: Mapping[str, str],
    model_id: str,
    messages: list[dict[str, str]],
    params: dict[str, Any],
) -> dict[str, Any]:
    spec = ModelRegistry(engine, workspace_id).spec(model_id, "model_id")
    key_env = spec.api_key_env or (None if spec.base_url else DEFAULT_KEY_ENV.get(spec.provider))
    provider = create_provider(
        ProviderConfig(
            kind=spec.provider,
            base_url=spec.base_url,
            api_key=env.get(key_env) if key_env else None,
            timeout_s=spec.timeout_s,
            options=spec.options,
        )
    )
    client = ModelClient(provider, concurrency=1, retry=RetryPolicy(max_retries=spec.max_retries))
    try:
        outcome = await client.call(
            ChatRequest(spec.provider_model, messages, {**spec.params, **params})
        )
    finally:
        await client.aclose()
    price = (
        Price(spec.price.input, spec.price.output)
        if spec.price
        else lookup_price(spec.provider, spec.provider_model)
    )
    r = outcome.response
    return {
        "model_id": spec.id,
        "text": r.text if r else None,
        "finish_reason": r.finish_reason if r else None,
        "input_tokens": r.input_tokens if r else None,
        "output_tokens": r.output_tokens if r else None,
        "cost_usd": price.cost(r.input_tokens, r.output_tokens) if r and price else None,
        "latency_ms": outcome.latency_ms,
        "attempts": outcome.attempts,
        "error": outcome.error.message if outcome.error else None,
    }
