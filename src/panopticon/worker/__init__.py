"""Distributed jobs on PostgreSQL through procrastinate.

Every task of the registry (:mod:`panopticon.services.tasks`) is a procrastinate task named
``panopticon.<name>``; a periodic one is a procrastinate periodic task. The API records a
job and queues its task in one transaction (:class:`QueueSubmitter`); any number of
``panopticon worker`` processes, on any machines, take tasks from the shared queue and run
them with the same code the single-process server uses. A job over many queries is split
into slices (``panopticon.run_shard``) so that several workers share it. Each slice runs as
a resumable part of the job's run, so a retried slice never pays twice for an answer
already stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Mapping
from typing import Any

from panopticon.errors import StoreError
from panopticon.services.database import Engine
from panopticon.settings import Settings

__all__ = [
    "QUEUE",
    "QueueSubmitter",
    "build_app",
    "cron_of",
    "ensure_schema",
    "retry_stalled_jobs",
]

QUEUE = "panopticon"
PREFIX = "panopticon."
log = logging.getLogger(__name__)


def conninfo(settings: Settings) -> str:
    url = settings.resolved_database_url
    return "postgresql://" + url.split("://", 1)[1]


def cron_of(every_s: float) -> str:
    """procrastinate's cron (a 6th column for seconds) for "every ``every_s`` seconds"."""
    s = max(1, round(every_s))
    if s < 60:
        return f"* * * * * */{s}"
    m = max(1, round(s / 60))
    return f"*/{m} * * * *" if m < 60 else f"0 */{max(1, round(m / 60))} * * *"


def build_app(settings: Settings, env: Mapping[str, str], *, sync: bool = False) -> Any:
    """The procrastinate app with every registered task. ``sync``: a synchronous connector,
    for deferring from any thread (the API); workers use the async one."""
    import procrastinate

    from panopticon.services import backfill, jobs, online_eval  # noqa: F401  (the tasks)
    from panopticon.services.tasks import TASKS, Task, TaskContext

    connector = (
        procrastinate.SyncPsycopgConnector(conninfo=conninfo(settings))
        if sync
        else procrastinate.PsycopgConnector(conninfo=conninfo(settings))
    )
    app = procrastinate.App(connector=connector)
    engine_holder: list[Engine] = []
    engine_lock = threading.Lock()

    def engine() -> Engine:
        """One engine per worker process, opened on the first task."""
        with engine_lock:
            if not engine_holder:
                from panopticon.services.runs import open_store

                engine_holder.append(open_store(settings))
            return engine_holder[0]

    async def defer(name: str, **kwargs: Any) -> None:
        task = TASKS.get(name)
        lock = task.lock(kwargs) if task.lock else None
        # one copy queued at a time (queueing_lock), one copy running at a time (lock)
        with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
            await (
                app.tasks[PREFIX + name]
                .configure(lock=lock if task.exclusive else None, queueing_lock=lock)
                .defer_async(**kwargs)
            )

    def register(task: Task) -> None:
        async def run(**kwargs: Any) -> Any:
            kwargs.pop("timestamp", None)  # given to periodic tasks by procrastinate
            ctx = TaskContext(await asyncio.to_thread(engine), settings, env, defer)
            return await task.fn(ctx, **kwargs)

        run.__name__ = task.name
        registered = app.task(
            name=PREFIX + task.name,
            queue=QUEUE,
            retry=procrastinate.RetryStrategy(max_attempts=5, wait=5),
        )(run)
        if task.every_s is not None:
            app.periodic(cron=cron_of(task.every_s))(registered)  # type: ignore[arg-type]

    for task in TASKS:
        register(task)
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
    """Records jobs and sends tasks to the shared queue (the API on PostgreSQL). A job's
    row and its queue entry are written in one transaction on the store's own connection,
    so a failure leaves neither: never a job ``queued`` that no worker will take."""

    def __init__(self, app: Any, engine: Engine) -> None:
        self.app = app
        self.engine = engine
        self._schema_checked = False
        self._lock = threading.Lock()

    async def start(self) -> None:  # no runner in this process: workers run the jobs
        return None

    async def stop(self) -> None:
        return None

    def _ensure_schema(self, driver_conn: Any) -> None:
        with self._lock:
            if self._schema_checked:
                return
            with driver_conn.cursor() as cur:
                cur.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
                row = cur.fetchone()
            if not (row and row[0]):  # in this transaction, on this connection
                driver_conn.execute(self.app.schema_manager.get_schema())
            self._schema_checked = True

    def _defer_in(self, driver_conn: Any, name: str, kwargs: dict[str, Any]) -> None:
        from panopticon.services.tasks import TASKS

        task = TASKS.get(name)
        lock = task.lock(kwargs) if task.lock else None
        self.app.tasks[PREFIX + name].configure(
            lock=lock if task.exclusive else None, queueing_lock=lock, connection=driver_conn
        ).defer(**kwargs)

    def submit_job(self, workspace_id: int, kind: str, payload: dict[str, Any]) -> int:
        from panopticon.services.jobs import record_job_with

        def enqueue(conn: Any, job_id: int) -> None:
            driver_conn = conn.connection.driver_connection
            self._ensure_schema(driver_conn)
            self._defer_in(driver_conn, kind, {"job_id": job_id})

        import psycopg
        from procrastinate.exceptions import ProcrastinateException

        try:
            return record_job_with(self.engine, workspace_id, kind, payload, enqueue)
        except (StoreError, ProcrastinateException, psycopg.Error) as exc:
            raise StoreError(
                f"could not queue the job: {exc}; nothing was recorded, so sending it again is safe"
            ) from None

    def submit(self, name: str, **kwargs: Any) -> None:
        with self.engine.begin() as conn:
            driver_conn = conn.connection.driver_connection
            self._ensure_schema(driver_conn)
            self._defer_in(driver_conn, name, kwargs)


async def retry_stalled_jobs(app: Any, stalled_after: float) -> None:
    """Forever: jobs held by a worker that stopped sending heartbeats (killed, crashed,
    cut off) go back to the queue. The retried job resumes its run, so only the calls that
    were in flight when the worker died can be sent again."""
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
