"""Workers on PostgreSQL: one worker against two on a 2,000-query theme.

For each configuration, a fresh database gets a model (concurrency 20), a judge model
(concurrency 20), a rubric metric and 2,000 queries in one theme, through the REST API. The
workers (`panopticon worker --concurrency 1`, separate processes) are started first; then
`POST /api/judge/evaluate/theme` starts the job and the clock, and `GET /api/jobs/{id}` is
polled until it is done. The mock server answers after 200 ms. Printed per run: wall time,
answers per second, the speed-up over one worker, and the number of requests the mock
answered twice (must be 0).

    python bench/bench_workers.py --pg postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from panopticon.api.app import create_app
from panopticon.mockllm import MockConfig, MockServer
from panopticon.settings import Settings
from panopticon.store.engine import create_engine, upgrade

KEY = {"X-API-Key": "bench_api_key_0123456789"}
QUERIES = 2_000


def fresh_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    engine = create_engine(Settings(database_url=url))
    upgrade(engine)
    engine.dispose()
    return url


def start_worker(url: str, home: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PANOPTICON_DATABASE_URL=url, PANOPTICON_HOME=home)
    proc = subprocess.Popen(
        [sys.executable, "-m", "panopticon", "worker", "--concurrency", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None and "taking jobs" in proc.stdout.readline()
    return proc


def one(admin_url: str, workers: int, mock: MockServer, home: str) -> dict[str, Any]:
    url = fresh_database(admin_url, "panopticon_bench_workers")
    settings = Settings(database_url=url, api_key=KEY["X-API-Key"], home=home)
    with TestClient(create_app(settings, env={})) as api:
        for model in ("answerer", "judge"):
            r = api.post(
                "/api/models",
                headers=KEY,
                json={"id": model, "model": f"mock-{model}", "base_url": mock.url,
                      "concurrency": 20},
            )  # fmt: skip
            assert r.status_code == 201, r.text
        metric = api.post("/api/metrics", headers=KEY, json={"item": "Rate 1 to 10."}).json()
        for i in range(QUERIES):
            r = api.post("/api/queries", headers=KEY, json={"item": f"Question {i}?", "type": "t"})
            assert r.status_code == 201, r.text
        procs = [start_worker(url, home) for _ in range(workers)]
        mock.stats.reset()
        try:
            started = time.perf_counter()
            r = api.post(
                "/api/judge/evaluate/theme",
                headers=KEY,
                json={"theme": "t", "model_id": "answerer", "judge_model": "judge",
                      "evaluation_prompt_ids": [metric["id"]]},
            )  # fmt: skip
            job_id = r.json()["id"]
            while True:
                job = api.get(f"/api/jobs/{job_id}", headers=KEY).json()
                if job["status"] in ("completed", "failed"):
                    break
                time.sleep(0.05)
            wall = time.perf_counter() - started
        finally:
            for p in procs:
                p.terminate()
                p.communicate(timeout=30)
    stats = mock.stats.as_dict()
    assert job["status"] == "completed" and job["done"] == QUERIES, job
    return {
        "workers": workers,
        "wall_s": wall,
        "answers_per_s": QUERIES / wall,
        "requests": stats["requests"],
        "duplicates": stats["answered_duplicates"],
        "max_in_flight": stats["max_in_flight"],
        "slices": len(job["shards"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--home", default="/tmp/panopticon-bench-workers")
    args = parser.parse_args()
    mock = MockServer(MockConfig(latency_ms=200)).start()
    try:
        results: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for workers in (1, 2):
                r = one(args.pg, workers, mock, args.home)
                results[workers].append(r)
                print(
                    f"{workers} worker(s): {r['wall_s']:.1f} s, {r['answers_per_s']:.0f} "
                    f"answers/s, {r['requests']} requests, {r['duplicates']} answered twice, "
                    f"{r['max_in_flight']} in flight at most, {r['slices']} slices",
                    flush=True,
                )
        one_w = sorted(r["wall_s"] for r in results[1])[len(results[1]) // 2]
        two_w = sorted(r["wall_s"] for r in results[2])[len(results[2]) // 2]
        print(f"speed-up (median wall, 1 worker / 2 workers): {one_w / two_w:.2f}")
    finally:
        mock.stop()


if __name__ == "__main__":
    main()
