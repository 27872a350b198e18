"""Providers and models: the model registry."""

from __future__ import annotations

import sqlalchemy as sa

from panopticon.store.tables.base import JSONType, UTCDateTime, created_at, metadata, utcnow

__all__ = ["Credential", "Model", "Provider", "RateLimit"]

# An endpoint of some kind, and the key it is called with: a credential of the workspace
# (by name) or an operator-allowed environment variable (api_key_env). Never a key itself.
Provider = sa.Table(
    "provider",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("base_url", sa.String(500)),
    sa.Column("api_key_env", sa.String(200)),
    sa.Column("credential", sa.String(200)),
    sa.Column("options", JSONType, nullable=False, default=dict),
    created_at(),
    sa.UniqueConstraint("workspace_id", "name"),
)

# A provider key of a workspace, set by its admins: Fernet-encrypted with the operator's key
# (services/credentials.py), never returned, logged or shown.
Credential = sa.Table(
    "credential",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("secret", sa.Text, nullable=False),  # a Fernet token
    created_at(),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    sa.UniqueConstraint("workspace_id", "name"),
)

# A model as a suite names it, with the settings last used and its price. ``origin`` says
# who wrote it: "registry" (an admin registered it; suites use it, never change it) or
# "suite" (a suite's inline definition; later suites may update it).
MODEL_ORIGINS = ("registry", "suite")
Model = sa.Table(
    "model",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), nullable=False),
    sa.Column("provider_id", sa.ForeignKey("provider.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("provider_model", sa.String(200), nullable=False),
    sa.Column("settings", JSONType, nullable=False, default=dict),
    sa.Column("price_input", sa.Float),
    sa.Column("price_output", sa.Float),
    sa.Column("origin", sa.String(20), nullable=False, server_default="suite"),
    created_at(),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    sa.UniqueConstraint("workspace_id", "name"),
)

# A provider's RPM or TPM allowance, shared by every process on this store (store/limits.py).
# Not per workspace: a provider's limits belong to its account, whoever spends them.
RateLimit = sa.Table(
    "rate_limit",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("per_minute", sa.Float, nullable=False),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("updated_s", sa.Float, nullable=False),  # the database's clock, epoch seconds
)
