"""Jobs: long work requested through the API (evaluating a theme), durable and resumable.

A job row is written before anything runs. The API process runs jobs in the background,
and at start-up it takes up every job left queued or running (a crash, a restart): the job
resumes its run, so answers already stored are not paid for again. Progress is read from
the run's stored results, so it is exact whatever happened to the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from panopticon.errors import ConfigError, Issue, NotFoundError, PanopticonError
from panopticon.evaluation.endpoints import Access
from panopticon.evaluation.sources import Located
from panopticon.evaluation.suite import LoadedSuite, parse_suite
from panopticon.services.evaluate import build_suite, expand_registered_models
from panopticon.services.registry import ModelRegistry
from panopticon.services.runs import prepare_loaded, read_totals
from panopticon.settings import Settings
from panopticon.store.engine import Engine
from panopticon.store.queries import runs as run_queries
from panopticon.store.tables import Job, JobShard, Query, Result, Run, Workspace

__all__ = ["JobRunner", "create_suite_job", "create_theme_job", "job_status", "suite_from_body"]

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _theme_rows(engine: Engine, workspace_id: int, body: dict[str, Any]) -> list[Any]:
    """The theme's queries: those recorded when the job was created (so that queries
    added later do not change a job half done), else the theme's current ones."""
    q = sa.select(Query).where(Query.c.workspace_id == workspace_id).order_by(Query.c.id)
    if body.get("query_ids") is not None:
        q = q.where(Query.c.id.in_(body["query_ids"]))
    else:
        q = q.where(Query.c.theme == body["theme"])
        if body.get("limit"):
            q = q.limit(body["limit"])
    with engine.connect() as conn:
        return list(conn.execute(q))


def _suite_of(
    engine: Engine,
    workspace_id: int,
    settings: Settings,
    env: Mapping[str, str],
    body: dict[str, Any],
    rows: list[Any],
) -> LoadedSuite:
    """The suite a theme evaluation runs over these query rows."""
    if not rows:
        raise ConfigError(
            Issue(
                f"no queries with the theme '{body['theme']}' in this workspace",
                field="theme",
                hint="store some with POST /api/queries",
            )
        )
    queries = [
        {
            "text": r.text,
            "theme": r.theme,
            "expected": r.expected,
            "context": r.context,
            "metadata": r.metadata or {},
            "id": r.external_id,
        }
        for r in rows
    ]
    return build_suite(
        engine,
        workspace_id,
        settings,
        env,
        name=f"api: theme {body['theme']}",
        model_id=body["model_id"],
        metric_ids=body.get("evaluation_prompt_ids", []),
        judge_model=body.get("judge_model"),
        queries=queries,
    )


def _record_job(engine: Engine, workspace_id: int, kind: str, payload: dict[str, Any]) -> int:
    """The job row, written before anything runs (a restart takes it up)."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                sa.insert(Job)
                .values(
                    workspace_id=workspace_id,
                    kind=kind,
                    status="queued",
                    payload=payload,
                    created_at=_now(),
                )
                .returning(Job.c.id)
            ).scalar_one()
        )


def theme_suite(
    engine: Engine,
    workspace_id: int,
    settings: Settings,
    env: Mapping[str, str],
    body: dict[str, Any],
) -> LoadedSuite:
    """The suite a theme evaluation runs: the theme's queries (up to ``limit``)."""
    rows = _theme_rows(engine, workspace_id, body)
    return _suite_of(engine, workspace_id, settings, env, body, rows)


def create_theme_job(
    engine: Engine,
    workspace_id: int,
    settings: Settings,
    env: Mapping[str, str],
    body: dict[str, Any],
) -> int:
    """Validate now (models, metrics, the theme's queries), then record the job with the
    queries it evaluates."""
    rows = _theme_rows(engine, workspace_id, body)
    _suite_of(engine, workspace_id, settings, env, body, rows)
    ids = [int(r.id) for r in rows]
    return _record_job(engine, workspace_id, "evaluate_theme", {**body, "query_ids": ids})


def suite_from_body(
    engine: Engine,
    workspace_id: int,
    settings: Settings,
    env: Mapping[str, str],
    body: dict[str, Any],
) -> LoadedSuite:
    """A suite sent over the API. Its queries must be inline: the server's files are not
    the caller's to read. Its models name registered models (a string: the model's id) or
    registered providers, never a variable of the server's environment or, unless the
    operator allows it, an endpoint of their own (:mod:`panopticon.evaluation.endpoints`)."""
    for i, q in enumerate(body.get("queries") or []):
        if isinstance(q, dict) and "file" in q:
            raise ConfigError(
                Issue(
                    "a suite sent to the API cannot read files on the server",
                    field=f"suite.queries[{i}].file",
                    hint="send the queries inline",
                )
            )
    for i, m in enumerate(body.get("metrics") or []):
        if isinstance(m, dict) and "schema_file" in m:
            raise ConfigError(
                Issue(
                    "a suite sent to the API cannot read files on the server",
                    field=f"suite.metrics[{i}].schema_file",
                    hint="give the schema inline as 'schema'",
                )
            )
    registry = ModelRegistry(engine, workspace_id, settings)
    body, registered = expand_registered_models(registry, body)
    return parse_suite(
        Located(body, {}, "suite"),
        env,
        base_dir=Path.cwd(),
        access=Access.server(settings, registered=registered),
        directory=registry.directory,
    )


