"""Providers and models: the model registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from panopticon.store.tables.base import Base, JSONType, UTCDateTime, utcnow

__all__ = ["Model", "Provider"]


class Provider(Base):
    """An endpoint of some kind. Credentials are named (api_key_env), never stored here."""

    __tablename__ = "provider"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(sa.ForeignKey("workspace.id"))
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(50))
    base_url: Mapped[str | None] = mapped_column(sa.String(500))
    api_key_env: Mapped[str | None] = mapped_column(sa.String(200))
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Model(Base):
    """A model as a suite names it, with the settings last used and its price."""

    __tablename__ = "model"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(sa.ForeignKey("workspace.id"))
    provider_id: Mapped[int] = mapped_column(sa.ForeignKey("provider.id"))
    name: Mapped[str] = mapped_column(sa.String(200))
    provider_model: Mapped[str] = mapped_column(sa.String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    price_input: Mapped[float | None] = mapped_column(sa.Float)
    price_output: Mapped[float | None] = mapped_column(sa.Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
