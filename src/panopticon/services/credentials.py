"""Provider credentials of a workspace: set by its admins, encrypted at rest, never shown.

Each secret is a Fernet token (AES-128-CBC with HMAC-SHA256) made with the operator's key:
``PANOPTICON_ENCRYPTION_KEY`` (comma-separated keys: the first encrypts, all decrypt, so a
key is rotated by putting the new one first and running :func:`rotate`), else a key created
(0600) in ``home``. The secret is decrypted only to call a provider; it is never returned by
the API, written to a log, an error, an export or a run's snapshot.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from panopticon.errors import ConfigError, Issue, NotFoundError
from panopticon.keyfiles import read_or_create
from panopticon.settings import Settings
from panopticon.store.engine import Engine
from panopticon.store.queries import credentials as queries
from panopticon.store.queries.credentials import CredentialRow

__all__ = ["CredentialRow", "Credentials", "new_key", "rotate"]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_SECRET = 10_000
KEY_FILE = "encryption-key"


def new_key() -> str:
    """A new random encryption key, for PANOPTICON_ENCRYPTION_KEY."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _cipher(settings: Settings) -> Any:
    from cryptography.fernet import Fernet, MultiFernet

    if settings.encryption_key:
        raw = [k.strip() for k in settings.encryption_key.split(",") if k.strip()]
        where = "PANOPTICON_ENCRYPTION_KEY"
    else:
        path = Path(settings.home) / KEY_FILE
        raw = [read_or_create(path, Fernet.generate_key).decode()]
        where = str(path)
    try:
        return MultiFernet([Fernet(k.encode()) for k in raw])
    except (ValueError, TypeError):
        raise ConfigError(
            Issue(
                "not a valid encryption key (each key is 32 url-safe base64-encoded bytes)",
                field=where,
                hint="make one with `panopticon credentials new-key`",
            )
        ) from None


def _check_name(name: str) -> None:
    if not NAME.match(name):
        raise ConfigError(
            Issue(
                f"'{name[:50]}' is not a credential name",
                field="name",
                hint="use letters, digits, '_', '-' and '.', at most 100 characters",
            )
        )


class Credentials:
    """The credentials of one workspace."""

    def __init__(self, engine: Engine, workspace_id: int, settings: Settings) -> None:
        self.engine = engine
        self.ws = workspace_id
        self.settings = settings

    def set(self, name: str, secret: str) -> bool:
        """Store ``secret`` under ``name`` (replacing it); True when the name is new."""
        _check_name(name)
        secret = secret.strip()
        if not secret or len(secret) > MAX_SECRET or "\n" in secret:
            raise ConfigError(
                Issue(
                    "the secret must be one line of 1 to 10,000 characters",
                    field="secret",
                )
            )
        token = _cipher(self.settings).encrypt(secret.encode()).decode()
        with self.engine.begin() as conn:
            return queries.put_credential(conn, self.ws, name, token)

    def list(self) -> list[CredentialRow]:
        with self.engine.connect() as conn:
            return queries.list_credentials(conn, self.ws)

    def delete(self, name: str) -> None:
        from panopticon.services.catalog import ConflictError

        with self.engine.begin() as conn:
            users = queries.providers_using(conn, self.ws, name)
            if users:
                raise ConflictError(
                    Issue(
                        f"the credential '{name}' is used by the provider(s) {', '.join(users)}",
                        field="name",
                        hint="point them at another credential first (PATCH /api/providers)",
                    )
                )
            if not queries.delete_credential(conn, self.ws, name):
                raise NotFoundError(f"no credential '{name}' in this workspace")

    def secret(self, name: str) -> str | None:
        """The decrypted secret, None when there is no credential of that name."""
        from cryptography.fernet import InvalidToken

        with self.engine.connect() as conn:
            token = queries.token_of(conn, self.ws, name)
        if token is None:
            return None
        try:
            value: bytes = _cipher(self.settings).decrypt(token.encode())
        except InvalidToken:
            raise ConfigError(
                Issue(
                    f"the credential '{name}' cannot be decrypted: it was stored with another "
                    "encryption key",
                    field="credential",
                    hint="restore the key it was stored with (PANOPTICON_ENCRYPTION_KEY, or "
                    f"{KEY_FILE} in the home directory; list old keys after the new one to "
                    "rotate), or set the credential again",
                )
            ) from None
        return value.decode()


def rotate(engine: Engine, settings: Settings) -> int:
    """Re-encrypt every credential with the first key of PANOPTICON_ENCRYPTION_KEY;
    returns how many. Afterwards the old keys can be removed from the setting."""
    from cryptography.fernet import InvalidToken

    cipher = _cipher(settings)
    with engine.begin() as conn:
        rows = queries.all_tokens(conn)
        for credential_id, token in rows:
            try:
                fresh = cipher.rotate(token.encode()).decode()
            except InvalidToken:
                raise ConfigError(
                    Issue(
                        f"credential {credential_id} was stored with a key that is not in "
                        "PANOPTICON_ENCRYPTION_KEY",
                        field="PANOPTICON_ENCRYPTION_KEY",
                        hint="list every old key after the new one, then rotate",
                    )
                ) from None
            queries.replace_token(conn, credential_id, fresh)
    return len(rows)
