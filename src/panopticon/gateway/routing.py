"""Who is calling and where their call goes, from memory: gateway keys and routes (the
model registry) cached for ``ttl_s``, so no request waits on the database once its key and
model were seen. A revoked key is refused within ``ttl_s``; an unknown key or model is
remembered as unknown for the same time (a flood of bad keys costs one lookup each TTL).
While the database is away, keys and routes seen before keep being served as last read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from panopticon.errors import GatewayError
from panopticon.gateway.guardrails import Guardrails
from panopticon.gateway.limits import ChunkedBucket
from panopticon.providers.pricing import Price
from panopticon.services import gateway_store
from panopticon.services.database import Engine
from panopticon.services.gateway_keys import GatewayKeyInfo, lookup_gateway_key
from panopticon.services.gateway_store import Problem, ResolvedModel
from panopticon.settings import Settings

__all__ = ["KeyEntry", "KeyTable", "Route", "RouteTable"]

log = logging.getLogger(__name__)

OPENAI_BASE = "https://api.openai.com/v1"
ANTHROPIC_BASE = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True)
class Route:
    """Where one registered model is served."""

    name: str
    kind: str  # the provider kind: openai, anthropic, ...
    provider_model: str
    base_url: str
    headers: dict[str, str]
    price: Price | None
    timeout_s: float
    rpm: int | None
    tpm: int | None
    params: dict[str, Any] = field(default_factory=dict)
    # USD budgets of the model across every key of the workspace, from the registered
    # model's options (``gateway_budget_day_usd``, ``gateway_budget_month_usd``)
    budget_day_usd: float | None = None
    budget_month_usd: float | None = None

    def url(self, endpoint: str) -> str:
        if self.kind == "anthropic":
            base = self.base_url.rstrip("/")
            return base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        return self.base_url.rstrip("/") + "/" + endpoint

    def secrets(self) -> list[str]:
        """The provider key this route sends (to mask it wherever a provider echoes it)."""
        out = [self.headers.get("x-api-key", "")]
        auth = self.headers.get("Authorization", "")
        out.append(auth.removeprefix("Bearer ").strip())
        return [s for s in out if s]

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float | None:
        if self.price is None:
            return None
        return self.price.cost(input_tokens, output_tokens)


def _route(found: ResolvedModel) -> Route:
    spec = found.spec
    headers = {"Content-Type": "application/json"}
    if found.kind == "anthropic":
        base = found.base_url or ANTHROPIC_BASE
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if found.api_key:
            headers["x-api-key"] = found.api_key
    else:
        base = found.base_url or OPENAI_BASE
        if found.api_key:
            headers["Authorization"] = f"Bearer {found.api_key}"
    for name, value in (found.options.get("headers") or {}).items():
        headers[str(name)] = str(value)
    return Route(
        spec.id,
        found.kind,
        spec.provider_model,
        base,
        headers,
        found.price,
        spec.timeout_s,
        spec.rpm,
        spec.tpm,
        dict(spec.params),
        _budget(found.options.get("gateway_budget_day_usd")),
        _budget(found.options.get("gateway_budget_month_usd")),
    )


def _budget(value: Any) -> float | None:
    try:
        amount = float(value)
    except (TypeError, ValueError):
        return None
    return amount if amount > 0 else None


def _store_away(what: str, exc: Exception) -> GatewayError:
    log.warning("gateway cannot read a %s from the database: %s", what, exc)
    return GatewayError(
        f"the gateway cannot reach its database to check this {what}; retry shortly",
        503,
        "api_error",
        code="store_unavailable",
        retry_after=1.0,
    )


UNKNOWN_TTL_S = 1.0  # how long "no such model" is kept (at most the keys' ttl)


class RouteTable:
    def __init__(
        self, engine: Engine, settings: Settings, env: Mapping[str, str], ttl_s: float
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.env = env
        self.ttl_s = ttl_s
        self._routes: dict[tuple[int, str], tuple[float, Route | Problem | None]] = {}
        self._names: dict[int, tuple[float, list[tuple[str, str]]]] = {}
        self._buckets: dict[str, ChunkedBucket] = {}

    def _load(self, workspace_id: int, name: str) -> Route | Problem | None:
        found = gateway_store.resolve_model(
            self.engine, self.settings, self.env, workspace_id, name
        )
        if found is None or isinstance(found, Problem):
            return found
        return _route(found)

    async def get(self, workspace_id: int, name: str) -> Route | None:
        """The route of a registered model; None when there is none. A registered model
        that cannot be called (no key, a refused URL) is a 502 saying why and how to fix."""
        route = await self._get(workspace_id, name)
        if isinstance(route, Problem):
            raise GatewayError(
                f"{route.message}; fix: {route.hint}", 502, "api_error", code="model_unusable"
            )
        return route

    async def _get(self, workspace_id: int, name: str) -> Route | Problem | None:
        cached = self._routes.get((workspace_id, name))
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            route = await asyncio.to_thread(self._load, workspace_id, name)
        except Exception as exc:  # the database is away: the last known route serves on
            if cached is None:
                raise _store_away("model", exc) from None
            route = cached[1]
        # a name with no model is asked again sooner: a model registered a moment ago is
        # served within a second, not refused as unknown for the keys' whole ttl
        ttl = self.ttl_s if route is not None else min(self.ttl_s, UNKNOWN_TTL_S)
        self._routes[(workspace_id, name)] = (now + ttl, route)
        if route is not None and cached is not None and cached[1] is None:
            self._names.pop(workspace_id, None)  # the list the 404s show is stale too
        return route

    async def names(self, workspace_id: int) -> list[tuple[str, str]]:
        cached = self._names.get(workspace_id)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            names = await asyncio.to_thread(
                gateway_store.list_model_names, self.engine, workspace_id
            )
        except Exception as exc:
            if cached is None:
                raise _store_away("model list", exc) from None
            names = cached[1]
        self._names[workspace_id] = (now + self.ttl_s, names)
        return names

    def buckets(self, workspace_id: int, route: Route) -> list[tuple[ChunkedBucket, str]]:
        """The model's shared RPM and TPM buckets (kind: rpm | tpm), made once."""
        out = []
        for kind, limit in (("rpm", route.rpm), ("tpm", route.tpm)):
            if limit:
                scope = f"{kind}:model:{workspace_id}:{route.name}:{limit}"
                bucket = self._buckets.get(scope)
                if bucket is None:
                    label = f"model '{route.name}' {kind.upper()}"
                    bucket = self._buckets[scope] = ChunkedBucket(self.engine, scope, limit, label)
                out.append((bucket, kind))
        return out


