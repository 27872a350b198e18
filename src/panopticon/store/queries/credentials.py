"""Credentials of a workspace (encrypted tokens; the store never sees a key in clear)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.store.tables import Credential, Provider
from panopticon.store.tables.base import utcnow

__all__ = [
    "CredentialRow",
    "all_tokens",
    "delete_credential",
    "list_credentials",
    "providers_using",
    "put_credential",
    "replace_token",
    "token_of",
]


@dataclass(frozen=True)
class CredentialRow:
    """A credential's metadata: never its secret."""

    name: str
    created_at: datetime
    updated_at: datetime
    providers: list[str]


def put_credential(conn: Connection, workspace_id: int, name: str, token: str) -> bool:
    """Store (or replace) a credential's token; True when it is new."""
    now = utcnow()
    updated = conn.execute(
        sa.update(Credential)
        .where(Credential.c.workspace_id == workspace_id, Credential.c.name == name)
        .values(secret=token, updated_at=now)
    ).rowcount
    if updated:
        return False
    conn.execute(
        sa.insert(Credential).values(
            workspace_id=workspace_id, name=name, secret=token, created_at=now, updated_at=now
        )
    )
    return True


def list_credentials(conn: Connection, workspace_id: int) -> list[CredentialRow]:
    users: dict[str, list[str]] = {}
    for cred, provider in conn.execute(
        sa.select(Provider.c.credential, Provider.c.name)
        .where(Provider.c.workspace_id == workspace_id, Provider.c.credential.is_not(None))
        .order_by(Provider.c.name)
    ):
        users.setdefault(cred, []).append(provider)
    rows = conn.execute(
        sa.select(Credential.c.name, Credential.c.created_at, Credential.c.updated_at)
        .where(Credential.c.workspace_id == workspace_id)
        .order_by(Credential.c.name)
    )
    return [CredentialRow(r.name, r.created_at, r.updated_at, users.get(r.name, [])) for r in rows]


def token_of(conn: Connection, workspace_id: int, name: str) -> str | None:
    token: str | None = conn.execute(
        sa.select(Credential.c.secret).where(
            Credential.c.workspace_id == workspace_id, Credential.c.name == name
        )
    ).scalar()
    return token


def providers_using(conn: Connection, workspace_id: int, name: str) -> list[str]:
    return list(
        conn.execute(
            sa.select(Provider.c.name).where(
                Provider.c.workspace_id == workspace_id, Provider.c.credential == name
            )
        ).scalars()
    )


def delete_credential(conn: Connection, workspace_id: int, name: str) -> bool:
    return (
        conn.execute(
            sa.delete(Credential).where(
                Credential.c.workspace_id == workspace_id, Credential.c.name == name
            )
        ).rowcount
        > 0
    )


def all_tokens(conn: Connection) -> list[tuple[int, str]]:
    """(id, token) of every credential of every workspace: for key rotation."""
    return [
        (int(i), str(t)) for i, t in conn.execute(sa.select(Credential.c.id, Credential.c.secret))
    ]


def replace_token(conn: Connection, credential_id: int, token: str) -> None:
    conn.execute(sa.update(Credential).where(Credential.c.id == credential_id).values(secret=token))
