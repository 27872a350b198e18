"""Requests/s of the API against a floor: a bare FastAPI app serving the same JSON page.

For each database (SQLite, and PostgreSQL when reachable) a fresh store is filled with
100,000 scores (2,000 queries x 5 models x 10 metrics, as bench_api_results.py), then
`panopticon serve` runs in its own process, and so does the floor: a bare FastAPI app under
the same uvicorn that returns, from memory, the very JSON of Panopticon's results page. 50
concurrent clients (wrk, loopback only, bounded in time) request each of:

- the floor, ``GET /page``
- ``GET /api/judge/results?limit=10`` with an API key (the same page again and again: kept
  by the server while nothing is committed)
- the same with a query never asked before each time (a new ``min_score`` below every
  score): the page read from the store every time
- ``GET /health``
- ``GET /ui/runs`` (a dashboard page, with a session cookie)

and the script prints requests/s, p50 and p99 latency and the ratio to the floor.

    python bench/bench_api.py                       # SQLite and PostgreSQL
    python bench/bench_api.py --pg none --duration 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api_results import DAY0, METRICS, MODELS, RUNS, THEMES

KEY = "bench_api_key_0123456789"
FLOOR_APP = """
import json, sys
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

page = json.load(open(sys.argv[1]))
app = FastAPI()

@app.get("/page")
async def serve_page() -> JSONResponse:
    return JSONResponse(page)

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="info")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def populate_core(url: str | None, home: Path, queries: int) -> None:
    """The same rows as bench_api_results.populate, through SQLAlchemy (any database)."""
    import sqlalchemy as sa

    from panopticon.services.runs import open_store
    from panopticon.settings import Settings
    from panopticon.store.tables import Metric, Model, Provider, Query, Result, Run, Score

    rng = random.Random(7)
    engine = open_store(Settings(home=home, database_url=url))
    now = DAY0 + timedelta(days=RUNS)
    with engine.begin() as conn:
        pid = conn.execute(
            sa.insert(Provider)
            .values(workspace_id=1, name="bench", kind="openai", options={}, created_at=now)
            .returning(Provider.c.id)
        ).scalar_one()
        model_ids = [
            conn.execute(
                sa.insert(Model)
                .values(
                    workspace_id=1,
                    provider_id=pid,
                    name=m,
                    provider_model=m,
                    settings={},
                    created_at=now,
                    updated_at=now,
                )
                .returning(Model.c.id)
            ).scalar_one()
            for m in MODELS
        ]
        metric_ids = [
            conn.execute(
                sa.insert(Metric)
                .values(
                    workspace_id=1,
                    name=m,
                    type="rubric",
                    definition={"name": m, "type": "rubric"},
                    version="1",
                    created_at=now,
                )
                .returning(Metric.c.id)
            ).scalar_one()
            for m in METRICS
        ]
        conn.execute(
            sa.insert(Query),
            [
                {
                    "workspace_id": 1,
                    "text": f"Question {i}?",
                    "messages": [],
                    "theme": THEMES[i % len(THEMES)],
                    "metadata": {},
                    "content_hash": f"h{i}",
                    "created_at": now,
                }
                for i in range(queries)
            ],
        )
        query_ids = list(conn.execute(sa.select(Query.c.id).order_by(Query.c.id)).scalars())
        per_run = queries // RUNS
        run_ids = [
            conn.execute(
                sa.insert(Run)
                .values(
                    workspace_id=1,
                    name=f"run {r}",
                    status="completed",
                    suite={},
                    suite_fingerprint="bench",
                    planned=per_run * len(MODELS),
                    totals={},
                    created_at=DAY0 + timedelta(days=r),
                )
                .returning(Run.c.id)
            ).scalar_one()
            for r in range(RUNS)
        ]
        results, scores, n, s = [], [], 0, 0
        for qi, qid in enumerate(query_ids):
            run = qi // per_run
            for mi, mid in enumerate(model_ids):
                n += 1
                rid = uuid.UUID(int=n)
                at = DAY0 + timedelta(days=run, seconds=(qi % per_run) * 5 + mi)
                results.append(
                    {"id": rid, "run_id": run_ids[run], "query_id": qid, "model_id": mid,
                     "repeat": 0, "cache_key": rid.hex, "request": {},
                     "response_text": f"Answer {qi}.", "finish_reason": "stop",
                     "latency_ms": 200.0 + mi, "input_tokens": 50, "output_tokens": 120,
                     "cost_usd": 0.0001, "cached": False, "attempts": 1, "created_at": at}
                )  # fmt: skip
                for metric_id in metric_ids:
                    s += 1
                    value = float(min(10, max(1, round(rng.gauss(5 + mi * 0.5, 2)))))
                    scores.append(
                        {"id": uuid.UUID(int=(1 << 64) + s), "run_id": run_ids[run],
                         "result_id": rid, "metric_id": metric_id, "value": value,
                         "normalized": (value - 1) / 9, "passed": value >= 7,
                         "reasoning": "Because.", "judge_model": "judge",
                         "judge_cached": False, "created_at": at, "workspace_id": 1,
                         "model_id": mid, "query_id": qid}
                    )  # fmt: skip
        conn.execute(sa.insert(Result), results)
        for i in range(0, len(scores), 20_000):
            conn.execute(sa.insert(Score), scores[i : i + 20_000])
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    print(f"stored {n:,} answers and {s:,} scores", flush=True)


