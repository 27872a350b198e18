"""prompt variants: a prompt table, and each result's prompt variant

A suite may list several prompts; each answer records the variant it was sent with: its id
in the suite and its content hash (the prompt table holds the text, once per content).
Existing results have none (NULL).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prompt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("system", sa.Text(), nullable=True),
        sa.Column("template", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name=op.f("fk_prompt_workspace_id_workspace")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt")),
        sa.UniqueConstraint(
            "workspace_id",
            "name",
            "content_hash",
            name=op.f("uq_prompt_workspace_id_name_content_hash"),
        ),
    )
    # two plain ADD COLUMNs: on SQLite a batch that rebuilt the result table would
    # cascade-delete its scores (foreign keys are on during migrations)
    op.add_column("result", sa.Column("prompt", sa.String(length=100), nullable=True))
    op.add_column("result", sa.Column("prompt_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("result", "prompt_hash")
    op.drop_column("result", "prompt")
    op.drop_table("prompt")
