"""The dashboard's pages with 100,000 results stored: server time per page.

A fresh database gets one run of 5 models x 20,000 queries (100,000 answers) with 2
metrics each (200,000 scores), written directly (bench_report.populate). The app runs under
uvicorn in this process; a signed-in client requests each page 20 times over HTTP after a
warm-up request, and the script prints p50, p95 and max per page.

    python bench/bench_web.py            # SQLite
    python bench/bench_web.py --pg postgresql://postgres@127.0.0.1:5432/postgres

On PostgreSQL the script runs ANALYZE after the load, as autovacuum does after a load of
this size; SQLite keeps no statistics unless asked, so it runs without.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from bench_api_results import fresh_database, serve
from bench_report import populate

from panopticon.settings import Settings
from panopticon.store.engine import create_engine, upgrade

KEY = "bench_web_key_0123456789"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", help="an admin URL: a fresh database is made next to it")
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="panopticon-bench-web-"))
    env = {"PANOPTICON_HOME": str(home)}
    if args.pg:
        url = fresh_database(args.pg, "panopticon_bench_web")
        engine = create_engine(Settings(database_url=url))
        upgrade(engine)
        engine.dispose()
        env["PANOPTICON_DATABASE_URL"] = url
    started = time.perf_counter()
    populate(env, 20_000, metrics_per_answer=2)
    if args.pg:  # as autovacuum would after a load this size (SQLite has no statistics)
        import psycopg

        with psycopg.connect(env["PANOPTICON_DATABASE_URL"], autocommit=True) as conn:
            conn.execute("ANALYZE")
    print(f"stored 100,000 answers and 200,000 scores in {time.perf_counter() - started:.0f} s")
    settings = Settings(home=home, database_url=env.get("PANOPTICON_DATABASE_URL"), api_key=KEY)
    base, stop = serve(settings)
    try:
        with httpx.Client(base_url=base, timeout=60, follow_redirects=True) as client:
            csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text)
            assert csrf is not None
            signed = client.post("/ui/login", data={"key": KEY, "csrf": csrf.group(1)})
            assert signed.status_code == 200
            first = re.search(r"/ui/results/([0-9a-f-]{36})", client.get("/ui/results").text)
            assert first
            pages = [
                "/ui/",
                "/ui/compare",
                "/ui/themes",
                "/ui/results",
                "/ui/results?model=m3&passed=false",
                "/ui/results?text=q1999",
                f"/ui/results/{first.group(1)}",
                "/ui/runs",
                "/ui/runs/1",
                "/ui/trends",
                "/ui/annotate",
                "/ui/queries",
                "/ui/metrics",
                "/ui/models",
                # fragments a page loads after it is shown
                "/ui/runs/1/report",
                "/ui/compare/paired?run=1&a=m1&b=m5",
            ]
            print(f"{'page':42} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
            for page in pages:
                r = client.get(page)
                assert r.status_code == 200, (page, r.status_code, r.text[:300])
                times = []
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    r = client.get(page)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200
                q = statistics.quantiles(times, n=20)
                print(
                    f"{page:42} {statistics.median(times):8.1f} {q[18]:8.1f} {max(times):8.1f}",
                    flush=True,
                )
    finally:
        stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
