"""Production traces and their spans, and each workspace's trace settings.

On PostgreSQL both tables are partitioned by time (daily ranges, created ahead and dropped
after the retention by :mod:`panopticon.store.partitions`); on SQLite they are plain
tables. A span's partition key is its start; a trace's is ``bucket``, the UTC day it was
first filed under (a trace's start can move earlier when its root span arrives last, and a
row cannot change partition on update), so ``bucket`` is at or after the trace's first day
and at most a day after it.
"""

from __future__ import annotations

import sqlalchemy as sa

from panopticon.store.tables.base import JSONType, UTCDateTime, metadata

__all__ = ["POSTGRES_ONLY_INDEXES", "Span", "Trace", "TraceSettings", "postgresql_options"]

# made on PostgreSQL only (the migration and create_all agree; model comparisons skip them
# on SQLite)
POSTGRES_ONLY_INDEXES = ("ix_trace_tags_gin", "ix_trace_metadata_gin", "ix_trace_models_gin")

Trace = sa.Table(
    "trace",
    metadata,
    sa.Column("workspace_id", sa.Integer, nullable=False),
    sa.Column("id", sa.String(32), nullable=False),
    sa.Column("bucket", UTCDateTime, nullable=False),
    sa.Column("name", sa.String(500)),
    sa.Column("session_id", sa.String(200)),
    sa.Column("user_id", sa.String(200)),
    sa.Column("tenant_id", sa.String(200)),
    sa.Column("environment", sa.String(100)),
    sa.Column("release", sa.String(100)),
    sa.Column("tags", JSONType),
    sa.Column("metadata", JSONType),
    sa.Column("start_time", UTCDateTime, nullable=False),
    sa.Column("end_time", UTCDateTime, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("span_count", sa.Integer, nullable=False),
    sa.Column("error_count", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.Integer),
    sa.Column("output_tokens", sa.Integer),
    sa.Column("cost_usd", sa.Float),
    sa.Column("models", JSONType),
    # the trace's input and output: its root span's (else its first llm span's) last user
    # and assistant turns, or values
    sa.Column("input_text", sa.Text),
    sa.Column("output_text", sa.Text),
    # the text of its spans' inputs and outputs that input_text and output_text do not hold
    # (deduplicated, cut at MAX_SEARCH_TEXT; None for a one-turn call): the explorer's text
    # filter reads the three (store.text_index.searched_text; a pg_trgm index on PostgreSQL)
    sa.Column("search_text", sa.Text),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "id", "bucket"),
    # the explorer's list: newest first, by workspace; then its common filters. A session or
    # user filter is an equality, so their indexes leave out the traces without one (most
    # gateway calls): nothing to write for those (and on PostgreSQL: postgresql_options())
    sa.Index("ix_trace_workspace_start", "workspace_id", "start_time", "id"),
    sa.Index(
        "ix_trace_workspace_session",
        "workspace_id",
        "session_id",
        "start_time",
        sqlite_where=sa.text("session_id IS NOT NULL"),
    ),
    sa.Index(
        "ix_trace_workspace_user",
        "workspace_id",
        "user_id",
        "start_time",
        sqlite_where=sa.text("user_id IS NOT NULL"),
    ),
    sa.Index("ix_trace_workspace_latency", "workspace_id", "latency_ms"),
    sa.Index("ix_trace_workspace_cost", "workspace_id", "cost_usd"),
    sa.Index(
        "ix_trace_workspace_errors",
        "workspace_id",
        "start_time",
        sqlite_where=sa.text("status = 'error'"),  # and on PostgreSQL: postgresql_options()
    ),
    # tag, metadata and model filters are JSON containment on PostgreSQL (GIN indexes; the
    # tags' leaves out traces without tags); SQLite reads them with json_each, unindexed
    *(
        sa.Index(f"ix_trace_{column}_gin", column).ddl_if(dialect="postgresql")
        for column in ("tags", "metadata", "models")
    ),
    # on PostgreSQL partitioned by RANGE (bucket): postgresql_options()
)

Span = sa.Table(
    "span",
    metadata,
    sa.Column("workspace_id", sa.Integer, nullable=False),
    sa.Column("trace_id", sa.String(32), nullable=False),
    sa.Column("span_id", sa.String(16), nullable=False),
    sa.Column("start_time", UTCDateTime, nullable=False),
    sa.Column("parent_id", sa.String(16)),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("end_time", UTCDateTime, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("ttft_ms", sa.Float),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("model_requested", sa.String(200)),
    sa.Column("model_served", sa.String(200)),
    sa.Column("provider", sa.String(100)),
    sa.Column("input_messages", JSONType),
    sa.Column("output_messages", JSONType),
    sa.Column("input_value", sa.Text),
    sa.Column("output_value", sa.Text),
    sa.Column("documents", JSONType),
    sa.Column("input_tokens", sa.Integer),
    sa.Column("output_tokens", sa.Integer),
    sa.Column("cached_tokens", sa.Integer),
    sa.Column("reasoning_tokens", sa.Integer),
    sa.Column("cost_usd", sa.Float),
    sa.Column("cost_source", sa.String(20)),
    sa.Column("attributes", JSONType),
    sa.Column("events", JSONType),
    sa.PrimaryKeyConstraint("workspace_id", "trace_id", "span_id", "start_time"),
    # the explorer's span-kind filter (and the online backfill's walk). A span's model is read
    # by its key (scores' model filters and groupings): no index of its own
    sa.Index("ix_span_workspace_kind_start", "workspace_id", "kind", "start_time"),
    # on PostgreSQL partitioned by RANGE (start_time): postgresql_options()
)

# Per workspace: how long its traces are kept (None: the server's default) and whether
# personal data is redacted at ingest.
TraceSettings = sa.Table(
    "trace_settings",
    metadata,
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), primary_key=True),
    sa.Column("retention_days", sa.Integer),
    sa.Column("redact", sa.Boolean, nullable=False, default=False),
)


def postgresql_options() -> None:
    """PostgreSQL's options for these tables (partitioning, a partial index, GIN indexes),
    added when a PostgreSQL engine is made, as ``runs.postgresql_options`` explains."""
    Trace.dialect_options["postgresql"]["partition_by"] = "RANGE (bucket)"
    Span.dialect_options["postgresql"]["partition_by"] = "RANGE (start_time)"
    partial = {
        "ix_trace_workspace_errors": "status = 'error'",
        "ix_trace_workspace_session": "session_id IS NOT NULL",
        "ix_trace_workspace_user": "user_id IS NOT NULL",
        "ix_trace_tags_gin": "tags IS NOT NULL",
    }
    for index in Trace.indexes:
        if index.name in partial:
            index.dialect_options["postgresql"]["where"] = sa.text(partial[index.name])
        if index.name in POSTGRES_ONLY_INDEXES:
            index.dialect_options["postgresql"]["using"] = "gin"