@dataclass
class KeyEntry:
    """A gateway key as the hot path needs it: its settings, compiled guardrails, buckets."""

    info: GatewayKeyInfo
    guardrails: Guardrails
    rpm: ChunkedBucket | None
    tpm: ChunkedBucket | None

    @property
    def scope(self) -> str:
        return f"key:{self.info.id}"


class KeyTable:
    def __init__(self, engine: Engine, ttl_s: float) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self._keys: dict[str, tuple[float, KeyEntry | None]] = {}
        self._buckets: dict[str, ChunkedBucket] = {}
        self._guardrails: dict[tuple[int, str], Guardrails] = {}

    def _bucket(self, info: GatewayKeyInfo, kind: str, limit: int | None) -> ChunkedBucket | None:
        if not limit:
            return None
        scope = f"{kind}:key:{info.id}:{limit}"
        bucket = self._buckets.get(scope)
        if bucket is None:
            label = f"gateway key '{info.name}' {kind.upper()}"
            bucket = self._buckets[scope] = ChunkedBucket(self.engine, scope, limit, label)
        return bucket

    def _entry(self, info: GatewayKeyInfo) -> KeyEntry:
        cfg = info.config
        fingerprint = repr([g.model_dump() for g in cfg.guardrails])
        guardrails = self._guardrails.get((info.id, fingerprint))
        if guardrails is None:
            guardrails = self._guardrails[(info.id, fingerprint)] = Guardrails(cfg.guardrails)
        return KeyEntry(
            info,
            guardrails,
            self._bucket(info, "rpm", cfg.rpm),
            self._bucket(info, "tpm", cfg.tpm),
        )

    async def get(self, key_hash: str) -> KeyEntry | None:
        """The active key with this hash, or None (unknown or revoked)."""
        cached = self._keys.get(key_hash)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            info = await asyncio.to_thread(lookup_gateway_key, self.engine, key_hash)
        except Exception as exc:  # the database is away: a key seen before stays usable
            if cached is None:
                raise _store_away("key", exc) from None
            self._keys[key_hash] = (now + self.ttl_s, cached[1])
            return cached[1]
        entry = self._entry(info) if info is not None and info.active else None
        if len(self._keys) > 100_000:  # a flood of random keys: start over
            self._keys.clear()
        self._keys[key_hash] = (now + self.ttl_s, entry)
        return entry
