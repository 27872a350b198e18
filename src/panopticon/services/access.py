"""Who is calling: API keys (created once, stored hashed, revocable) and roles.

Roles: ``viewer`` reads; ``member`` also writes (queries, metrics, evaluations);
``admin`` also manages keys and providers. A key sees only its own workspace.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime

from panopticon.errors import ConfigError, Issue, NotFoundError, PanopticonError
from panopticon.settings import Settings
from panopticon.store.engine import Engine, read
from panopticon.store.queries import access, catalog
from panopticon.store.tables import ROLES, SCOPES

__all__ = [
    "AuthError",
    "Principal",
    "authenticate",
    "authenticate_hash",
    "create_key",
    "end_session",
    "hash_key",
    "known_principal",
    "list_keys",
    "revoke_key",
    "session_ended",
]

KEY_PREFIX = "pk_"
# A key checked this recently is not read again: one lookup per key per 2 s, not per
# request. A key revoked by another process (the CLI, another replica) stops working
# within this time; revoked through this process, at once.
PRINCIPAL_TTL_S = 2.0
# A web session found signed in this recently is not read again either (one read per
# session per 2 s, not one per dashboard request). Signed out through this process it is
# refused at once; through another process (a replica), within this time.
SESSION_TTL_S = PRINCIPAL_TTL_S
log = logging.getLogger(__name__)


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
    scope: str | None = None  # "ingest": may only send traces and scores

    def require(self, role: str) -> None:
        if ROLES.index(self.role) > ROLES.index(role):
            raise AuthError(f"this needs the {role} role; the key is a {self.role}", 403)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    engine: Engine, workspace: str, role: str, name: str, scope: str | None = None
) -> tuple[int, str]:
    """A new key: (its id, the key itself, which is never shown again). ``scope="ingest"``
    limits it to sending traces and scores."""
    if role not in ROLES:
        raise ConfigError(
            Issue(f"unknown role '{role}'", field="--role", hint="use " + ", ".join(ROLES))
        )
    if scope is not None and scope not in SCOPES:
        raise ConfigError(
            Issue(f"unknown scope '{scope}'", field="--scope", hint="use " + ", ".join(SCOPES))
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        ws = catalog.ensure_workspace(conn, workspace)
        key_id = access.insert_key(conn, ws, name, key[:10], hash_key(key), role, scope)
    return key_id, key


@dataclass
class _KeyUsage:
    """``last_used_at`` kept from memory: written at most once per ``interval`` seconds per
    key, by a short-lived thread, never on the request's path (the gateway authenticates
    thousands of requests a second; a write each would serialise them on the database)."""

    engine: Engine
    interval: float = 60.0
    written: dict[int, float] = field(default_factory=dict)  # key id -> monotonic time
    pending: dict[int, datetime] = field(default_factory=dict)
    flushing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    default_workspace: int | None = None  # the bootstrap key's workspace, read once
    # key hash -> (monotonic expiry, principal): a key checked in the last PRINCIPAL_TTL_S
    # seconds is not read again. Revoking through this process clears it at once.
    principals: dict[str, tuple[float, Principal]] = field(default_factory=dict)
    # web session nonce -> (monotonic expiry, signed out): a sign-out is never undone, so
    # a session known to be signed out stays so without another read
    sessions: dict[str, tuple[float, bool]] = field(default_factory=dict)

    def used(self, key_id: int) -> None:
        now = time.monotonic()
        with self.lock:
            if now - self.written.get(key_id, -self.interval) < self.interval:
                return
            self.written[key_id] = now
            self.pending[key_id] = datetime.now(UTC)
            if self.flushing:
                return
            self.flushing = True
        threading.Thread(target=self._flush, name="panopticon-key-usage", daemon=True).start()

    def _flush(self) -> None:
        while True:
            with self.lock:
                batch, self.pending = self.pending, {}
                if not batch:
                    self.flushing = False
                    return
            try:
                with self.engine.begin() as conn:
                    for key_id, at in batch.items():
                        access.touch_key(conn, key_id, at)
            except Exception as exc:  # a usage time is not worth failing a request for
                log.warning("could not record when API keys were last used: %s", exc)


_USAGE: weakref.WeakKeyDictionary[Engine, _KeyUsage] = weakref.WeakKeyDictionary()
_USAGE_LOCK = threading.Lock()


def _usage(engine: Engine) -> _KeyUsage:
    with _USAGE_LOCK:
        usage = _USAGE.get(engine)
        if usage is None:
            usage = _USAGE[engine] = _KeyUsage(engine)
        return usage


def _forget(key_id: int) -> None:
    with _USAGE_LOCK:
        for usage in _USAGE.values():
            for key_hash, (_, principal) in list(usage.principals.items()):
                if principal.key_id == key_id:
                    usage.principals.pop(key_hash, None)


def authenticate(
    engine: Engine, settings: Settings, key: str | None, purpose: str = "api"
) -> Principal:
    """``purpose="ingest"`` admits keys limited to ingestion; anything else refuses them."""
    if not key:
        raise AuthError("missing X-API-Key header; create a key with `panopticon keys create`")
    return authenticate_hash(engine, settings, hash_key(key), purpose)


def authenticate_hash(
    engine: Engine, settings: Settings, key_hash: str, purpose: str = "api"
) -> Principal:
    """The principal of a key known by its hash (a web session keeps only the hash, so a
    revoked key ends its sessions too). One read; no write: ``last_used_at`` is recorded
    at most once a minute per key, off the request's path."""
    principal = known_principal(engine, settings, key_hash, purpose)
    if principal is not None:
        return principal
    usage = _usage(engine)
    if _is_bootstrap(settings, key_hash):
        with engine.begin() as conn:
            usage.default_workspace = catalog.ensure_workspace(conn, "default")
        return Principal(usage.default_workspace, "default", "admin", None)
    row = read(engine, lambda conn: access.find_key(conn, key_hash))
    if row is None or row.revoked_at is not None:
        usage.principals.pop(key_hash, None)
        raise AuthError("invalid or revoked API key")
    principal = Principal(row.workspace_id, row.workspace, row.role, row.id, row.scope)
    if len(usage.principals) > 10_000:  # bounded: forget them all, they are re-read
        usage.principals.clear()
    usage.principals[key_hash] = (time.monotonic() + PRINCIPAL_TTL_S, principal)
    return _admitted(usage, principal, purpose)


