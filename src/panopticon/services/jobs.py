"""Jobs: long work requested through the API (running a suite, evaluating a theme), durable
and resumable.

A job row is written before anything runs, together with its queue entry (see
:mod:`panopticon.services.tasks`); a job kind is the name of the task that runs it. A job
resumes its run when it is taken up again (a crash, a restart, a retried worker), so answers
already stored are not paid for again. Progress is read from the run's stored results, so it
is exact whatever happened to the process. A job that fails for any reason is marked
``failed`` with its error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from panopticon.errors import ConfigError, Issue, NotFoundError, PanopticonError
from panopticon.evaluation.endpoints import Access
from panopticon.evaluation.sources import Located
from panopticon.evaluation.suite import LoadedSuite, parse_suite
from panopticon.services.evaluate import build_suite, expand_registered_models
from panopticon.services.registry import ModelRegistry
from panopticon.services.runs import prepare_loaded, read_totals, totals_of
from panopticon.services.tasks import TASKS, TaskContext
from panopticon.settings import Settings
from panopticon.store.engine import Engine
from panopticon.store.queries import jobs as q
from panopticon.store.queries import ledger as ledger_q
from panopticon.store.queries import runs as run_queries
from panopticon.store.queries.outcomes import run_counts
from panopticon.store.tables.base import utcnow

__all__ = [
    "JobRunner",
    "JobStatus",
    "ShardStatus",
    "create_suite_job",
    "create_theme_job",
    "job_status",
    "record_job",
    "record_job_with",
    "suite_from_body",
    "validate_suite_job",
    "validate_theme_job",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

# A slice smaller than this is not worth its start-up (loading and planning the suite)
MIN_QUERIES_PER_SHARD = 25


@dataclass(frozen=True)
class ShardStatus:
    shard: int
    status: str
    error: str | None


@dataclass(frozen=True)
class JobStatus:
    id: int
    kind: str
    status: str
    run_id: int | None
    payload: dict[str, Any]
    done: int
    failed: int
    total: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    shards: list[ShardStatus]
    # the cost so far: a backfill's judging, a run's answers and judgements (the priced
    # part; None when nothing is priced) beside the answers of unknown cost
    cost_usd: float | None = None
    unknown_cost: int = 0


# -- recording and reading jobs (sync: call from a thread, or a plain `def` route) -------------


def record_job(engine: Engine, workspace_id: int, kind: str, payload: dict[str, Any]) -> int:
    """The job row, ``queued`` (on SQLite the row is the queue entry itself)."""
    with engine.begin() as conn:
        return q.insert_job(conn, workspace_id, kind, payload)


def record_job_with(
    engine: Engine,
    workspace_id: int,
    kind: str,
    payload: dict[str, Any],
    enqueue: Callable[[Any, int], None],
) -> int:
    """The job row and its queue entry in one transaction: ``enqueue(connection, job_id)``
    writes the entry on the same connection, so either both are stored or neither (a
    database error is a StoreError)."""
    return q.insert_job_with(engine, workspace_id, kind, payload, enqueue)


def queued_jobs(engine: Engine) -> list[tuple[int, str]]:
    """(id, kind) of every job waiting to be taken, oldest first."""
    with engine.connect() as conn:
        ids = q.pending_job_ids(conn)
        rows = [q.find_job(conn, i) for i in ids]
    return [(r.id, r.kind) for r in rows if r is not None and r.status == "queued"]


def requeue_abandoned(engine: Engine) -> int:
    """At the start of the only runner (SQLite): jobs left running by a stopped process."""
    with engine.begin() as conn:
        return q.requeue_running_jobs(conn)


def _theme_rows(engine: Engine, workspace_id: int, body: Mapping[str, Any]) -> list[q.ThemeQuery]:
    """The theme's queries: those recorded when the job was created (so that queries
    added later do not change a job half done), else the theme's current ones."""
    with engine.connect() as conn:
        return q.theme_query_rows(
            conn,
            workspace_id,
            theme=body.get("theme"),
            query_ids=body.get("query_ids"),
            limit=body.get("limit"),
        )


