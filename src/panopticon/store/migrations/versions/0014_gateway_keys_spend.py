"""gateway keys and spend counters

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 17:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_gateway_key_workspace_id_workspace"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_gateway_key_key_hash")),
    )
    with op.batch_alter_table("gateway_key", schema=None) as batch_op:
        batch_op.create_index("ix_gateway_key_workspace", ["workspace_id"], unique=False)
    op.create_table(
        "gateway_spend",
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("spent_usd", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_gateway_spend")),
    )


def downgrade() -> None:
    op.drop_table("gateway_spend")
    with op.batch_alter_table("gateway_key", schema=None) as batch_op:
        batch_op.drop_index("ix_gateway_key_workspace")
    op.drop_table("gateway_key")
