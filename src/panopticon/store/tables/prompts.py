"""Prompt variants of suites: a system prompt and a template, stored once per content."""

from __future__ import annotations

import sqlalchemy as sa

from panopticon.store.tables.base import created_at, metadata

__all__ = ["Prompt"]

# A prompt variant as a suite names it, one row per (name, content): a changed prompt is a
# new row, so every result keeps pointing at the exact text it was sent with. A later
# prompt registry (prompt, prompt_version) can adopt these rows by name and content hash.
Prompt = sa.Table(
    "prompt",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("system", sa.Text),
    sa.Column("template", sa.Text),
    created_at(),
    sa.UniqueConstraint("workspace_id", "name", "content_hash"),
)
