"""Distributed jobs on PostgreSQL through procrastinate.

The API records a job (services/jobs.py) and defers ``panopticon.run_job`` with its id;
any number of ``panopticon worker`` processes, on any machines, take jobs from the shared
queue and run them with the same ``JobRunner`` the single-process server uses. A job over
many queries is split into slices (``panopticon.run_shard``) so that several workers share
it. Each slice runs as a resumable part of the job's run, so a retried slice never pays
twice for an answer already stored.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

from panopticon.settings import Settings

__all__ = ["QUEUE", "QueueSubmitter", "build_app", "ensure_schema", "retry_stalled_jobs"]

QUEUE = "panopticon"


def conninfo(settings: Settings) -> str:
    url = settings.resolved_database_url
    return "postgresql://" + url.split("://", 1)[1]


def build_app(settings: Settings, env: Mapping[str, str], *, sync: bool = False) -> Any:
    """The procrastinate app, with the job task registered. ``sync``: a synchronous
    connector, for deferring from any thread (the API); workers use the async one."""
    import procrastinate

    connector = (
        procrastinate.SyncPsycopgConnector(conninfo=conninfo(settings))
        if sync
        else procrastinate.PsycopgConnector(conninfo=conninfo(settings))
    )
    app = procrastinate.App(connector=connector)

    @app.task(
        name="panopticon.run_job",
        queue=QUEUE,
        retry=procrastinate.RetryStrategy(max_attempts=5, wait=5),
    )
    async def run_job(job_id: int) -> str:
        from panopticon.services.jobs import JobRunner
        from panopticon.services.runs import open_store

        engine = open_store(settings)
        try:
            return await JobRunner(engine, settings, env, defer_shard=defer_shard).run(job_id)
        finally:
            engine.dispose()

    @app.task(
        name="panopticon.run_shard",
        queue=QUEUE,
        retry=procrastinate.RetryStrategy(max_attempts=5, wait=5),
    )
    async def run_shard(job_id: int, shard: int) -> str:
        from panopticon.services.jobs import JobRunner
        from panopticon.services.runs import open_store

        engine = open_store(settings)
        try:
            return await JobRunner(engine, settings, env).run_shard(job_id, shard)
        finally:
            engine.dispose()

    async def defer_shard(job_id: int, shard: int) -> None:
        # one copy queued at a time (queueing_lock), one copy running at a time (lock)
        name = f"panopticon-job-{job_id}-shard-{shard}"
        with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
            await run_shard.configure(lock=name, queueing_lock=name).defer_async(
                job_id=job_id, shard=shard
            )

    return app


async def ensure_schema(app: Any) -> bool:
    """Install procrastinate's tables once; True when they were installed now."""
    async with app.open_async():
        connector = app.connector
        exists = await connector.execute_query_one_async(
            "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present"
        )
        if exists["present"]:
            return False
        await app.schema_manager.apply_schema_async()
        return True


class QueueSubmitter:
    """Sends recorded jobs to the shared queue (the API on PostgreSQL). Deferring is one
    small insert, done synchronously from the request's thread on a connection pool that
    is opened on first use."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._opened = False
        self._lock = threading.Lock()

    def start(self) -> None:  # no runner in this process: workers run the jobs
        return None

    async def stop(self) -> None:
        if self._opened:
            self.app.close()
            self._opened = False

    def _open(self) -> None:
        with self._lock:
            if self._opened:
                return
            self.app.open()
            self._opened = True
            present = self.app.connector.execute_query_one(
                "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present"
            )
            if not present["present"]:
                self.app.schema_manager.apply_schema()

    def submit(self, job_id: int) -> None:
        self._open()
        self.app.tasks["panopticon.run_job"].defer(job_id=job_id)


async def retry_stalled_jobs(app: Any, stalled_after: float) -> None:
    """Forever: jobs held by a worker that stopped sending heartbeats (killed, crashed,
    cut off) go back to the queue. The retried job resumes its run, so only the calls that
    were in flight when the worker died can be sent again."""
    import asyncio
    import logging

    log = logging.getLogger(__name__)
    while True:
        await asyncio.sleep(max(0.5, stalled_after / 2))
        try:
            stalled = await app.job_manager.get_stalled_jobs(
                queue=QUEUE, seconds_since_heartbeat=stalled_after
            )
            for job in stalled:
                log.warning("retrying job %s: its worker stopped", job.id)
                await app.job_manager.retry_job(job)
        except Exception:  # the next round tries again; the worker keeps working
            log.exception("could not check for stalled jobs")
