"""What the gateway keeps in the database, behind typed calls: its routes (the model
registry), the shared RPM/TPM buckets and the USD spend counters. Every call here blocks:
the gateway runs them in a thread, and only when its in-memory copies run out."""

from __future__ import annotations

from panopticon.errors import ConfigError
from panopticon.evaluation.spec import ModelSpec
from panopticon.providers.pricing import Price, lookup_price
from panopticon.services.registry import ModelRegistry
from panopticon.store.engine import Engine
from panopticon.store.limits import SharedBucket, bucket_key
from panopticon.store.queries import gateway as q

__all__ = ["add_spend", "list_model_names", "model_spec", "read_spend", "shared_bucket"]


def model_spec(
    engine: Engine, workspace_id: int, name: str
) -> tuple[ModelSpec, Price | None] | None:
    """The registered model called ``name`` in the workspace, with its price; None if none."""
    try:
        spec = ModelRegistry(engine, workspace_id).spec(name, "model")
    except ConfigError:
        return None
    price = (
        Price(spec.price.input, spec.price.output)
        if spec.price
        else lookup_price(spec.provider, spec.provider_model)
    )
    return spec, price


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
