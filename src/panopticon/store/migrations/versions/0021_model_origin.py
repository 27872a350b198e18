"""model.origin: whether a model row was registered by an admin ('registry': the API, the
CLI's or the dashboard's registry) or by a suite that ran ('suite'). A suite may update the
models suites created, never a registered one.

Rows stored before cannot tell: they stay 'suite' (as they behaved until now); an admin
who registers such a model again makes it 'registry'.

Revision ID: 0021
Revises: 0019
Create Date: 2026-12-03 11:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("origin", sa.String(20), nullable=False, server_default="suite")
        )


def downgrade() -> None:
    with op.batch_alter_table("model", schema=None) as batch_op:
        batch_op.drop_column("origin")