def create_suite_job(
    engine: Engine,
    workspace_id: int,
    settings: Settings,
    env: Mapping[str, str],
    suite: dict[str, Any],
) -> int:
    """Validate the whole suite now, then record the job that runs it."""
    suite_from_body(engine, workspace_id, settings, env, suite)
    return _record_job(engine, workspace_id, "run_suite", suite)


def job_status(engine: Engine, workspace_id: int, job_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        job = conn.execute(
            sa.select(Job).where(Job.c.id == job_id, Job.c.workspace_id == workspace_id)
        ).first()
        if job is None:
            raise NotFoundError(f"no job {job_id} in this workspace")
        done = failed = planned = 0
        if job.run_id is not None:
            planned = int(conn.scalar(sa.select(Run.c.planned).where(Run.c.id == job.run_id)) or 0)
            counts = conn.execute(
                sa.select(
                    sa.func.count().filter(Result.c.error.is_(None)),
                    sa.func.count().filter(Result.c.error.is_not(None)),
                ).where(Result.c.run_id == job.run_id)
            ).one()
            done, failed = int(counts[0]), int(counts[1])
        shards = [
            {"shard": r.shard, "status": r.status, "error": r.error}
            for r in conn.execute(
                sa.select(JobShard).where(JobShard.c.job_id == job_id).order_by(JobShard.c.shard)
            )
        ]
    payload = {k: v for k, v in job.payload.items() if k != "query_ids"}
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "run_id": job.run_id,
        "payload": payload,
        "done": done,
        "failed": failed,
        "total": planned,
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "shards": shards,
    }


# A slice smaller than this is not worth its start-up (loading and planning the suite)
MIN_QUERIES_PER_SHARD = 25

DeferShard = Callable[[int, int], Awaitable[None]]


