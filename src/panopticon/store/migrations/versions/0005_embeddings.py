"""embeddings

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 20:21:07.186280
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("metric", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "embedding",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("embedding_model", sa.String(length=200), nullable=True))

    with op.batch_alter_table("query", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "embedding",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("embedding_model", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("query", schema=None) as batch_op:
        batch_op.drop_column("embedding_model")
        batch_op.drop_column("embedding")

    with op.batch_alter_table("metric", schema=None) as batch_op:
        batch_op.drop_column("embedding_model")
        batch_op.drop_column("embedding")
