"""Runs, their results (one answer each) and scores (one metric on one result)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from panopticon.store.tables.base import Base, JSONType, UTCDateTime, utcnow

__all__ = ["RUN_STATUSES", "Result", "Run", "Score"]

RUN_STATUSES = ("pending", "running", "completed", "failed", "interrupted", "stopped")


class Run(Base):
    __tablename__ = "run"
    __table_args__ = (sa.Index("ix_run_workspace_created", "workspace_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(sa.ForeignKey("workspace.id"))
    name: Mapped[str] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    stop_reason: Mapped[str | None] = mapped_column(sa.Text)
    suite: Mapped[dict[str, Any]] = mapped_column(JSONType)
    suite_fingerprint: Mapped[str] = mapped_column(sa.String(64))
    suite_path: Mapped[str | None] = mapped_column(sa.String(1000))
    planned: Mapped[int] = mapped_column(sa.Integer, default=0)
    totals: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    host: Mapped[str | None] = mapped_column(sa.String(200))
    pid: Mapped[int | None] = mapped_column(sa.Integer)


class Result(Base):
    """One answer for one (run, query, model, repeat), or the recorded failure to get it."""

    __tablename__ = "result"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "query_id", "model_id", "repeat"),
        sa.Index("ix_result_cache_key", "cache_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("run.id", ondelete="CASCADE"))
    query_id: Mapped[int] = mapped_column(sa.ForeignKey("query.id"))
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("model.id"))
    repeat: Mapped[int] = mapped_column(sa.Integer, default=0)
    cache_key: Mapped[str] = mapped_column(sa.String(64))
    request: Mapped[dict[str, Any]] = mapped_column(JSONType)
    response_text: Mapped[str | None] = mapped_column(sa.Text)
    finish_reason: Mapped[str | None] = mapped_column(sa.String(50))
    latency_ms: Mapped[float | None] = mapped_column(sa.Float)
    input_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    output_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    cost_usd: Mapped[float | None] = mapped_column(sa.Float)
    error: Mapped[str | None] = mapped_column(sa.Text)
    error_kind: Mapped[str | None] = mapped_column(sa.String(50))
    cached: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Score(Base):
    """One metric on one result. ``value`` on the metric's scale, ``normalized`` in 0..1."""

    __tablename__ = "score"
    __table_args__ = (
        sa.UniqueConstraint("result_id", "metric_id"),
        sa.Index("ix_score_run_metric", "run_id", "metric_id"),
        sa.Index("ix_score_judge_cache_key", "judge_cache_key"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("run.id", ondelete="CASCADE"))
    result_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("result.id", ondelete="CASCADE"))
    metric_id: Mapped[int] = mapped_column(sa.ForeignKey("metric.id"))
    value: Mapped[float | None] = mapped_column(sa.Float)
    normalized: Mapped[float | None] = mapped_column(sa.Float)
    passed: Mapped[bool | None] = mapped_column(sa.Boolean)
    reasoning: Mapped[str | None] = mapped_column(sa.Text)
    error: Mapped[str | None] = mapped_column(sa.Text)
    judge_model: Mapped[str | None] = mapped_column(sa.String(200))
    judge_output: Mapped[str | None] = mapped_column(sa.Text)
    judge_cache_key: Mapped[str | None] = mapped_column(sa.String(64))
    judge_input_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    judge_output_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    judge_cost_usd: Mapped[float | None] = mapped_column(sa.Float)
    judge_cached: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