def _suite_of(
    engine: Engine,
    workspace_id: int,
    settings: Settings,
    env: Mapping[str, str],
    body: Mapping[str, Any],
    rows: list[q.ThemeQuery],
) -> LoadedSuite:
    """The suite a theme evaluation runs over these queries."""
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
            "metadata": r.metadata,
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


def theme_suite(
    engine: Engine,
    workspace_id: int,
    settings: Settings,
    env: Mapping[str, str],
    body: Mapping[str, Any],
) -> LoadedSuite:
    """The suite a theme evaluation runs: the theme's queries (up to ``limit``)."""
    rows = _theme_rows(engine, workspace_id, body)
    return _suite_of(engine, workspace_id, settings, env, body, rows)


def validate_theme_job(
    engine: Engine,
    workspace_id: int,
    settings: Settings,
    env: Mapping[str, str],
    body: dict[str, Any],
) -> dict[str, Any]:
    """Validate now (models, metrics, the theme's queries); the job's payload, with the
    queries it evaluates."""
    rows = _theme_rows(engine, workspace_id, body)
    _suite_of(engine, workspace_id, settings, env, body, rows)
    return {**body, "query_ids": [r.id for r in rows]}


def create_theme_job(
    engine: Engine,
    workspace_id: int,
    settings: Settings,
    env: Mapping[str, str],
    body: dict[str, Any],
) -> int:
    """Validate, then record the job (queued; a runner takes it up)."""
    payload = validate_theme_job(engine, workspace_id, settings, env, body)
    return record_job(engine, workspace_id, "evaluate_theme", payload)


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
    for i, item in enumerate(body.get("queries") or []):
        if isinstance(item, dict) and "file" in item:
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


def validate_suite_job(
    engine: Engine,
    workspace_id: int,
    settings: Settings,
    env: Mapping[str, str],
    suite: dict[str, Any],
) -> dict[str, Any]:
    """Validate the whole suite now; the job's payload."""
    suite_from_body(engine, workspace_id, settings, env, suite)
    return suite


def create_suite_job(
    engine: Engine,
    workspace_id: int,
    settings: Settings,
    env: Mapping[str, str],
    suite: dict[str, Any],
) -> int:
    payload = validate_suite_job(engine, workspace_id, settings, env, suite)
    return record_job(engine, workspace_id, "run_suite", payload)


def job_status(engine: Engine, workspace_id: int, job_id: int) -> JobStatus:
    with engine.connect() as conn:
        job = q.find_job(conn, job_id, workspace_id)
        if job is None:
            raise NotFoundError(f"no job {job_id} in this workspace")
        progress = q.job_progress(conn, job.run_id)
        shards = q.shards(conn, job_id)
        cost: float | None = None
        unknown = 0
        if job.kind == "online_backfill":  # its progress is its ledger entries
            counts = ledger_q.job_counts(conn, job_id)
            progress = q.JobProgress(counts.selected, counts.done, counts.failed)
            cost = counts.cost_usd
        if job.run_id is not None:  # a run's job: what the run has cost so far
            totals = totals_of(run_counts(conn, job.run_id), progress.planned)
            cost, unknown = totals.cost_usd, totals.unknown_cost
    return JobStatus(
        id=job.id,
        kind=job.kind,
        status=job.status,
        run_id=job.run_id,
        payload={k: v for k, v in job.payload.items() if k != "query_ids"},
        done=progress.done,
        failed=progress.failed,
        total=progress.planned,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        shards=[ShardStatus(s.shard, s.status, s.error) for s in shards],
        cost_usd=cost,
        unknown_cost=unknown,
    )


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, PanopticonError) else f"{type(exc).__name__}: {exc}"


# -- running jobs ------------------------------------------------------------------------


