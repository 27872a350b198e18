"""Runs, their results (one answer each) and scores (one metric on one result)."""

from __future__ import annotations

import sqlalchemy as sa

from panopticon.store.tables.base import JSONType, UTCDateTime, created_at, metadata

__all__ = [
    "RUN_STATUSES",
    "SCORE_SOURCES",
    "Annotation",
    "Job",
    "JobShard",
    "Pairwise",
    "Result",
    "Run",
    "RunQuery",
    "Score",
    "postgresql_options",
]

RUN_STATUSES = ("pending", "running", "completed", "failed", "interrupted", "stopped")

Run = sa.Table(
    "run",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, default="pending"),
    sa.Column("stop_reason", sa.Text),
    sa.Column("suite", JSONType, nullable=False),
    sa.Column("suite_fingerprint", sa.String(64), nullable=False),
    sa.Column("suite_path", sa.String(1000)),
    sa.Column("planned", sa.Integer, nullable=False, default=0),
    sa.Column("totals", JSONType, nullable=False, default=dict),
    created_at(),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("heartbeat_at", UTCDateTime),
    sa.Column("host", sa.String(200)),
    sa.Column("pid", sa.Integer),
    sa.Index("ix_run_workspace_created", "workspace_id", "created_at"),
)

# Where a run read each of its queries: the file (the suite, or a dataset file; an absolute
# path) and the line. A query's content is stored once per workspace, so its place belongs
# to the run; messages name a query by its dataset id and this place, which a person can
# find, never by its database id.
RunQuery = sa.Table(
    "run_query",
    metadata,
    sa.Column("run_id", sa.ForeignKey("run.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("query_id", sa.ForeignKey("query.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("file", sa.String(1000), nullable=False),
    sa.Column("line", sa.Integer, nullable=False),
)

# One answer for one (run, query, model, repeat), or the recorded failure to get it. With
# prompt variants, the "model" is the model with a prompt (a model row named model@prompt).
Result = sa.Table(
    "result",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("run_id", sa.ForeignKey("run.id", ondelete="CASCADE"), nullable=False),
    sa.Column("query_id", sa.ForeignKey("query.id"), nullable=False),
    sa.Column("model_id", sa.ForeignKey("model.id"), nullable=False),
    sa.Column("repeat", sa.Integer, nullable=False, default=0),
    sa.Column("cache_key", sa.String(64), nullable=False),
    sa.Column("request", JSONType, nullable=False),
    sa.Column("response_text", sa.Text),
    sa.Column("finish_reason", sa.String(50)),
    sa.Column("latency_ms", sa.Float),
    sa.Column("input_tokens", sa.Integer),
    sa.Column("output_tokens", sa.Integer),
    sa.Column("cost_usd", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("error_kind", sa.String(50)),
    sa.Column("cached", sa.Boolean, nullable=False, default=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    # the prompt variant's id in the suite and its content hash (the prompt table holds its
    # text); NULL for a suite without prompts
    sa.Column("prompt", sa.String(100)),
    sa.Column("prompt_hash", sa.String(64)),
    created_at(),
    sa.UniqueConstraint("run_id", "query_id", "model_id", "repeat"),
    sa.Index("ix_result_cache_key", "cache_key"),
    sa.Index("ix_result_query", "query_id"),
    sa.Index("ix_result_model", "model_id"),
    # the latest failures, for the dashboard: a small index, failures only
    sa.Index(
        "ix_result_failed_created",
        "created_at",
        sqlite_where=sa.text("error IS NOT NULL"),  # and on PostgreSQL: postgresql_options()
    ),
)


def postgresql_options() -> None:
    """PostgreSQL's own index options, added when a PostgreSQL engine is made: naming them
    in the table definitions would import SQLAlchemy's PostgreSQL dialect (about 0.1 s of
    start-up) in every process, SQLite ones included."""
    from panopticon.store.tables import traces

    (failed,) = [i for i in Result.indexes if i.name == "ix_result_failed_created"]
    failed.dialect_options["postgresql"]["where"] = sa.text("error IS NOT NULL")
    traces.postgresql_options()


# SCORE_SOURCES: where a score came from (ingest.model.SCORE_SOURCES says the same).
SCORE_SOURCES = ("run", "online", "guardrail", "human", "api")

# One metric on one subject: a run's result, or a production trace or span (trace_id, with
# span_id for a span). ``value`` on the metric's scale, ``normalized`` in 0..1.
Score = sa.Table(
    "score",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("run_id", sa.ForeignKey("run.id", ondelete="CASCADE")),
    sa.Column("result_id", sa.ForeignKey("result.id", ondelete="CASCADE")),
    sa.Column("trace_id", sa.String(32)),
    sa.Column("span_id", sa.String(16)),
    sa.Column("source", sa.String(20), nullable=False, server_default="run"),
    sa.Column("label", sa.String(200)),
    sa.Column("metric_id", sa.ForeignKey("metric.id"), nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("normalized", sa.Float),
    sa.Column("passed", sa.Boolean),
    sa.Column("reasoning", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("judge_model", sa.String(200)),
    sa.Column("judge_output", sa.Text),
    sa.Column("judge_cache_key", sa.String(64)),
    sa.Column("judge_input_tokens", sa.Integer),
    sa.Column("judge_output_tokens", sa.Integer),
    sa.Column("judge_cost_usd", sa.Float),
    sa.Column("judge_cached", sa.Boolean, nullable=False, default=False),
    # a panel's individual votes, a debate's rounds: {"votes": [...], ...}
    sa.Column("details", JSONType),
    # copied from the run and the result: dashboards and filters aggregate scores alone
    sa.Column("workspace_id", sa.ForeignKey("workspace.id")),
    sa.Column("model_id", sa.ForeignKey("model.id")),
    sa.Column("query_id", sa.ForeignKey("query.id")),
    # an online rule's score: the version of the rule that produced it
    sa.Column("rule_version", sa.String(16)),
    created_at(),
    sa.UniqueConstraint("result_id", "metric_id"),
    sa.Index("ix_score_run_metric", "run_id", "metric_id"),
    sa.Index("ix_score_judge_cache_key", "judge_cache_key"),
    # GET /api/judge/results: pages are newest first, filtered by run, metric, score
    sa.Index("ix_score_created", "created_at"),
    sa.Index("ix_score_run_created_id", "run_id", "created_at", "id"),
    sa.Index("ix_score_metric_created", "metric_id", "created_at"),
    sa.Index("ix_score_metric_value", "metric_id", "value"),
    sa.Index("ix_score_workspace_created_id", "workspace_id", "created_at", "id"),
    sa.Index("ix_score_workspace_model_metric", "workspace_id", "model_id", "metric_id"),
    # the dashboard's intervals cluster a model's scores by query (store.queries.dashboard):
    # in this order, with every column that pass reads, so that it reads the index alone
    sa.Index(
        "ix_score_workspace_model_query",
        "workspace_id",
        "model_id",
        "query_id",
        "metric_id",
        "normalized",
        "passed",
    ),
    sa.Index("ix_score_workspace_trace", "workspace_id", "trace_id"),
)

# One pairwise judgement: two models' answers to the same query, judged in both orders.
Pairwise = sa.Table(
    "pairwise",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("run_id", sa.ForeignKey("run.id", ondelete="CASCADE"), nullable=False),
    sa.Column("metric_id", sa.ForeignKey("metric.id"), nullable=False),
    sa.Column("query_id", sa.ForeignKey("query.id"), nullable=False),
    sa.Column("repeat", sa.Integer, nullable=False, default=0),
    sa.Column("model_a_id", sa.ForeignKey("model.id"), nullable=False),
    sa.Column("model_b_id", sa.ForeignKey("model.id"), nullable=False),
    sa.Column("result_a_id", sa.ForeignKey("result.id", ondelete="CASCADE"), nullable=False),
    sa.Column("result_b_id", sa.ForeignKey("result.id", ondelete="CASCADE"), nullable=False),
    # each order's verdict, in terms of a and b: "a", "b" or "tie"
    sa.Column("verdict_ab", sa.String(10)),
    sa.Column("verdict_ba", sa.String(10)),
    # "a" or "b" only when both orders agree; otherwise "tie"
    sa.Column("final", sa.String(10)),
    sa.Column("reasoning_ab", sa.Text),
    sa.Column("reasoning_ba", sa.Text),
    # the judge's raw answers and their cache keys: a later run reuses them, unpaid
    sa.Column("judge_key_ab", sa.String(64)),
    sa.Column("judge_output_ab", sa.Text),
    sa.Column("judge_key_ba", sa.String(64)),
    sa.Column("judge_output_ba", sa.Text),
    sa.Column("judge_model", sa.String(200)),
    sa.Column("judge_input_tokens", sa.Integer),
    sa.Column("judge_output_tokens", sa.Integer),
    sa.Column("judge_cost_usd", sa.Float),
    # every judge answer came from the cache: this judgement paid nothing
    sa.Column("judge_cached", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("error", sa.Text),
    created_at(),
    sa.UniqueConstraint("run_id", "metric_id", "query_id", "repeat", "model_a_id", "model_b_id"),
)

# A person's label on a result, or on a trace or span, for one metric: a score,
# pass/fail, or both.
Annotation = sa.Table(
    "annotation",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), nullable=False),
    sa.Column("result_id", sa.ForeignKey("result.id", ondelete="CASCADE")),
    sa.Column("trace_id", sa.String(32)),
    sa.Column("span_id", sa.String(16)),
    sa.Column("metric_id", sa.ForeignKey("metric.id"), nullable=False),
    sa.Column("annotator", sa.String(200), nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("passed", sa.Boolean),
    sa.Column("comment", sa.Text),
    sa.Column("source", sa.String(1000)),
    created_at(),
    sa.UniqueConstraint("result_id", "metric_id", "annotator"),
    sa.Index("ix_annotation_workspace_trace", "workspace_id", "trace_id"),
)

# Long work requested through the API (a theme evaluation): durable, resumable.
Job = sa.Table(
    "job",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("workspace_id", sa.ForeignKey("workspace.id"), nullable=False),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, default="queued"),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("run_id", sa.ForeignKey("run.id", ondelete="SET NULL")),
    sa.Column("error", sa.Text),
    created_at(),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Index("ix_job_status", "status"),
)

# A slice of a job's run (every n-th query), so that several workers share one job.
JobShard = sa.Table(
    "job_shard",
    metadata,
    sa.Column("job_id", sa.ForeignKey("job.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("shard", sa.Integer, primary_key=True),
    sa.Column("shards", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, default="queued"),
    sa.Column("error", sa.Text),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
)
