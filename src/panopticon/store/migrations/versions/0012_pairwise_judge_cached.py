"""pairwise: judge_cached, as on score

A pairwise judgement whose judge answers all came from the cache paid nothing: run totals
and budgets leave it out, as they leave out cached scores.

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-02 18:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pairwise", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("judge_cached", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("pairwise", schema=None) as batch_op:
        batch_op.drop_column("judge_cached")
