"""API keys: who may use a workspace, and how."""

from __future__ import annotations

import sqlalchemy as sa

from panopticon.store.tables.base import UTCDateTime, created_at, metadata

__all__ = ["ROLES", "ApiKey", "RevokedSession"]

ROLES = ("admin", "member", "viewer")

# Only a SHA-256 of the key is stored; the key itself is shown once, when created.
ApiKey = sa.Table(
    "api_key",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(20), nullable=False),
    created_at(),
    sa.Column("last_used_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
)

# Web sessions signed out before they expire: a signed cookie cannot be taken back, so its
# nonce is refused until the cookie would have expired anyway.
RevokedSession = sa.Table(
    "revoked_session",
    metadata,
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
)
