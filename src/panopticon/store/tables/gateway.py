"""The gateway: its keys (with their limits, guardrails and cache settings) and the spend
counters that enforce USD budgets across every replica."""

from __future__ import annotations

import sqlalchemy as sa

from panopticon.store.tables.base import JSONType, UTCDateTime, created_at, metadata

__all__ = ["GatewayKey", "GatewaySpend"]

# Only a SHA-256 of the key is stored; the key itself is shown once, when created.
# ``config`` holds the key's settings (services/gateway_keys.py: GatewayKeyConfig).
GatewayKey = sa.Table(
    "gateway_key",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("config", JSONType, nullable=False, default=dict),
    created_at(),
    sa.Column("revoked_at", UTCDateTime),
    sa.Index("ix_gateway_key_workspace", "workspace_id"),
)

# USD spent by one scope (a key or a model) in one period (a UTC day or month), added to
# with one atomic upsert per flush, so every replica sees every other's spend.
GatewaySpend = sa.Table(
    "gateway_spend",
    metadata,
    sa.Column("key", sa.String(120), primary_key=True),
    sa.Column("spent_usd", sa.Float, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