class JobRunner:
    """Runs jobs: in the API process on SQLite (one at a time; each run is concurrent
    within itself), or in workers on PostgreSQL, where ``defer_shard`` splits a job over
    many queries into slices of its queries (shards) that any worker takes up, so that
    workers share one job. The last slice to finish writes the run's and the job's status.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        env: Mapping[str, str],
        *,
        defer_shard: DeferShard | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.env = env
        self.defer_shard = defer_shard
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        if self._task is not None and not self._task.done():
            return  # already running (a second lifespan on the same app)
        self._event_loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        with self.engine.connect() as conn:
            pending = (
                conn.execute(
                    sa.select(Job.c.id)
                    .where(Job.c.status.in_(("queued", "running")))
                    .order_by(Job.c.id)
                )
                .scalars()
                .all()
            )
        for job_id in pending:  # left by a crash or a restart: take them up again
            self._queue.put_nowait(job_id)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if self._event_loop is asyncio.get_running_loop():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        elif self._event_loop is not None and not self._event_loop.is_closed():
            self._event_loop.call_soon_threadsafe(task.cancel)

    def submit(self, job_id: int) -> None:
        """Queue a recorded job. Without a running loop (the server is not started) it stays
        queued in the database and is taken up at the next start."""
        if self._task is not None:
            self._queue.put_nowait(job_id)

    async def _loop(self) -> None:
        while True:
            job_id = await self._queue.get()
            try:
                await self.run(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # recorded on the job; the loop goes on
                log.exception("job %s failed", job_id)

    def _set(self, job_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(Job).where(Job.c.id == job_id).values(**values))

    def _suite(self, kind: str, workspace_id: int, body: dict[str, Any]) -> LoadedSuite:
        if kind == "run_suite":
            return suite_from_body(self.engine, workspace_id, self.settings, self.env, body)
        return theme_suite(self.engine, workspace_id, self.settings, self.env, body)

    async def run(self, job_id: int) -> str:
        with self.engine.connect() as conn:
            job = conn.execute(
                sa.select(Job, Workspace.c.name.label("workspace"))
                .join(Workspace, Workspace.c.id == Job.c.workspace_id)
                .where(Job.c.id == job_id)
            ).one()
        body = job.payload
        if job.run_id is not None:
            with self.engine.connect() as conn:
                run_status = conn.scalar(sa.select(Run.c.status).where(Run.c.id == job.run_id))
            if run_status == "completed":  # finished just before a crash: nothing to do
                self._set(job_id, status="completed", finished_at=_now())
                return "completed"
        if self.defer_shard is not None and self._shards(job_id):
            await self._defer_shards(job_id)  # a retried split: the slices are recorded
            return "running"
        self._set(job_id, status="running", started_at=_now(), error=None)
        try:
            loaded = self._suite(job.kind, job.workspace_id, body)
            scoped = self.settings.model_copy(update={"workspace": job.workspace})
            resume = str(job.run_id) if job.run_id is not None else None
            execution = prepare_loaded(scoped, self.engine, loaded, None, resume, True)
            self._set(job_id, run_id=execution.run_id)
            n = self._shard_count(len(loaded.queries))
            if self.defer_shard is not None and n > 1:
                self._record_shards(job_id, n)
                await self._defer_shards(job_id)
                return "running"
            status = await execution.run()
        except PanopticonError as exc:
            self._set(job_id, status="failed", error=str(exc), finished_at=_now())
            return "failed"
        final = "completed" if status == "completed" else "failed"
        self._set(
            job_id,
            status=final,
            finished_at=_now(),
            error=None if final == "completed" else execution.stop_reason,
        )
        return final

    # -- shards: one job shared by many workers ---------------------------------------

    def _shard_count(self, queries: int) -> int:
        return max(1, min(self.settings.job_shards, queries // MIN_QUERIES_PER_SHARD))

    def _shards(self, job_id: int) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(JobShard)
                    .where(JobShard.c.job_id == job_id)
                    .order_by(JobShard.c.shard)
                )
            )

    def _record_shards(self, job_id: int, n: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(JobShard),
                [{"job_id": job_id, "shard": k, "shards": n, "status": "queued"} for k in range(n)],
            )

    async def _defer_shards(self, job_id: int) -> None:
        """Queue every slice not yet done. Deferring twice is harmless: the queue holds one
        copy of a slice, a slice runs in one worker at a time, and a slice done is not run
        again."""
        assert self.defer_shard is not None
        for row in self._shards(job_id):
            if row.status not in ("completed", "failed"):
                await self.defer_shard(job_id, row.shard)

    async def run_shard(self, job_id: int, shard: int) -> str:
        """Run one slice of a job's run; the last slice to finish finishes the job."""
        with self.engine.connect() as conn:
            job = conn.execute(
                sa.select(Job, Workspace.c.name.label("workspace"))
                .join(Workspace, Workspace.c.id == Job.c.workspace_id)
                .where(Job.c.id == job_id)
            ).one()
            row = conn.execute(
                sa.select(JobShard).where(JobShard.c.job_id == job_id, JobShard.c.shard == shard)
            ).one()
        if row.status in ("completed", "failed"):  # a copy that ran already
            return str(row.status)
        self._set_shard(job_id, shard, status="running", started_at=_now(), error=None)
        try:
            loaded = self._suite(job.kind, job.workspace_id, job.payload)
            scoped = self.settings.model_copy(update={"workspace": job.workspace})
            execution = prepare_loaded(
                scoped, self.engine, loaded, None, str(job.run_id), True, (shard, row.shards)
            )
            status = await execution.run()
            error = execution.stop_reason
        except PanopticonError as exc:
            status, error = "failed", str(exc)
        if status == "interrupted":  # stopped, not done: it runs again (and resumes)
            self._set_shard(job_id, shard, status="queued", error=error)
            return status
        self._set_shard(job_id, shard, status=status, error=error, finished_at=_now())
        self._finish_if_last(job_id)
        return status

    def _set_shard(self, job_id: int, shard: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(JobShard)
                .where(JobShard.c.job_id == job_id, JobShard.c.shard == shard)
                .values(**values)
            )

    def _finish_if_last(self, job_id: int) -> None:
        """Under the job row's lock, so that exactly one slice (the last) writes the run's
        totals and status and the job's."""
        with self.engine.begin() as conn:
            job = conn.execute(
                sa.select(Job.c.status, Job.c.run_id).where(Job.c.id == job_id).with_for_update()
            ).one()
            shards = list(conn.execute(sa.select(JobShard).where(JobShard.c.job_id == job_id)))
            if job.status != "running" or any(
                r.status not in ("completed", "failed") for r in shards
            ):
                return
            planned = int(conn.scalar(sa.select(Run.c.planned).where(Run.c.id == job.run_id)) or 0)
        totals = read_totals(self.engine, job.run_id, planned)
        errors = [f"shard {r.shard}: {r.error}" for r in shards if r.error]
        if not errors and (totals.failed or totals.missing):
            errors = [f"{totals.failed} failed, {totals.missing} missing of {planned} answers"]
        status = "failed" if errors or totals.failed or totals.missing else "completed"
        reason = "; ".join(errors) or None
        with self.engine.begin() as conn:
            run_queries.finish_run(
                conn,
                job.run_id,
                status,
                reason,
                {k: getattr(totals, k) for k in totals.__dataclass_fields__},
            )
            conn.execute(
                sa.update(Job)
                .where(Job.c.id == job_id)
                .values(status=status, error=reason, finished_at=_now())
            )
