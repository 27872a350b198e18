"""The model registry's rows: models with their provider's endpoint, and providers."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.store.tables import Model, Provider, Result
from panopticon.store.tables.base import utcnow

__all__ = [
    "delete_model",
    "delete_provider",
    "get_provider",
    "insert_provider",
    "list_providers",
    "model_has_results",
    "model_rows",
    "provider_in_use",
    "update_provider",
]


def model_rows(conn: Connection, workspace_id: int, name: str | None = None) -> list[Any]:
    """Models (all, or the one named) with their provider's kind, name, endpoint and key."""
    q = (
        sa.select(
            Model,
            Provider.c.kind,
            Provider.c.name.label("provider_name"),
            Provider.c.base_url,
            Provider.c.api_key_env,
            Provider.c.credential,
            Provider.c.options,
        )
        .join(Provider, Provider.c.id == Model.c.provider_id)
        .where(Model.c.workspace_id == workspace_id)
        .order_by(Model.c.name)
    )
    if name is not None:
        q = q.where(Model.c.name == name)
    return list(conn.execute(q))


def model_has_results(conn: Connection, workspace_id: int, name: str) -> bool:
    mid = conn.execute(
        sa.select(Model.c.id).where(Model.c.workspace_id == workspace_id, Model.c.name == name)
    ).scalar_one()
    return (
        conn.execute(sa.select(Result.c.id).where(Result.c.model_id == mid).limit(1)).first()
        is not None
    )


def delete_model(conn: Connection, workspace_id: int, name: str) -> None:
    conn.execute(sa.delete(Model).where(Model.c.workspace_id == workspace_id, Model.c.name == name))


def list_providers(conn: Connection, workspace_id: int) -> list[Any]:
    return list(
        conn.execute(
            sa.select(Provider)
            .where(Provider.c.workspace_id == workspace_id)
            .order_by(Provider.c.name)
        )
    )


def get_provider(conn: Connection, workspace_id: int, provider_id: int) -> Any | None:
    return conn.execute(
        sa.select(Provider).where(
            Provider.c.id == provider_id, Provider.c.workspace_id == workspace_id
        )
    ).first()


def insert_provider(conn: Connection, workspace_id: int, values: dict[str, Any]) -> int:
    return int(
        conn.execute(
            sa.insert(Provider)
            .values(workspace_id=workspace_id, options={}, created_at=utcnow(), **values)
            .returning(Provider.c.id)
        ).scalar_one()
    )


def update_provider(conn: Connection, provider_id: int, changes: dict[str, Any]) -> None:
    conn.execute(sa.update(Provider).where(Provider.c.id == provider_id).values(**changes))


def provider_in_use(conn: Connection, provider_id: int) -> bool:
    found = conn.execute(sa.select(Model.c.id).where(Model.c.provider_id == provider_id).limit(1))
    return found.first() is not None


def delete_provider(conn: Connection, provider_id: int) -> None:
    conn.execute(sa.delete(Provider).where(Provider.c.id == provider_id))
