"""Web sessions: signed cookies holding the hashes of the keys a person signed in with.

The cookie is ``base64(json) . HMAC-SHA256``; it holds key hashes (never keys) and which one
is active, and every request re-checks the active key, so revoking a key ends its
sessions. Forms carry a CSRF token derived from the session (and the cookie is
SameSite=Strict), so another site cannot post on a signed-in person's behalf.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panopticon.keyfiles import read_or_create
from panopticon.settings import Settings

__all__ = ["COOKIE", "MAX_AGE", "Session", "load_secret", "sign"]

COOKIE = "panopticon_session"
MAX_AGE = 7 * 24 * 3600


def load_secret(settings: Settings) -> bytes:
    """The signing key: from settings, else a random one kept (0600) in ``home``."""
    if settings.secret_key:
        return settings.secret_key.encode()
    return read_or_create(
        Path(settings.home) / "web-secret", lambda: secrets.token_urlsafe(48).encode()
    )


@dataclass
class Session:
    """The keys (hashes, with their workspace and role for display) and the active one."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    active: int = 0
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    expires: float = field(default_factory=lambda: time.time() + MAX_AGE)

    @property
    def active_hash(self) -> str | None:
        return self.keys[self.active]["hash"] if 0 <= self.active < len(self.keys) else None

    def add(self, key_hash: str, workspace: str, role: str) -> None:
        self.keys = [k for k in self.keys if k["hash"] != key_hash]
        self.keys.append({"hash": key_hash, "workspace": workspace, "role": role})
        self.active = len(self.keys) - 1

    def encode(self, secret: bytes) -> str:
        body = json.dumps(
            {"k": self.keys, "a": self.active, "n": self.nonce, "e": self.expires},
            separators=(",", ":"),
        ).encode()
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return payload + "." + _sign(secret, payload)

    @classmethod
    def decode(cls, secret: bytes, cookie: str | None) -> Session | None:
        if not cookie or "." not in cookie:
            return None
        payload, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature, _sign(secret, payload)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = cls(list(data["k"]), int(data["a"]), str(data["n"]), float(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def csrf_token(self, secret: bytes) -> str:
        return _sign(secret, "csrf:" + self.nonce)


def sign(secret: bytes, payload: str) -> str:
    """HMAC-SHA256 of ``payload``, hex."""
    return _sign(secret, payload)


def _sign(secret: bytes, payload: str) -> str:
    return hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