def start(cmd: list[str], env: dict[str, str], base: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/health" if "serve" in cmd else base + "/page").status_code:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{cmd} did not start: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.1)


# each request a query never asked before (a new min_score below every score: the same
# rows), so that no page is ever given from the page cache: what a page costs to read
FRESH_QUERIES = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, wrk.path .. "&min_score=0." .. string.format("%09d", counter))
end
"""


def wrk(
    url: str, headers: dict[str, str], connections: int, duration: float, script: str = ""
) -> dict[str, float]:
    """wrk's requests/s, p50 and p99 (ms); a bounded httpx loop where wrk is missing.
    ``script``: a wrk Lua script (wrk only)."""
    if shutil.which("wrk") is None:
        print(
            "wrk not found (apt-get install wrk): the Python client below saturates before "
            "the servers do, so its ratios measure the client, not Panopticon",
            file=sys.stderr,
            flush=True,
        )
        return load_loop(url, headers, connections, duration)
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    args += ["--timeout", "10s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        if script:
            lua.write(script)
            lua.flush()
            args += ["-s", lua.name]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} error responses\n{out}")

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": rps, "p50": pct("50"), "p99": pct("99")}


def load_loop(
    url: str, headers: dict[str, str], connections: int, duration: float
) -> dict[str, float]:
    import asyncio

    async def main() -> dict[str, float]:
        times: list[float] = []
        deadline = time.monotonic() + duration
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:

            async def worker() -> None:
                while time.monotonic() < deadline and len(times) < 1_000_000:
                    t0 = time.monotonic()
                    r = await client.get(url)
                    r.raise_for_status()
                    times.append((time.monotonic() - t0) * 1000)

            started = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(connections)))
            elapsed = time.monotonic() - started
        times.sort()
        return {
            "rps": len(times) / elapsed,
            "p50": times[len(times) // 2],
            "p99": times[int(len(times) * 0.99)],
        }

    return asyncio.run(main())


def bench(label: str, url: str | None, args: argparse.Namespace) -> list[dict[str, Any]]:
    home = Path(tempfile.mkdtemp(prefix="panopticon-bench-"))
    env = dict(os.environ, PANOPTICON_HOME=str(home), PANOPTICON_API_KEY=KEY)
    env.pop("PANOPTICON_DATABASE_URL", None)
    if url:
        from bench_api_results import fresh_database

        url = fresh_database(url, "panopticon_bench_api")
        env["PANOPTICON_DATABASE_URL"] = url
        from panopticon.settings import Settings
        from panopticon.store.engine import create_engine, upgrade

        engine = create_engine(Settings(database_url=url))
        upgrade(engine)
        engine.dispose()
    started = time.perf_counter()
    if url:
        from bench_api_results import populate

        populate(url, queries=args.scores // (len(MODELS) * len(METRICS)))
    else:
        populate_core(None, home, args.scores // (len(MODELS) * len(METRICS)))
    print(f"{label}: populated in {time.perf_counter() - started:.0f} s", flush=True)
    port, floor_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    server = start([sys.executable, "-m", "panopticon", "serve", "--port", str(port)], env, base)
    procs = [server]
    rows = []
    try:
        key = {"X-API-Key": KEY}
        page = httpx.get(base + "/api/judge/results", params={"limit": 10}, headers=key)
        page.raise_for_status()
        page_file = home / "page.json"
        page_file.write_bytes(page.content)
        floor_base = f"http://127.0.0.1:{floor_port}"
        procs.append(
            start(
                [sys.executable, "-c", FLOOR_APP, str(page_file), str(floor_port)],
                env,
                floor_base,
            )
        )
        with httpx.Client(base_url=base) as browser:  # the form first: CSRF token, cookie
            form = browser.get("/ui/login").text
            token = re.search(r'name="csrf" value="([^"]+)"', form)
            assert token is not None, form
            browser.post("/ui/login", data={"key": KEY, "csrf": token.group(1)})
            cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
        targets = [
            ("floor: bare FastAPI, same JSON", floor_base + "/page", {}, ""),
            ("GET /api/judge/results?limit=10", base + "/api/judge/results?limit=10", key, ""),
            (
                "the same, never the same query (uncached)",
                base + "/api/judge/results?limit=10",
                key,
                FRESH_QUERIES,
            ),
            ("GET /health", base + "/health", {}, ""),
            ("GET /ui/runs (dashboard page)", base + "/ui/runs", {"Cookie": cookie}, ""),
        ]
        floor = None
        for name, target, headers, script in targets:
            if script and shutil.which("wrk") is None:
                continue
            wrk(target, headers, args.connections, min(2.0, args.duration), script)  # warm up
            m = wrk(target, headers, args.connections, args.duration, script)
            floor = floor or m["rps"]
            row = {"database": label, "target": name, **m, "ratio": m["rps"] / floor}
            rows.append(row)
            print(
                f"{label:10} {name:34} {m['rps']:8.0f} req/s  p50 {m['p50']:7.1f} ms  "
                f"p99 {m['p99']:7.1f} ms  ratio {row['ratio']:.2f}",
                flush=True,
            )
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=20)
        shutil.rmtree(home, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--scores", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    rows = bench("sqlite", None, args)
    if args.pg != "none":
        rows += bench("postgresql", args.pg, args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
