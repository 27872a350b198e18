"""`GET /api/judge/results` on 1,000,000 stored scores: latency of filtered pages.

A fresh PostgreSQL database is filled with COPY: 10 runs over 10 days, 5 models, 10
metrics, 20,000 queries in 20 themes, 100,000 answers and 1,000,000 scores. Then
`panopticon serve`'s app runs under uvicorn in this process, and each kind of filtered
page is requested 100 times over real HTTP, with parameters drawn at random; the script
prints p50, p95 and max per filter and overall.

    python bench/bench_api_results.py --pg postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from panopticon.api.app import create_app
from panopticon.settings import Settings

MODELS = [f"model-{i}" for i in range(5)]
METRICS = [f"metric-{i}" for i in range(10)]
THEMES = [f"theme-{i}" for i in range(20)]
RUNS = 10
QUERIES = 20_000  # x 5 models = 100,000 answers; x 10 metrics = 1,000,000 scores
KEY = "bench_api_key_0123456789"
DAY0 = datetime(2026, 11, 1, tzinfo=UTC)


def fresh_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def populate(url: str, queries: int = QUERIES) -> None:
    """``queries`` x 5 models answers, x 10 metrics scores (1,000,000 by default)."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO provider (workspace_id, name, kind, options, created_at) "
            "VALUES (1, 'bench', 'openai', '{}', %s) RETURNING id",
            (now,),
        )
        pid = cur.fetchone()[0]  # type: ignore[index]
        model_ids = []
        for m in MODELS:
            cur.execute(
                "INSERT INTO model (workspace_id, provider_id, name, provider_model, settings, "
                "created_at, updated_at) VALUES (1, %s, %s, %s, '{}', %s, %s) RETURNING id",
                (pid, m, m, now, now),
            )
            model_ids.append(cur.fetchone()[0])  # type: ignore[index]
        metric_ids = []
        for m in METRICS:
            cur.execute(
                "INSERT INTO metric (workspace_id, name, type, definition, version, created_at) "
                "VALUES (1, %s, 'rubric', %s, '1', %s) RETURNING id",
                (m, json.dumps({"name": m, "type": "rubric"}), now),
            )
            metric_ids.append(cur.fetchone()[0])  # type: ignore[index]
        with cur.copy(
            "COPY query (workspace_id, text, messages, theme, metadata, content_hash, created_at)"
            " FROM STDIN"
        ) as copy:
            for i in range(queries):
                copy.write_row(
                    (1, f"Question {i}?", "[]", THEMES[i % len(THEMES)], "{}", f"h{i}", now)
                )
        cur.execute("SELECT id FROM query ORDER BY id")
        query_ids = [r[0] for r in cur.fetchall()]
        run_ids = []
        for r in range(RUNS):
            cur.execute(
                "INSERT INTO run (workspace_id, name, status, suite, suite_fingerprint, planned,"
                " totals, created_at) VALUES (1, %s, 'completed', '{}', 'bench', %s, '{}', %s)"
                " RETURNING id",
                (f"run {r}", queries // RUNS * len(MODELS), DAY0 + timedelta(days=r)),
            )
            run_ids.append(cur.fetchone()[0])  # type: ignore[index]
        per_run = queries // RUNS
        n = 0
        with (
            cur.copy(
                "COPY result (id, run_id, query_id, model_id, repeat, cache_key, request,"
                " response_text, finish_reason, latency_ms, input_tokens, output_tokens,"
                " cost_usd, cached, attempts, created_at) FROM STDIN"
            ) as results,
        ):
            rows = []
            for qi, qid in enumerate(query_ids):
                run = qi // per_run
                for mi, mid in enumerate(model_ids):
                    n += 1
                    rid = uuid.UUID(int=n)
                    at = DAY0 + timedelta(days=run, seconds=(qi % per_run) * 5 + mi)
                    results.write_row(
                        (rid, run_ids[run], qid, mid, 0, rid.hex, "{}", f"Answer {qi}.", "stop",
                         200.0 + mi, 50, 120, 0.0001, False, 1, at)
                    )  # fmt: skip
                    rows.append((rid, run_ids[run], mi, at, mid, qid))
        s = 0
        with cur.copy(
            "COPY score (id, run_id, result_id, metric_id, value, normalized, passed, reasoning,"
            " judge_model, judge_cached, created_at, workspace_id, model_id, query_id) FROM STDIN"
        ) as scores:
            for rid, run_id, mi, at, mid, qid in rows:
                for metric_id in metric_ids:
                    s += 1
                    value = float(min(10, max(1, round(rng.gauss(5 + mi * 0.5, 2)))))
                    scores.write_row(
                        (uuid.UUID(int=(1 << 64) + s), run_id, rid, metric_id, value,
                         (value - 1) / 9, value >= 7, "Because.", "judge", False, at, 1, mid,
                         qid)
                    )  # fmt: skip
        conn.commit()
        cur.execute("ANALYZE")
    print(f"stored {n:,} answers and {s:,} scores", flush=True)


def serve(settings: Settings) -> tuple[str, Callable[[], None]]:
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings, env={}), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join()

    return f"http://127.0.0.1:{port}", stop


