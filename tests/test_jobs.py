"""One job system: tasks by name, several at once, periodic tasks, a thread-safe submit; a
job's row and its queue entry are one unit; a job that fails is recorded failed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from panopticon.api.app import create_app
from panopticon.mockllm.server import MockServer
from panopticon.services.tasks import LocalQueue, TaskContext, TaskRegistry
from panopticon.settings import Settings
from tests.conftest import PG_URL

KEY = {"X-API-Key": "dev_api_key_for_testing"}


def suite(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "jobs",
        "models": [{"id": "good", "model": "mock-good", "provider": "mock"}],
        "queries": [{"text": f"Question {i}?", "theme": "t"} for i in range(3)],
        "metrics": [{"name": "short", "type": "length", "max": 2000}],
        **extra,
    }


@pytest.fixture
def api(settings: Settings, job_worker: None, mock: MockServer) -> Iterator[TestClient]:
    """The API, with the mock registered as the provider 'mock' (a suite sent to the API
    names providers; it cannot bring its own endpoint)."""
    app = create_app(
        Settings(home=settings.home, database_url=settings.database_url, api_key=KEY["X-API-Key"]),
        env={},
    )
    with TestClient(app) as client:
        r = client.post(
            "/api/providers",
            headers=KEY,
            json={"name": "mock", "kind": "openai", "base_url": mock.url},
        )
        assert r.status_code == 201, r.text
        yield client


def wait_for_job(api: TestClient, job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        job = dict(api.get(f"/api/jobs/{job_id}", headers=KEY).json())
        if job["status"] in ("completed", "failed"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} is still {job['status']}"
        time.sleep(0.05)


async def until(predicate: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_the_local_queue_runs_tasks_at_once_and_periodically_and_submits_from_threads(
    engine: sa.Engine, settings: Settings
) -> None:
    registry = TaskRegistry()
    running: list[int] = []
    done: list[int] = []
    ticks: list[float] = []
    peak = [0]

    async def main() -> None:
        release = asyncio.Event()

        @registry.task("slow")
        async def slow(ctx: TaskContext, n: int) -> None:
            running.append(n)
            peak[0] = max(peak[0], len(running))
            await release.wait()
            running.remove(n)
            done.append(n)

        @registry.task("tick", every_s=0.02)
        async def tick(ctx: TaskContext) -> None:
            ticks.append(time.monotonic())

        queue = LocalQueue(engine, settings, {}, registry=registry, concurrency=3, poll_s=0.05)
        await queue.start()
        try:
            # request handlers submit from the thread pool, not from the loop
            threads = [
                threading.Thread(target=queue.submit, args=("slow",), kwargs={"n": i})
                for i in range(3)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            await until(lambda: peak[0] == 3)  # all three at once
            release.set()
            await until(lambda: sorted(done) == [0, 1, 2] and len(ticks) >= 3)
        finally:
            await queue.stop()

    asyncio.run(main())
    with pytest.raises(Exception, match="no task named 'nope'"):
        registry.get("nope")


def test_a_job_that_fails_is_recorded_failed_with_its_error(
    api: TestClient, mock: MockServer
) -> None:
    """The run raises something unexpected (a template's format spec that does not fit
    the text): the job is failed, with the error, never left running."""
    jobs = api.app.state.jobs  # type: ignore[attr-defined]
    job_id = jobs.submit_job(1, "run_suite", suite(mock.url, template="{text:d}"))
    job = wait_for_job(api, job_id)
    assert job["status"] == "failed", job
    assert job["error"] and "format" in job["error"].lower(), job


@pytest.mark.sqlite_only
def test_a_job_recorded_without_a_wake_up_is_still_taken(api: TestClient, mock: MockServer) -> None:
    """The row is the queue: a job whose submit never reached the runner (recorded by
    another process, or a wake-up lost) is found by the runner's sweep and run."""
    from panopticon.services.jobs import record_job

    app = api.app
    job_id = record_job(app.state.engine, 1, "run_suite", suite(mock.url))  # type: ignore[attr-defined]
    job = wait_for_job(api, job_id)
    assert job["status"] == "completed" and job["done"] == 3, job


@pytest.mark.postgres_only
def test_when_the_enqueue_fails_no_job_is_left_queued(
    api: TestClient, mock: MockServer, settings: Settings
) -> None:
    """The job row and its procrastinate job are written in one transaction: when the
    queue cannot take the job, the API answers 503 and nothing is recorded; once it can,
    the same request is recorded and queued."""
    assert PG_URL
    admin = sa.create_engine(
        (settings.database_url or "").replace("postgresql://", "postgresql+psycopg://"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as conn:  # the queue's insert function breaks
            conn.execute(
                sa.text(
                    "ALTER FUNCTION procrastinate_defer_jobs_v1(procrastinate_job_to_defer_v1[])"
                    " RENAME TO broken_defer"
                )
            )
        r = api.post("/api/runs", headers=KEY, json={"suite": suite(mock.url)})
        assert r.status_code == 503, r.text
        assert "could not queue the job" in r.json()["error"]["message"]
        with admin.connect() as conn:
            assert conn.scalar(sa.text("SELECT count(*) FROM job")) == 0
            conn.execute(
                sa.text(
                    "ALTER FUNCTION broken_defer(procrastinate_job_to_defer_v1[])"
                    " RENAME TO procrastinate_defer_jobs_v1"
                )
            )
        r = api.post("/api/runs", headers=KEY, json={"suite": suite(mock.url)})
        assert r.status_code == 202, r.text
        assert wait_for_job(api, r.json()["id"])["status"] == "completed"
    finally:
        admin.dispose()


def test_a_periodic_task_is_a_procrastinate_periodic_task_on_postgresql() -> None:
    """Every N seconds becomes procrastinate's cron (a sixth column for seconds)."""
    from panopticon.worker import cron_of

    assert cron_of(5) == "* * * * * */5"
    assert cron_of(120) == "*/2 * * * *"
    assert cron_of(7200) == "0 */2 * * *"
