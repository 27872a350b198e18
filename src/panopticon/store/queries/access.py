"""API keys: create, find by hash, list, revoke."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.store.tables import ApiKey, RevokedSession, Workspace
from panopticon.store.tables.base import utcnow

__all__ = [
    "KeyRow",
    "active_admin_keys",
    "find_key",
    "insert_key",
    "list_keys",
    "revoke_key",
    "revoke_session",
    "session_revoked",
    "touch_key",
]


@dataclass(frozen=True)
class KeyRow:
    id: int
    workspace_id: int
    workspace: str
    name: str
    prefix: str
    role: str
    scope: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


_COLS = (
    ApiKey.c.id,
    ApiKey.c.workspace_id,
    Workspace.c.name.label("workspace"),
    ApiKey.c.name,
    ApiKey.c.prefix,
    ApiKey.c.role,
    ApiKey.c.scope,
    ApiKey.c.created_at,
    ApiKey.c.last_used_at,
    ApiKey.c.revoked_at,
)


def insert_key(
    conn: Connection,
    workspace_id: int,
    name: str,
    prefix: str,
    key_hash: str,
    role: str,
    scope: str | None = None,
) -> int:
    return int(
        conn.execute(
            sa.insert(ApiKey)
            .values(
                workspace_id=workspace_id,
                name=name,
                prefix=prefix,
                key_hash=key_hash,
                role=role,
                scope=scope,
                created_at=utcnow(),
            )
            .returning(ApiKey.c.id)
        ).scalar_one()
    )


def find_key(conn: Connection, key_hash: str) -> KeyRow | None:
    row = conn.execute(
        sa.select(*_COLS)
        .join(Workspace, Workspace.c.id == ApiKey.c.workspace_id)
        .where(ApiKey.c.key_hash == key_hash)
    ).first()
    return KeyRow(**row._mapping) if row else None


def touch_key(conn: Connection, key_id: int, at: datetime | None = None) -> None:
    """Record a key's last use (never moving it back in time)."""
    at = at or utcnow()
    conn.execute(
        sa.update(ApiKey)
        .where(
            ApiKey.c.id == key_id,
            sa.or_(ApiKey.c.last_used_at.is_(None), ApiKey.c.last_used_at < at),
        )
        .values(last_used_at=at)
    )


def list_keys(conn: Connection, workspace_id: int | None = None) -> list[KeyRow]:
    q = sa.select(*_COLS).join(Workspace, Workspace.c.id == ApiKey.c.workspace_id)
    if workspace_id is not None:
        q = q.where(ApiKey.c.workspace_id == workspace_id)
    return [KeyRow(**r._mapping) for r in conn.execute(q.order_by(ApiKey.c.id))]


def revoke_key(conn: Connection, key_id: int, workspace_id: int | None = None) -> bool:
    q = sa.update(ApiKey).where(ApiKey.c.id == key_id, ApiKey.c.revoked_at.is_(None))
    if workspace_id is not None:
        q = q.where(ApiKey.c.workspace_id == workspace_id)
    return conn.execute(q.values(revoked_at=utcnow())).rowcount > 0


def active_admin_keys(conn: Connection, workspace_id: int, *, lock: bool = False) -> list[int]:
    """Ids of the workspace's active admin keys; with ``lock``, locked for update on
    PostgreSQL, so that two revocations cannot each leave the other as the last one (SQLite
    runs one writer at a time)."""
    q = sa.select(ApiKey.c.id).where(
        ApiKey.c.workspace_id == workspace_id,
        ApiKey.c.role == "admin",
        ApiKey.c.revoked_at.is_(None),
    )
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return [int(i) for i in conn.execute(q).scalars()]


def revoke_session(conn: Connection, nonce: str, expires_at: datetime) -> None:
    """Refuse a web session's nonce from now on; forget nonces whose cookies expired."""
    now = utcnow()
    conn.execute(sa.delete(RevokedSession).where(RevokedSession.c.expires_at < now))
    exists = conn.execute(
        sa.select(RevokedSession.c.nonce).where(RevokedSession.c.nonce == nonce)
    ).first()
    if exists is None:
        conn.execute(sa.insert(RevokedSession).values(nonce=nonce, expires_at=expires_at))


def session_revoked(conn: Connection, nonce: str) -> bool:
    return (
        conn.execute(
            sa.select(RevokedSession.c.nonce).where(RevokedSession.c.nonce == nonce)
        ).first()
        is not None
    )
