"""Gateway keys and spend counters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.store.tables import GatewayKey, GatewaySpend, Workspace
from panopticon.store.tables.base import utcnow

__all__ = [
    "GatewayKeyRow",
    "add_spend",
    "find_gateway_key",
    "insert_gateway_key",
    "list_gateway_keys",
    "read_spend",
    "revoke_gateway_key",
    "update_gateway_key",
]


@dataclass(frozen=True)
class GatewayKeyRow:
    id: int
    workspace_id: int
    workspace: str
    name: str
    prefix: str
    config: dict[str, Any]
    created_at: datetime
    revoked_at: datetime | None


_COLS = (
    GatewayKey.c.id,
    GatewayKey.c.workspace_id,
    Workspace.c.name.label("workspace"),
    GatewayKey.c.name,
    GatewayKey.c.prefix,
    GatewayKey.c.config,
    GatewayKey.c.created_at,
    GatewayKey.c.revoked_at,
)


def _select() -> sa.Select[Any]:
    return sa.select(*_COLS).join(Workspace, Workspace.c.id == GatewayKey.c.workspace_id)


def insert_gateway_key(
    conn: Connection,
    workspace_id: int,
    name: str,
    prefix: str,
    key_hash: str,
    config: dict[str, Any],
) -> int:
    return int(
        conn.execute(
            sa.insert(GatewayKey)
            .values(
                workspace_id=workspace_id,
                name=name,
                prefix=prefix,
                key_hash=key_hash,
                config=config,
                created_at=utcnow(),
            )
            .returning(GatewayKey.c.id)
        ).scalar_one()
    )


def find_gateway_key(conn: Connection, key_hash: str) -> GatewayKeyRow | None:
    row = conn.execute(_select().where(GatewayKey.c.key_hash == key_hash)).first()
    return GatewayKeyRow(**row._mapping) if row else None


def list_gateway_keys(
    conn: Connection, workspace_id: int | None = None, key_id: int | None = None
) -> list[GatewayKeyRow]:
    q = _select()
    if workspace_id is not None:
        q = q.where(GatewayKey.c.workspace_id == workspace_id)
    if key_id is not None:
        q = q.where(GatewayKey.c.id == key_id)
    return [GatewayKeyRow(**r._mapping) for r in conn.execute(q.order_by(GatewayKey.c.id))]


def update_gateway_key(
    conn: Connection, key_id: int, workspace_id: int | None, config: dict[str, Any]
) -> bool:
    q = sa.update(GatewayKey).where(GatewayKey.c.id == key_id)
    if workspace_id is not None:
        q = q.where(GatewayKey.c.workspace_id == workspace_id)
    return conn.execute(q.values(config=config)).rowcount > 0


def revoke_gateway_key(conn: Connection, key_id: int, workspace_id: int | None = None) -> bool:
    q = sa.update(GatewayKey).where(GatewayKey.c.id == key_id, GatewayKey.c.revoked_at.is_(None))
    if workspace_id is not None:
        q = q.where(GatewayKey.c.workspace_id == workspace_id)
    return conn.execute(q.values(revoked_at=utcnow())).rowcount > 0


def add_spend(conn: Connection, deltas: dict[str, float]) -> dict[str, float]:
    """Add each delta to its counter (one atomic upsert each); the totals after."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    totals: dict[str, float] = {}
    now = utcnow()
    for key in sorted(deltas):  # one order everywhere: no deadlocks between replicas
        stmt = insert(GatewaySpend).values(key=key, spent_usd=deltas[key], updated_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=[GatewaySpend.c.key],
            set_={
                "spent_usd": GatewaySpend.c.spent_usd + stmt.excluded.spent_usd,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        totals[key] = float(conn.execute(stmt.returning(GatewaySpend.c.spent_usd)).scalar_one())
    return totals


def read_spend(conn: Connection, keys: list[str]) -> dict[str, float]:
    """The counters asked for; a counter never written is 0."""
    rows = conn.execute(
        sa.select(GatewaySpend.c.key, GatewaySpend.c.spent_usd).where(GatewaySpend.c.key.in_(keys))
    )
    found = {r.key: float(r.spent_usd) for r in rows}
    return {k: found.get(k, 0.0) for k in keys}
