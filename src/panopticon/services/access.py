"""Who is calling: API keys (created once, stored hashed, revocable) and roles.

Roles: ``viewer`` reads; ``member`` also writes (queries, metrics, evaluations);
``admin`` also manages keys and providers. A key sees only its own workspace.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from panopticon.errors import ConfigError, Issue, NotFoundError, PanopticonError
from panopticon.settings import Settings
from panopticon.store.engine import Engine
from panopticon.store.queries import access, catalog
from panopticon.store.tables import ROLES

__all__ = [
    "AuthError",
    "Principal",
    "authenticate",
    "authenticate_hash",
    "create_key",
    "end_session",
    "hash_key",
    "list_keys",
    "revoke_key",
    "session_ended",
]

KEY_PREFIX = "pk_"


class AuthError(PanopticonError):
    """No key, an unknown or revoked key, or a role that may not do this."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Principal:
    workspace_id: int
    workspace: str
    role: str
    key_id: int | None  # None: the bootstrap key from settings

    def require(self, role: str) -> None:
        if ROLES.index(self.role) > ROLES.index(role):
            raise AuthError(f"this needs the {role} role; the key is a {self.role}", 403)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(engine: Engine, workspace: str, role: str, name: str) -> tuple[int, str]:
    """A new key: (its id, the key itself, which is never shown again)."""
    if role not in ROLES:
        raise ConfigError(
            Issue(f"unknown role '{role}'", field="--role", hint="use " + ", ".join(ROLES))
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        ws = catalog.ensure_workspace(conn, workspace)
        key_id = access.insert_key(conn, ws, name, key[:10], hash_key(key), role)
    return key_id, key


def authenticate(engine: Engine, settings: Settings, key: str | None) -> Principal:
    if not key:
        raise AuthError("missing X-API-Key header; create a key with `panopticon keys create`")
    return authenticate_hash(engine, settings, hash_key(key))


def authenticate_hash(engine: Engine, settings: Settings, key_hash: str) -> Principal:
    """The principal of a key known by its hash (a web session keeps only the hash, so a
    revoked key ends its sessions too)."""
    if settings.api_key and hmac.compare_digest(key_hash, hash_key(settings.api_key)):
        with engine.begin() as conn:
            ws = catalog.ensure_workspace(conn, "default")
        return Principal(ws, "default", "admin", None)
    with engine.begin() as conn:
        row = access.find_key(conn, key_hash)
        if row is None or row.revoked_at is not None:
            raise AuthError("invalid or revoked API key")
        access.touch_key(conn, row.id)
    return Principal(row.workspace_id, row.workspace, row.role, row.id)


def list_keys(engine: Engine, workspace_id: int | None = None) -> list[access.KeyRow]:
    with engine.connect() as conn:
        return access.list_keys(conn, workspace_id)


def revoke_key(engine: Engine, key_id: int, workspace_id: int | None = None) -> None:
    """Revoke an active key (of that workspace, when given); NotFoundError otherwise. The
    last active admin key of a workspace is not revoked (ConflictError): nobody could
    manage the workspace's keys and credentials any more."""
    from panopticon.services.catalog import ConflictError

    with engine.begin() as conn:
        target = next((k for k in access.list_keys(conn, workspace_id) if k.id == key_id), None)
        if target is not None and target.role == "admin" and target.revoked_at is None:
            admins = access.active_admin_keys(
                conn, target.workspace_id, lock=engine.dialect.name == "postgresql"
            )
            if admins == [key_id]:
                raise ConflictError(
                    Issue(
                        f"key {key_id} is the last admin key of workspace "
                        f"'{target.workspace}' and cannot be revoked",
                        field="key_id",
                        hint="create another admin key first (`panopticon keys create --role "
                        "admin` or POST /api/keys), then revoke this one",
                    )
                )
        if not access.revoke_key(conn, key_id, workspace_id):
            raise NotFoundError(
                f"no active key {key_id}"
                + (
                    " in this workspace"
                    if workspace_id is not None
                    else "; `panopticon keys list` shows them"
                )
            )


def end_session(engine: Engine, nonce: str, expires_at: datetime) -> None:
    """Sign a web session out on the server: its cookie, and every copy of it, is refused
    from now on (a signed cookie cannot be taken back otherwise)."""
    with engine.begin() as conn:
        access.revoke_session(conn, nonce, expires_at)


def session_ended(engine: Engine, nonce: str) -> bool:
    with engine.connect() as conn:
        return access.session_revoked(conn, nonce)
