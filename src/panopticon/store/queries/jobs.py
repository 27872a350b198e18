"""Jobs and their slices (shards): record, claim, update, read progress.

A job row is both the record of the work asked for and, on SQLite, the queue itself: the
in-process runner claims ``queued`` rows. On PostgreSQL the row and its procrastinate job are
written in one transaction (see :func:`panopticon.worker.defer_in`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from panopticon.errors import StoreError
from panopticon.store.tables import Job, JobShard, Query, Result, Run, Workspace
from panopticon.store.tables.base import utcnow

__all__ = [
    "JobProgress",
    "JobRow",
    "ShardRow",
    "ThemeQuery",
    "claim_job",
    "find_job",
    "finish_job_if_last",
    "insert_job",
    "insert_job_with",
    "insert_shards",
    "job_progress",
    "pending_job_ids",
    "requeue_running_jobs",
    "run_status",
    "shards",
    "theme_query_rows",
    "update_job",
    "update_shard",
]


@dataclass(frozen=True)
class JobRow:
    id: int
    workspace_id: int
    workspace: str
    kind: str
    status: str
    payload: dict[str, Any]
    run_id: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class ShardRow:
    job_id: int
    shard: int
    shards: int
    status: str
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class JobProgress:
    planned: int
    done: int
    failed: int


_JOB_COLS = (*Job.c, Workspace.c.name.label("workspace"))


def insert_job(conn: Connection, workspace_id: int, kind: str, payload: dict[str, Any]) -> int:
    return int(
        conn.execute(
            sa.insert(Job)
            .values(
                workspace_id=workspace_id,
                kind=kind,
                status="queued",
                payload=payload,
                created_at=utcnow(),
            )
            .returning(Job.c.id)
        ).scalar_one()
    )


def insert_job_with(
    engine: Engine,
    workspace_id: int,
    kind: str,
    payload: dict[str, Any],
    enqueue: Callable[[Connection, int], None],
) -> int:
    """The job row, then ``enqueue(conn, job_id)`` on the same connection, in one
    transaction; a database error rolls both back and is a StoreError."""
    try:
        with engine.begin() as conn:
            job_id = insert_job(conn, workspace_id, kind, payload)
            enqueue(conn, job_id)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"could not record the job: {getattr(exc, 'orig', exc)}") from None
    return job_id


def find_job(conn: Connection, job_id: int, workspace_id: int | None = None) -> JobRow | None:
    q = sa.select(*_JOB_COLS).join(Workspace, Workspace.c.id == Job.c.workspace_id)
    q = q.where(Job.c.id == job_id)
    if workspace_id is not None:
        q = q.where(Job.c.workspace_id == workspace_id)
    row = conn.execute(q).first()
    return JobRow(**row._mapping) if row else None


def update_job(conn: Connection, job_id: int, **values: Any) -> None:
    conn.execute(sa.update(Job).where(Job.c.id == job_id).values(**values))


def claim_job(conn: Connection, job_id: int) -> bool:
    """Take a queued job (``running``); False when another runner took it first."""
    result = conn.execute(
        sa.update(Job)
        .where(Job.c.id == job_id, Job.c.status == "queued")
        .values(status="running", started_at=utcnow(), error=None)
    )
    return result.rowcount > 0


def pending_job_ids(conn: Connection, statuses: tuple[str, ...] = ("queued",)) -> list[int]:
    q = sa.select(Job.c.id).where(Job.c.status.in_(statuses)).order_by(Job.c.id)
    return [int(i) for i in conn.execute(q).scalars()]


def requeue_running_jobs(conn: Connection) -> int:
    """Jobs left ``running`` by a process that stopped go back to ``queued``."""
    return int(
        conn.execute(
            sa.update(Job).where(Job.c.status == "running").values(status="queued")
        ).rowcount
    )


def run_status(conn: Connection, run_id: int) -> str | None:
    status = conn.scalar(sa.select(Run.c.status).where(Run.c.id == run_id))
    return None if status is None else str(status)


def job_progress(conn: Connection, run_id: int | None) -> JobProgress:
    if run_id is None:
        return JobProgress(0, 0, 0)
    planned = int(conn.scalar(sa.select(Run.c.planned).where(Run.c.id == run_id)) or 0)
    counts = conn.execute(
        sa.select(
            sa.func.count().filter(Result.c.error.is_(None)),
            sa.func.count().filter(Result.c.error.is_not(None)),
        ).where(Result.c.run_id == run_id)
    ).one()
    return JobProgress(planned, int(counts[0]), int(counts[1]))


def shards(conn: Connection, job_id: int) -> list[ShardRow]:
    q = sa.select(JobShard).where(JobShard.c.job_id == job_id).order_by(JobShard.c.shard)
    return [ShardRow(**r._mapping) for r in conn.execute(q)]


def insert_shards(conn: Connection, job_id: int, n: int) -> None:
    conn.execute(
        sa.insert(JobShard),
        [{"job_id": job_id, "shard": k, "shards": n, "status": "queued"} for k in range(n)],
    )


def update_shard(conn: Connection, job_id: int, shard: int, **values: Any) -> None:
    conn.execute(
        sa.update(JobShard)
        .where(JobShard.c.job_id == job_id, JobShard.c.shard == shard)
        .values(**values)
    )


def finish_job_if_last(conn: Connection, job_id: int) -> tuple[int, int, list[ShardRow]] | None:
    """Under the job row's lock: (run id, planned, slices) when every slice is done and the
    job is still running, so that exactly one slice (the last) finishes the job."""
    job = conn.execute(
        sa.select(Job.c.status, Job.c.run_id).where(Job.c.id == job_id).with_for_update()
    ).one()
    rows = shards(conn, job_id)
    if job.status != "running" or any(r.status not in ("completed", "failed") for r in rows):
        return None
    planned = int(conn.scalar(sa.select(Run.c.planned).where(Run.c.id == job.run_id)) or 0)
    return int(job.run_id), planned, rows


@dataclass(frozen=True)
class ThemeQuery:
    id: int
    text: str
    theme: str
    expected: str | None
    context: str | None
    metadata: dict[str, Any]
    external_id: str | None


def theme_query_rows(
    conn: Connection,
    workspace_id: int,
    *,
    theme: str | None,
    query_ids: list[int] | None,
    limit: int | None,
) -> list[ThemeQuery]:
    """The queries of a theme job: those recorded when it was created, else the theme's."""
    q = sa.select(
        Query.c.id,
        Query.c.text,
        Query.c.theme,
        Query.c.expected,
        Query.c.context,
        Query.c.metadata,
        Query.c.external_id,
    ).where(Query.c.workspace_id == workspace_id)
    if query_ids is not None:
        q = q.where(Query.c.id.in_(query_ids))
    else:
        q = q.where(Query.c.theme == theme)
        if limit:
            q = q.limit(limit)
    return [
        ThemeQuery(**{**r._mapping, "metadata": r.metadata or {}})
        for r in conn.execute(q.order_by(Query.c.id))
    ]