def known_principal(
    engine: Engine, settings: Settings, key_hash: str, purpose: str = "api"
) -> Principal | None:
    """The principal of a key from memory alone (the bootstrap key once its workspace is
    known, a key checked in the last PRINCIPAL_TTL_S seconds), or None when the database
    must be read: ``authenticate_hash`` then. Never blocks, so an async caller checks it on
    the event loop and goes to a thread only when it returns None. Raises AuthError as
    ``authenticate_hash`` would for a key it knows."""
    usage = _usage(engine)
    if _is_bootstrap(settings, key_hash):
        if usage.default_workspace is None:
            return None
        return Principal(usage.default_workspace, "default", "admin", None)
    cached = usage.principals.get(key_hash)
    if cached is None or cached[0] <= time.monotonic():
        return None
    return _admitted(usage, cached[1], purpose)


def _is_bootstrap(settings: Settings, key_hash: str) -> bool:
    return bool(settings.api_key) and hmac.compare_digest(
        key_hash, _bootstrap_hash(settings.api_key or "")
    )


@functools.lru_cache(maxsize=8)
def _bootstrap_hash(key: str) -> str:
    return hash_key(key)


def _admitted(usage: _KeyUsage, principal: Principal, purpose: str) -> Principal:
    if principal.scope == "ingest" and purpose != "ingest":
        raise AuthError(
            "this key may only send traces and scores (scope ingest); use another key", 403
        )
    if principal.key_id is not None:
        usage.used(principal.key_id)
    return principal


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
            admins = access.active_admin_keys(conn, target.workspace_id, lock=True)
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
    _forget(key_id)  # this process stops accepting it at once (others within the TTL)


def end_session(engine: Engine, nonce: str, expires_at: datetime) -> None:
    """Sign a web session out on the server: its cookie, and every copy of it, is refused
    from now on (a signed cookie cannot be taken back otherwise): by this process at once,
    by others within SESSION_TTL_S seconds."""
    with engine.begin() as conn:
        access.revoke_session(conn, nonce, expires_at)
    _remember_session(_usage(engine), nonce, ended=True)


def session_ended(engine: Engine, nonce: str) -> bool:
    """Whether the web session was signed out. Read from the database at most once per
    SESSION_TTL_S seconds per session while it is signed in, never again once it is not."""
    usage = _usage(engine)
    cached = usage.sessions.get(nonce)
    if cached is not None and (cached[1] or cached[0] > time.monotonic()):
        return cached[1]
    with engine.connect() as conn:
        ended = access.session_revoked(conn, nonce)
    _remember_session(usage, nonce, ended=ended)
    return ended


def _remember_session(usage: _KeyUsage, nonce: str, *, ended: bool) -> None:
    with _USAGE_LOCK:
        if len(usage.sessions) > 10_000:  # bounded: forget them all, they are re-read
            usage.sessions.clear()
        known = usage.sessions.get(nonce)
        if not ended and known is not None and known[1]:
            # a read begun before a sign-out through this process returns after it: the
            # sign-out stands (it is never undone), else the cookie would work SESSION_TTL_S more
            return
        usage.sessions[nonce] = (time.monotonic() + SESSION_TTL_S, ended)
