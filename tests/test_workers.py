"""Distributed workers on PostgreSQL: they share the queue, and a worker killed in the
middle of a job loses nothing: the job is retried and resumes without paying twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from panopticon.api.app import create_app
from panopticon.mockllm.server import MockServer
from panopticon.settings import Settings

pytestmark = pytest.mark.postgres_only
KEY = {"X-API-Key": "dev_api_key_for_testing"}


def start_worker(
    settings: Settings, concurrency: int = 2, shards: int = 8
) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        PANOPTICON_DATABASE_URL=settings.database_url or "",
        PANOPTICON_HOME=str(settings.home),
        PANOPTICON_JOB_SHARDS=str(shards),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "panopticon",
            "worker",
            "--concurrency",
            str(concurrency),
            "--heartbeat",
            "0.5",
            "--stalled-after",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None and "taking jobs" in proc.stdout.readline()
    return proc


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    app = create_app(
        Settings(home=settings.home, database_url=settings.database_url, api_key=KEY["X-API-Key"]),
        env={},
    )
    with TestClient(app) as client:
        yield client


def theme_job(api: TestClient, mock: MockServer, theme: str, n: int) -> int:
    api.post(
        "/api/models",
        headers=KEY,
        json={"id": "m", "model": "mock-m", "base_url": mock.url, "concurrency": 4},
    )
    metric = api.post("/api/metrics", headers=KEY, json={"item": "1 to 10"}).json()
    for i in range(n):
        api.post("/api/queries", headers=KEY, json={"item": f"{theme} {i}?", "type": theme})
    r = api.post(
        "/api/judge/evaluate/theme",
        headers=KEY,
        json={
            "theme": theme,
            "model_id": "m",
            "evaluation_prompt_ids": [metric["id"]],
            "judge_model": "m",
        },
    )
    assert r.status_code == 202, r.text
    return int(r.json()["id"])


def job(api: TestClient, job_id: int) -> dict[str, Any]:
    return dict(api.get(f"/api/jobs/{job_id}", headers=KEY).json())


def wait(predicate: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_killed_workers_job_is_retried_and_pays_for_nothing_twice(
    api: TestClient, mock: MockServer, settings: Settings
) -> None:
    mock.config.latency_ms = 100
    job_id = theme_job(api, mock, "t", 40)
    first = start_worker(settings)
    try:
        wait(lambda: job(api, job_id)["done"] >= 6)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
        second = start_worker(settings)
        try:
            wait(lambda: job(api, job_id)["status"] in ("completed", "failed"), 90)
        finally:
            second.terminate()
            second.communicate(timeout=20)
    finally:
        if first.poll() is None:
            first.kill()
    final = job(api, job_id)
    assert final["status"] == "completed" and final["done"] == 40
    # sent again: at most the calls in flight when the worker died (4 here) and those
    # answered in the last few milliseconds, before the writer's group commit stored them
    assert mock.stats.as_dict()["answered_duplicates"] <= 8


def test_two_workers_share_the_queue(api: TestClient, mock: MockServer, settings: Settings) -> None:
    mock.config.latency_ms = 50
    jobs = [theme_job(api, mock, f"theme{i}", 8) for i in range(4)]
    workers = [start_worker(settings), start_worker(settings)]
    try:
        wait(lambda: all(job(api, j)["status"] == "completed" for j in jobs), 90)
    finally:
        for w in workers:
            w.terminate()
            w.communicate(timeout=20)
    assert mock.stats.as_dict()["answered_duplicates"] == 0
    assert sum(job(api, j)["done"] for j in jobs) == 32


def test_workers_share_one_large_job_and_a_killed_one_loses_nothing(
    api: TestClient, mock: MockServer, settings: Settings
) -> None:
    """A theme of 100 queries is split into 4 slices; two workers, each running one job at a
    time, run two slices at once. One is killed: its slice resumes in the other. The calls
    are slow until two slices run at once, so a worker that starts late still takes one."""
    mock.config.latency_ms = 400
    job_id = theme_job(api, mock, "big", 100)
    workers = [start_worker(settings, 1, shards=4), start_worker(settings, 1, shards=4)]
    try:
        wait(lambda: sum(s["status"] == "running" for s in job(api, job_id)["shards"]) >= 2)
        # the model is its own judge: one slice allows 4 calls in flight, more is two at once
        wait(lambda: mock.stats.max_in_flight > 4)
        mock.config.latency_ms = 40
        wait(lambda: job(api, job_id)["done"] >= 30)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].communicate(timeout=10)
        wait(lambda: job(api, job_id)["status"] in ("completed", "failed"), 120)
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
                w.communicate(timeout=20)
    final = job(api, job_id)
    assert final["status"] == "completed", final
    assert final["done"] == 100 and final["failed"] == 0
    assert [s["status"] for s in final["shards"]] == ["completed"] * 4
    stats = mock.stats.as_dict()
    # only the killed worker's calls in flight (4) or not yet committed may be sent twice
    assert stats["answered_duplicates"] <= 8
    run = api.get(f"/api/runs/{final['run_id']}", headers=KEY).json()
    assert run["status"] == "completed" and run["totals"]["answers"] == 100
