"""What the gateway keeps in the database, behind typed calls: its routes (the model
registry), the shared RPM/TPM buckets and the USD spend counters. Every call here blocks:
the gateway runs them in a thread, and only when its in-memory copies run out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from panopticon.errors import ConfigError
from panopticon.evaluation.endpoints import Access, Problem, resolve_endpoint
from panopticon.evaluation.spec import ModelSpec, model_price
from panopticon.providers.pricing import Price
from panopticon.services.registry import ModelRegistry
from panopticon.settings import Settings
from panopticon.store.engine import Engine
from panopticon.store.limits import SharedBucket, bucket_key
from panopticon.store.queries import gateway as q

__all__ = [
    "Problem",
    "ResolvedModel",
    "add_spend",
    "list_model_names",
    "read_spend",
    "resolve_model",
    "shared_bucket",
]


@dataclass(frozen=True)
class ResolvedModel:
    """A registered model with where its calls go and with which key (the workspace's stored
    credential or an operator-allowed variable: services.registry and evaluation.endpoints
    decide, as for every other caller). The key is held in memory only, never printed."""

    spec: ModelSpec
    kind: str
    base_url: str | None
    api_key: str | None = field(repr=False)
    options: dict[str, Any]
    price: Price | None


def resolve_model(
    engine: Engine, settings: Settings, env: Mapping[str, str], workspace_id: int, name: str
) -> ResolvedModel | Problem | None:
    """The registered model ``name`` ready to call; a Problem saying why it cannot be
    called; None when the workspace has no such model."""
    registry = ModelRegistry(engine, workspace_id, settings)
    try:
        spec = registry.spec(name, "model")
    except ConfigError:
        return None
    access = Access.server(settings, registered=frozenset({spec.id}))
    found = resolve_endpoint(spec, env, access, registry.directory)
    if isinstance(found, Problem):
        return found
    return ResolvedModel(
        spec,
        found.kind,
        found.base_url,
        found.api_key,
        dict(found.options),
        model_price(spec, found.kind),
    )


def list_model_names(engine: Engine, workspace_id: int) -> list[tuple[str, str]]:
    """(name, provider kind) of every registered model of the workspace."""
    return [(m["id"], m["provider"]) for m in ModelRegistry(engine, workspace_id).all()]


def shared_bucket(engine: Engine, scope: str, per_minute: float) -> SharedBucket:
    """The RPM or TPM bucket of one gateway scope (``rpm:key:12``), shared by replicas."""
    kind, _, rest = scope.partition(":")
    return SharedBucket(engine, bucket_key(kind, {"gateway": rest}), per_minute)


def add_spend(engine: Engine, deltas: dict[str, float]) -> dict[str, float]:
    with engine.begin() as conn:
        return q.add_spend(conn, deltas)


def read_spend(engine: Engine, keys: list[str]) -> dict[str, float]:
    with engine.connect() as conn:
        return q.read_spend(conn, keys)
