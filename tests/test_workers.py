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


def start_worker(settings: Settings) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        PANOPTICON_DATABASE_URL=settings.database_url or "",
        PANOPTICON_HOME=str(settings.home),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "panopticon",
            "worker",
            "--concurrency",
            "2",
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
    # at most the calls in flight when the worker died were sent again (4 per model here)
    assert mock.stats.as_dict()["answered_duplicates"] <= 4


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
