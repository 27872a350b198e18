"""Queries, metrics and datasets: what is evaluated, and how."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from panopticon.store.tables.base import Base, JSONType, UTCDateTime, utcnow

__all__ = ["Dataset", "DatasetItem", "Metric", "Query"]


class Query(Base):
    """A prompt with its theme. The same content in a workspace is stored once."""

    __tablename__ = "query"
    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "content_hash"),
        sa.Index("ix_query_workspace_theme", "workspace_id", "theme"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(sa.ForeignKey("workspace.id"))
    text: Mapped[str] = mapped_column(sa.Text)
    messages: Mapped[list[dict[str, str]]] = mapped_column(JSONType)
    theme: Mapped[str] = mapped_column(sa.String(200), default="default")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    expected: Mapped[str | None] = mapped_column(sa.Text)
    context: Mapped[str | None] = mapped_column(sa.Text)
    external_id: Mapped[str | None] = mapped_column(sa.String(200))
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Metric(Base):
    """A metric definition. A changed definition is a new version (a new row)."""

    __tablename__ = "metric"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(sa.ForeignKey("workspace.id"))
    name: Mapped[str] = mapped_column(sa.String(200))
    type: Mapped[str] = mapped_column(sa.String(50))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    version: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Dataset(Base):
    __tablename__ = "dataset"
    __table_args__ = (sa.UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(sa.ForeignKey("workspace.id"))
    name: Mapped[str] = mapped_column(sa.String(200))
    source: Mapped[str | None] = mapped_column(sa.String(1000))
    description: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DatasetItem(Base):
    __tablename__ = "dataset_item"
    __table_args__ = (sa.UniqueConstraint("dataset_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("dataset.id", ondelete="CASCADE"))
    query_id: Mapped[int] = mapped_column(sa.ForeignKey("query.id"))
    position: Mapped[int] = mapped_column(sa.Integer)
