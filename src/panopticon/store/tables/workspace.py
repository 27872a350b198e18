"""Every other row belongs to one workspace."""

from __future__ import annotations

import sqlalchemy as sa

from panopticon.store.tables.base import created_at, metadata

__all__ = ["Workspace"]

Workspace = sa.Table(
    "workspace",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    created_at(),
)