def filters(rng: random.Random) -> dict[str, Callable[[], dict[str, Any]]]:
    def day() -> tuple[str, str]:
        d = DAY0 + timedelta(days=rng.randrange(RUNS), hours=rng.randrange(3))
        return d.isoformat(), (d + timedelta(hours=2)).isoformat()

    return {
        "none (newest first)": lambda: {},
        "model": lambda: {"model_id": rng.choice(MODELS)},
        "metric": lambda: {"metric": rng.choice(METRICS)},
        "theme": lambda: {"theme": rng.choice(THEMES)},
        "run": lambda: {"run": rng.randint(1, RUNS)},
        "time range (2 h)": lambda: dict(zip(("since", "until"), day(), strict=True)),
        "model + metric + score range": lambda: {
            "model_id": rng.choice(MODELS),
            "metric": rng.choice(METRICS),
            "min_score": 8,
            "max_score": 10,
        },
        "theme + model + failed": lambda: {
            "theme": rng.choice(THEMES),
            "model_id": rng.choice(MODELS),
            "passed": "false",
        },
        "run + metric, page 20": lambda: {
            "run": rng.randint(1, RUNS),
            "metric": rng.choice(METRICS),
            "offset": 950,
        },
        "nothing matches": lambda: {"theme": "no-such-theme"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="reuse a database already filled")
    args = parser.parse_args()
    name = "panopticon_bench_results"
    url = args.pg.rsplit("/", 1)[0] + "/" + name
    settings = Settings(database_url=url, api_key=KEY)
    if not args.keep:
        url = fresh_database(args.pg, name)
        from panopticon.store.engine import create_engine, upgrade

        engine = create_engine(settings)
        upgrade(engine)  # the first migration creates the default workspace
        engine.dispose()
        started = time.perf_counter()
        populate(url)
        print(f"populated in {time.perf_counter() - started:.0f} s", flush=True)
    base, stop = serve(settings)
    rng = random.Random(1)
    everything: list[float] = []
    try:
        with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=30) as client:
            for _ in range(20):  # warm up: connections, caches, plans
                client.get("/api/judge/results", params={"model_id": MODELS[0]})
            print(f"{'filter':34} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'total':>9}")
            for label, make in filters(rng).items():
                times, total = [], 0
                for _ in range(args.requests):
                    params = make()
                    t0 = time.perf_counter()
                    r = client.get("/api/judge/results", params=params)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200, r.text
                    total = r.json()["total"]
                everything += times
                q = statistics.quantiles(times, n=20)
                print(f"{label:34} {statistics.median(times):8.1f} {q[18]:8.1f} "
                      f"{max(times):8.1f} {total:>9,}", flush=True)  # fmt: skip
    finally:
        stop()
    q = statistics.quantiles(everything, n=20)
    print(f"{'all requests':34} {statistics.median(everything):8.1f} {q[18]:8.1f} "
          f"{max(everything):8.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
