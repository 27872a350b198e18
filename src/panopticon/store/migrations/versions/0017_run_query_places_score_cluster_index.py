"""where a run read each query; an index for the dashboard's clustered intervals

run_query keeps the file and line each query of a run came from, so that messages name a
query by its dataset id and place instead of its database id (issue 10). Runs made before
have no rows: their messages fall back to the dataset id or the start of the text.

ix_score_workspace_model_query lets the dashboard's per-query pass (its intervals are
clustered by query: store.queries.dashboard) read a model's scores in query order instead
of hashing or sorting every score; it holds every column that pass reads
(bench/bench_dashboard_intervals.py).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 07:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_query",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.Integer(), nullable=False),
        sa.Column("file", sa.String(length=1000), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["query_id"],
            ["query.id"],
            name=op.f("fk_run_query_query_id_query"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["run.id"], name=op.f("fk_run_query_run_id_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "query_id", name=op.f("pk_run_query")),
    )
    with op.batch_alter_table("score", schema=None) as batch_op:
        batch_op.create_index(
            "ix_score_workspace_model_query",
            ["workspace_id", "model_id", "query_id", "metric_id", "normalized", "passed"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("score", schema=None) as batch_op:
        batch_op.drop_index("ix_score_workspace_model_query")
    op.drop_table("run_query")