class JobRunner:
    """Runs one job, or one slice of a job. With ``ctx.defer`` (workers on PostgreSQL) a job
    over many queries is split into slices of its queries (shards) that any worker takes
    up, so that workers share one job; the last slice to finish writes the run's and the
    job's status. Every database call runs in a thread: the event loop never waits on it.
    """

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.engine = ctx.engine
        self.settings = ctx.settings
        self.env = ctx.env

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def _set(self, job_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            q.update_job(conn, job_id, **values)

    def _find(self, job_id: int) -> q.JobRow | None:
        with self.engine.connect() as conn:
            return q.find_job(conn, job_id)

    def _run_status(self, run_id: int) -> str | None:
        with self.engine.connect() as conn:
            return q.run_status(conn, run_id)

    def _claim(self, job_id: int) -> bool:
        with self.engine.begin() as conn:
            return q.claim_job(conn, job_id)

    def _suite(self, kind: str, workspace_id: int, body: dict[str, Any]) -> LoadedSuite:
        if kind == "run_suite":
            return suite_from_body(self.engine, workspace_id, self.settings, self.env, body)
        return theme_suite(self.engine, workspace_id, self.settings, self.env, body)

    async def run(self, job_id: int) -> str:
        job = await self._db(self._find, job_id)
        if job is None:
            log.warning("job %s is not in the store; nothing to run", job_id)
            return "missing"
        if job.status in ("completed", "failed"):  # a copy that ran already
            return job.status
        run_status = None if job.run_id is None else await self._db(self._run_status, job.run_id)
        if run_status == "completed":  # finished just before a crash: nothing to do
            await self._db(lambda: self._set(job_id, status="completed", finished_at=utcnow()))
            return "completed"
        split: list[q.ShardRow] = (
            [] if self.ctx.defer is None else await self._db(self._shards, job_id)
        )
        if split:
            await self._defer_shards(job_id)  # a retried split: the slices are recorded
            return "running"
        if job.status == "queued" and not await self._db(self._claim, job_id):
            return "running"  # another runner took it
        if job.status == "running":  # retried after its worker stopped: it resumes
            await self._db(lambda: self._set(job_id, error=None))
        try:
            loaded = await self._db(self._suite, job.kind, job.workspace_id, job.payload)
            scoped = self.settings.model_copy(update={"workspace": job.workspace})
            resume = str(job.run_id) if job.run_id is not None else None
            execution = await self._db(
                prepare_loaded, scoped, self.engine, loaded, None, resume, True
            )
            await self._db(lambda: self._set(job_id, run_id=execution.run_id))
            n = self._shard_count(len(loaded.queries))
            if self.ctx.defer is not None and n > 1:
                await self._db(self._record_shards, job_id, n)
                await self._defer_shards(job_id)
                return "running"
            status = await execution.run()
        except asyncio.CancelledError:
            raise  # stopped: the job is taken up again (and resumes) at the next start
        except Exception as exc:  # failures are data: recorded on the job
            log.warning("job %s failed: %s", job_id, _describe(exc))
            error = _describe(exc)
            await self._db(
                lambda: self._set(job_id, status="failed", error=error, finished_at=utcnow())
            )
            return "failed"
        final = "completed" if status == "completed" else "failed"
        reason = None if final == "completed" else execution.stop_reason
        await self._db(lambda: self._set(job_id, status=final, finished_at=utcnow(), error=reason))
        return final

    # -- shards: one job shared by many workers ---------------------------------------

    def _shard_count(self, queries: int) -> int:
        return max(1, min(self.settings.job_shards, queries // MIN_QUERIES_PER_SHARD))

    def _shards(self, job_id: int) -> list[q.ShardRow]:
        with self.engine.connect() as conn:
            return q.shards(conn, job_id)

    def _record_shards(self, job_id: int, n: int) -> None:
        with self.engine.begin() as conn:
            q.insert_shards(conn, job_id, n)

    async def _defer_shards(self, job_id: int) -> None:
        """Queue every slice not yet done. Deferring twice is harmless: the queue holds one
        copy of a slice, a slice runs in one worker at a time, and a slice done is not run
        again."""
        assert self.ctx.defer is not None
        for row in await self._db(self._shards, job_id):
            if row.status not in ("completed", "failed"):
                await self.ctx.defer("run_shard", job_id=job_id, shard=row.shard)

    def _shard_row(self, job_id: int, shard: int) -> tuple[q.JobRow, q.ShardRow]:
        with self.engine.connect() as conn:
            job = q.find_job(conn, job_id)
            row = next((s for s in q.shards(conn, job_id) if s.shard == shard), None)
        if job is None or row is None:
            raise NotFoundError(f"no shard {shard} of job {job_id}")
        return job, row

    def _set_shard(self, job_id: int, shard: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            q.update_shard(conn, job_id, shard, **values)

    async def run_shard(self, job_id: int, shard: int) -> str:
        """Run one slice of a job's run; the last slice to finish finishes the job."""
        job, row = await self._db(self._shard_row, job_id, shard)
        if row.status in ("completed", "failed"):  # a copy that ran already
            return row.status
        await self._db(
            lambda: self._set_shard(
                job_id, shard, status="running", started_at=utcnow(), error=None
            )
        )
        error: str | None
        try:
            loaded = await self._db(self._suite, job.kind, job.workspace_id, job.payload)
            scoped = self.settings.model_copy(update={"workspace": job.workspace})
            execution = await self._db(
                prepare_loaded,
                scoped,
                self.engine,
                loaded,
                None,
                str(job.run_id),
                True,
                (shard, row.shards),
            )
            status = await execution.run()
            error = execution.stop_reason
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            status, error = "failed", _describe(exc)
        if status == "interrupted":  # stopped, not done: it runs again (and resumes)
            await self._db(lambda: self._set_shard(job_id, shard, status="queued", error=error))
            return status
        await self._db(
            lambda: self._set_shard(job_id, shard, status=status, error=error, finished_at=utcnow())
        )
        await self._db(self._finish_if_last, job_id)
        return status

    def _finish_if_last(self, job_id: int) -> None:
        """Under the job row's lock, so that exactly one slice (the last) writes the run's
        totals and status and the job's."""
        with self.engine.begin() as conn:
            last = q.finish_job_if_last(conn, job_id)
        if last is None:
            return
        run_id, planned, shards = last
        totals = read_totals(self.engine, run_id, planned)
        errors = [f"shard {r.shard}: {r.error}" for r in shards if r.error]
        if not errors and (totals.failed or totals.missing):
            errors = [f"{totals.failed} failed, {totals.missing} missing of {planned} answers"]
        status = "failed" if errors or totals.failed or totals.missing else "completed"
        reason = "; ".join(errors) or None
        with self.engine.begin() as conn:
            run_queries.finish_run(
                conn,
                run_id,
                status,
                reason,
                {k: getattr(totals, k) for k in totals.__dataclass_fields__},
            )
            q.update_job(conn, job_id, status=status, error=reason, finished_at=utcnow())


def _job_lock(kwargs: Mapping[str, Any]) -> str:
    return f"panopticon-job-{kwargs['job_id']}"


def _shard_lock(kwargs: Mapping[str, Any]) -> str:
    return f"panopticon-job-{kwargs['job_id']}-shard-{kwargs['shard']}"


@TASKS.task("run_suite", lock=_job_lock)
async def run_suite(ctx: TaskContext, job_id: int) -> str:
    """A suite sent to ``POST /api/runs``."""
    return await JobRunner(ctx).run(job_id)


@TASKS.task("evaluate_theme", lock=_job_lock)
async def evaluate_theme(ctx: TaskContext, job_id: int) -> str:
    """Every query of a theme (``POST /api/judge/evaluate/theme``)."""
    return await JobRunner(ctx).run(job_id)


@TASKS.task("run_shard", lock=_shard_lock)
async def run_shard(ctx: TaskContext, job_id: int, shard: int) -> str:
    """One slice of a large job (PostgreSQL workers)."""
    return await JobRunner(ctx).run_shard(job_id, shard)
