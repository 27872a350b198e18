"""One completion from a registered model (``POST /api/completion``), through the same
client policies as a run: retries honouring Retry-After, time-outs, tokens and cost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from panopticon.errors import ConfigError, Issue
from panopticon.evaluation.endpoints import Access, Problem, build_client, resolve_endpoint
from panopticon.evaluation.spec import check_params, model_price
from panopticon.providers.base import ChatRequest
from panopticon.services.registry import ModelRegistry
from panopticon.settings import Settings
from panopticon.store.engine import Engine

__all__ = ["complete"]


async def complete(
    engine: Engine,
    settings: Settings,
    workspace_id: int,
    env: Mapping[str, str],
    model_id: str,
    messages: list[dict[str, str]],
    params: dict[str, Any],
) -> dict[str, Any]:
    try:
        check_params(params)
    except ValueError as exc:
        raise ConfigError(Issue(str(exc), field="params")) from None
    registry = ModelRegistry(engine, workspace_id, settings)
    spec = registry.spec(model_id, "model_id")
    access = Access.server(settings, registered=frozenset({spec.id}))
    endpoint = resolve_endpoint(spec, env, access, registry.directory)
    if isinstance(endpoint, Problem):
        raise ConfigError(
            Issue(endpoint.message, field=f"model_id ({endpoint.field})", hint=endpoint.hint)
        )
    client = build_client(spec, endpoint, access.egress)
    try:
        outcome = await client.call(
            ChatRequest(spec.provider_model, messages, {**spec.params, **params})
        )
    finally:
        await client.aclose()
    price = model_price(spec, endpoint.kind)
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
