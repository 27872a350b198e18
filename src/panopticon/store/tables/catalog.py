"""Queries, metrics and datasets: what is evaluated, and how."""

from __future__ import annotations

import sqlalchemy as sa

from panopticon.store.tables.base import JSONType, created_at, metadata

__all__ = ["Dataset", "DatasetItem", "Metric", "Query"]

# A prompt with its theme. The same content in a workspace is stored once.
Query = sa.Table(
    "query",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("messages", JSONType, nullable=False),
    sa.Column("theme", sa.String(200), nullable=False, default="default"),
    sa.Column("metadata", JSONType, nullable=False, default=dict),
    sa.Column("expected", sa.Text),
    sa.Column("context", sa.Text),
    sa.Column("external_id", sa.String(200)),
    sa.Column("content_hash", sa.String(64), nullable=False),
    # for semantic search: the vector and the embedding model that made it
    sa.Column("embedding", JSONType),
    sa.Column("embedding_model", sa.String(200)),
    created_at(),
    sa.UniqueConstraint("workspace_id", "content_hash"),
    sa.Index("ix_query_workspace_theme", "workspace_id", "theme"),
)

# A metric definition. A changed definition is a new version (a new row).
Metric = sa.Table(
    "metric",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("type", sa.String(50), nullable=False),
    sa.Column("definition", JSONType, nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    # as the API stores them: a category (the design's "type") and free metadata
    sa.Column("category", sa.String(200)),
    sa.Column("metadata", JSONType),
    sa.Column("embedding", JSONType),
    sa.Column("embedding_model", sa.String(200)),
    created_at(),
    sa.UniqueConstraint("workspace_id", "name", "version"),
)

Dataset = sa.Table(
    "dataset",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("source", sa.String(1000)),
    sa.Column("description", sa.Text),
    created_at(),
    sa.UniqueConstraint("workspace_id", "name"),
)

DatasetItem = sa.Table(
    "dataset_item",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("dataset_id", sa.ForeignKey("dataset.id", ondelete="CASCADE"), nullable=False),
    sa.Column("query_id", sa.ForeignKey("query.id"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.UniqueConstraint("dataset_id", "position"),
)
