"""traces and spans (partitioned by day on PostgreSQL), trace settings; scores and
annotations about a trace or span; API keys limited to ingestion

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-02 18:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from panopticon.store.tables.base import JSONType, UTCDateTime

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trace",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("bucket", UTCDateTime(), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=True),
        sa.Column("session_id", sa.String(length=200), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("tenant_id", sa.String(length=200), nullable=True),
        sa.Column("environment", sa.String(length=100), nullable=True),
        sa.Column("release", sa.String(length=100), nullable=True),
        sa.Column("tags", JSONType(), nullable=True),
        sa.Column("metadata", JSONType(), nullable=True),
        sa.Column("start_time", UTCDateTime(), nullable=False),
        sa.Column("end_time", UTCDateTime(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("span_count", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("models", JSONType(), nullable=True),
        sa.Column("input_text", sa.Text(), nullable=True),
        sa.Column("output_text", sa.Text(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id", "bucket", name=op.f("pk_trace")),
        postgresql_partition_by="RANGE (bucket)",
    )
    with op.batch_alter_table("trace", schema=None) as batch_op:
        batch_op.create_index("ix_trace_workspace_start", ["workspace_id", "start_time", "id"])
        batch_op.create_index(
            "ix_trace_workspace_session", ["workspace_id", "session_id", "start_time"]
        )
        batch_op.create_index("ix_trace_workspace_user", ["workspace_id", "user_id", "start_time"])
        batch_op.create_index("ix_trace_workspace_latency", ["workspace_id", "latency_ms"])
        batch_op.create_index("ix_trace_workspace_cost", ["workspace_id", "cost_usd"])
        batch_op.create_index(
            "ix_trace_workspace_errors",
            ["workspace_id", "start_time"],
            postgresql_where=sa.text("status = 'error'"),
            sqlite_where=sa.text("status = 'error'"),
        )
    if op.get_bind().dialect.name == "postgresql":
        for column in ("tags", "metadata", "models"):
            op.create_index(f"ix_trace_{column}_gin", "trace", [column], postgresql_using="gin")

    op.create_table(
        "span",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("span_id", sa.String(length=16), nullable=False),
        sa.Column("start_time", UTCDateTime(), nullable=False),
        sa.Column("parent_id", sa.String(length=16), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("end_time", UTCDateTime(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("model_requested", sa.String(length=200), nullable=True),
        sa.Column("model_served", sa.String(length=200), nullable=True),
        sa.Column("provider", sa.String(length=100), nullable=True),
        sa.Column("input_messages", JSONType(), nullable=True),
        sa.Column("output_messages", JSONType(), nullable=True),
        sa.Column("input_value", sa.Text(), nullable=True),
        sa.Column("output_value", sa.Text(), nullable=True),
        sa.Column("documents", JSONType(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cached_tokens", sa.Integer(), nullable=True),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("cost_source", sa.String(length=20), nullable=True),
        sa.Column("attributes", JSONType(), nullable=True),
        sa.Column("events", JSONType(), nullable=True),
        sa.PrimaryKeyConstraint(
            "workspace_id", "trace_id", "span_id", "start_time", name=op.f("pk_span")
        ),
        postgresql_partition_by="RANGE (start_time)",
    )
    with op.batch_alter_table("span", schema=None) as batch_op:
        batch_op.create_index(
            "ix_span_workspace_kind_start", ["workspace_id", "kind", "start_time"]
        )
        batch_op.create_index(
            "ix_span_workspace_model_start", ["workspace_id", "model_served", "start_time"]
        )
    if op.get_bind().dialect.name == "postgresql":
        for table in ("trace", "span"):
            op.execute(f"CREATE TABLE IF NOT EXISTS {table}_default PARTITION OF {table} DEFAULT")

    op.create_table(
        "trace_settings",
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("redact", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_trace_settings_workspace_id_workspace"),
        ),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_trace_settings")),
    )

    with op.batch_alter_table("score", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trace_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("span_id", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("source", sa.String(length=20), server_default="run", nullable=False)
        )
        batch_op.add_column(sa.Column("label", sa.String(length=200), nullable=True))
        batch_op.alter_column("run_id", existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column("result_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.create_index("ix_score_workspace_trace", ["workspace_id", "trace_id"])

    with op.batch_alter_table("annotation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trace_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("span_id", sa.String(length=16), nullable=True))
        batch_op.alter_column("result_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.create_index("ix_annotation_workspace_trace", ["workspace_id", "trace_id"])

    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_column("scope")
    op.execute("DELETE FROM annotation WHERE result_id IS NULL")
    with op.batch_alter_table("annotation", schema=None) as batch_op:
        batch_op.drop_index("ix_annotation_workspace_trace")
        batch_op.alter_column("result_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_column("span_id")
        batch_op.drop_column("trace_id")
    op.execute("DELETE FROM score WHERE result_id IS NULL")
    with op.batch_alter_table("score", schema=None) as batch_op:
        batch_op.drop_index("ix_score_workspace_trace")
        batch_op.alter_column("result_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.alter_column("run_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("label")
        batch_op.drop_column("source")
        batch_op.drop_column("span_id")
        batch_op.drop_column("trace_id")
    op.drop_table("trace_settings")
    op.drop_table("span")
    op.drop_table("trace")
