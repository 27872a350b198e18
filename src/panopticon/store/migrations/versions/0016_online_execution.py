"""online evaluation execution: the inbox of new spans, the ledger's queue columns, and the
rule version on scores

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 06:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "online_inbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("span_id", sa.String(length=16), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_online_inbox")),
    )
    with op.batch_alter_table("online_outcome", schema=None) as batch_op:
        batch_op.add_column(sa.Column("segment", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("job_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_online_outcome_waiting", ["outcome", "priority", "id"], unique=False
        )
        batch_op.create_index(
            "ix_online_outcome_dedup", ["workspace_id", "dedup_key"], unique=False
        )
    with op.batch_alter_table("online_outcome", schema=None) as batch_op:
        batch_op.alter_column("priority", server_default=None)
    with op.batch_alter_table("score", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rule_version", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("score", schema=None) as batch_op:
        batch_op.drop_column("rule_version")
    with op.batch_alter_table("online_outcome", schema=None) as batch_op:
        batch_op.drop_index("ix_online_outcome_dedup")
        batch_op.drop_index("ix_online_outcome_waiting")
        batch_op.drop_column("job_id")
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("not_before")
        batch_op.drop_column("priority")
        batch_op.drop_column("segment")
    op.drop_table("online_inbox")
