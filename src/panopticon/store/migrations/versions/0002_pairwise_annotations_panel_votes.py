"""pairwise annotations panel votes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:54:46.544987
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "annotation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Uuid(), nullable=False),
        sa.Column("metric_id", sa.Integer(), nullable=False),
        sa.Column("annotator", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["metric_id"], ["metric.id"], name=op.f("fk_annotation_metric_id_metric")
        ),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["result.id"],
            name=op.f("fk_annotation_result_id_result"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"], name=op.f("fk_annotation_workspace_id_workspace")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotation")),
        sa.UniqueConstraint(
            "result_id",
            "metric_id",
            "annotator",
            name=op.f("uq_annotation_result_id_metric_id_annotator"),
        ),
    )
    op.create_table(
        "pairwise",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("metric_id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.Integer(), nullable=False),
        sa.Column("repeat", sa.Integer(), nullable=False),
        sa.Column("model_a_id", sa.Integer(), nullable=False),
        sa.Column("model_b_id", sa.Integer(), nullable=False),
        sa.Column("result_a_id", sa.Uuid(), nullable=False),
        sa.Column("result_b_id", sa.Uuid(), nullable=False),
        sa.Column("verdict_ab", sa.String(length=10), nullable=True),
        sa.Column("verdict_ba", sa.String(length=10), nullable=True),
        sa.Column("final", sa.String(length=10), nullable=True),
        sa.Column("reasoning_ab", sa.Text(), nullable=True),
        sa.Column("reasoning_ba", sa.Text(), nullable=True),
        sa.Column("judge_key_ab", sa.String(length=64), nullable=True),
        sa.Column("judge_output_ab", sa.Text(), nullable=True),
        sa.Column("judge_key_ba", sa.String(length=64), nullable=True),
        sa.Column("judge_output_ba", sa.Text(), nullable=True),
        sa.Column("judge_model", sa.String(length=200), nullable=True),
        sa.Column("judge_input_tokens", sa.Integer(), nullable=True),
        sa.Column("judge_output_tokens", sa.Integer(), nullable=True),
        sa.Column("judge_cost_usd", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["metric_id"], ["metric.id"], name=op.f("fk_pairwise_metric_id_metric")
        ),
        sa.ForeignKeyConstraint(
            ["model_a_id"], ["model.id"], name=op.f("fk_pairwise_model_a_id_model")
        ),
        sa.ForeignKeyConstraint(
            ["model_b_id"], ["model.id"], name=op.f("fk_pairwise_model_b_id_model")
        ),
        sa.ForeignKeyConstraint(
            ["query_id"], ["query.id"], name=op.f("fk_pairwise_query_id_query")
        ),
        sa.ForeignKeyConstraint(
            ["result_a_id"],
            ["result.id"],
            name=op.f("fk_pairwise_result_a_id_result"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["result_b_id"],
            ["result.id"],
            name=op.f("fk_pairwise_result_b_id_result"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["run.id"], name=op.f("fk_pairwise_run_id_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pairwise")),
        sa.UniqueConstraint(
            "run_id",
            "metric_id",
            "query_id",
            "repeat",
            "model_a_id",
            "model_b_id",
            name=op.f("uq_pairwise_run_id_metric_id_query_id_repeat_model_a_id_model_b_id"),
        ),
    )
    with op.batch_alter_table("score", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "details",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("score", schema=None) as batch_op:
        batch_op.drop_column("details")

    op.drop_table("pairwise")
    op.drop_table("annotation")
