"""The trace explorer with 1,000,000 spans stored: the filtered trace list and a 500-span
trace, as the API and the dashboard serve them.

A fresh PostgreSQL database gets 100,000 traces of 10 spans over the last 7 days (1,000
users, 20,000 sessions, 5 models, tags, 5% errors, costs), plus one trace of 500 spans,
written by the trace writer's own code (``write_rows``: COPY and the trace rows), then
ANALYZE. The app runs under uvicorn in this process; each request is made 20 times after a
warm-up over HTTP, and the script prints p50, p95 and max per request, beside the floor:
``GET /health`` on the same server (routing, a key-less handler and one database round trip).

    python bench/bench_traces.py --pg postgresql://postgres@127.0.0.1:5432/postgres
    python bench/bench_traces.py --pg ... --reuse   # measure again on the last run's data
"""

from __future__ import annotations

import argparse
import random
import re
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from bench_api_results import fresh_database, serve

from panopticon.settings import Settings
from panopticon.store.engine import create_engine, upgrade
from panopticon.store.partitions import create_days, create_default_partitions
from panopticon.store.trace_writer import SPAN_COLUMNS, write_rows

KEY = "bench_traces_key_0123456789"
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash", "llama-3-70b"]
KINDS = ["llm", "retrieval", "tool", "llm", "chain", "llm", "tool", "retrieval", "llm"]


def trace_rows(rng: random.Random, now: datetime, spans: int = 10) -> list[dict[str, Any]]:
    trace_id = secrets.token_hex(16)
    start = now - timedelta(seconds=rng.uniform(60, 7 * 86400))
    root = secrets.token_hex(8)
    user = f"user-{rng.randrange(1000)}"
    model = rng.choice(MODELS)
    error = rng.random() < 0.05
    hints = {
        "session_id": f"session-{rng.randrange(20000)}",
        "user_id": user,
        "tenant_id": None,
        "environment": "production",
        "release": "1.0",
        "tags": [rng.choice(["support", "sales", "search"])],
        "metadata": {"tier": rng.choice(["free", "pro", "enterprise"])},
    }
    question = f"Question {rng.randrange(10**6)} about order {rng.randrange(10**5)}"
    rows = [
        {
            "workspace_id": 1,
            "trace_id": trace_id,
            "span_id": root,
            "parent_id": None,
            "start_time": start,
            "end_time": start + timedelta(milliseconds=rng.uniform(200, 8000)),
            "kind": "agent",
            "name": "handle request",
            "status": "error" if error else "ok",
            "error": "upstream timeout" if error else None,
            "input_value": question,
            "output_value": "It shipped.",
            "_hints": hints,
        }
    ]
    for i in range(spans - 1):
        s0 = start + timedelta(milliseconds=20 * i)
        kind = KINDS[i % len(KINDS)]
        row: dict[str, Any] = {
            "workspace_id": 1,
            "trace_id": trace_id,
            "span_id": secrets.token_hex(8),
            "parent_id": root,
            "start_time": s0,
            "end_time": s0 + timedelta(milliseconds=rng.uniform(5, 900)),
            "kind": kind,
            "name": f"{kind} {i}",
            "status": "ok",
            "_hints": hints,
        }
        if kind == "llm":
            row.update(
                model_requested=model,
                model_served=model,
                provider="openai",
                input_messages=[{"role": "user", "content": question}],
                output_messages=[{"role": "assistant", "content": "It shipped."}],
                input_tokens=rng.randrange(50, 2000),
                output_tokens=rng.randrange(10, 400),
                cost_usd=rng.uniform(0.0001, 0.02),
                cost_source="price_table",
            )
        elif kind == "retrieval":
            row["documents"] = [{"id": "kb-1", "content": "Orders ship in 2 days."}]
        rows.append(row)
    for r in rows:
        r["latency_ms"] = (r["end_time"] - r["start_time"]).total_seconds() * 1000
        for column in SPAN_COLUMNS:
            r.setdefault(column, None)
    return rows


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", required=True, help="an admin URL; a fresh database is made")
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument(
        "--reuse", action="store_true", help="keep the database of the last run (no new load)"
    )
    parser.add_argument("--name", default="panopticon_bench_traces", help="the database's name")
    parser.add_argument(
        "--only", help="measure only the requests whose label has one of these texts (a|b)"
    )
    args = parser.parse_args()
    if args.reuse:
        url = args.pg.rsplit("/", 1)[0] + "/" + args.name
        engine = create_engine(Settings(database_url=url))
        with engine.connect() as conn:
            big_id = conn.exec_driver_sql(
                "SELECT id FROM trace WHERE span_count = 500 LIMIT 1"
            ).scalar_one()
            now = conn.exec_driver_sql("SELECT max(start_time) FROM trace").scalar_one()
        engine.dispose()
    else:
        url, big_id, now = load(args.pg, args.traces, args.name)
    measure(url, big_id, now, args.requests, args.only)


def load(admin_url: str, traces: int, name: str) -> tuple[str, str, datetime]:
    """A fresh database with ``traces`` traces of 10 spans and one of 500: (its URL, the
    big trace's id, now)."""
    url = fresh_database(admin_url, name)
    engine = create_engine(Settings(database_url=url))
    note = upgrade(engine)
    print(f"text index: {note or 'pg_trgm GIN index in place'}", flush=True)
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    create_default_partitions(engine)
    create_days(engine, today - timedelta(days=8), today + timedelta(days=7))
    rng = random.Random(11)
    started = time.perf_counter()
    big = trace_rows(rng, now - timedelta(hours=1), spans=500)
    with engine.begin() as conn:
        write_rows(conn, big)
    batch: list[dict[str, Any]] = []
    for i in range(traces):
        batch += trace_rows(rng, now)
        if len(batch) >= 5000 or i == traces - 1:
            with engine.begin() as conn:
                write_rows(conn, batch)
            batch = []
    # committed: an ANALYZE inside a transaction that is never committed leaves no
    # statistics (the first runs of this script did that, and measured plans made blind)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
    spans = traces * 10 + 500
    print(f"stored {spans:,} spans in {time.perf_counter() - started:.0f} s", flush=True)
    engine.dispose()
    return url, big[0]["trace_id"], now


def load_average() -> str:
    """The machine's load (1, 5, 15 minutes), as ``uptime`` shows it."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure(url: str, big_id: str, now: datetime, n: int, only: str | None = None) -> None:
    engine = create_engine(Settings(database_url=url))
    with engine.connect() as conn:
        span_id = conn.exec_driver_sql(
            "SELECT span_id FROM span WHERE trace_id = %(t)s AND kind = 'llm' LIMIT 1",
            {"t": big_id},
        ).scalar_one()
    engine.dispose()
    home = Path(tempfile.mkdtemp(prefix="panopticon-bench-traces-"))
    base, stop = serve(Settings(home=home, database_url=url, api_key=KEY))
    since = (now - timedelta(days=1)).isoformat()
    requests = {
        "floor: GET /health": ("/health", {}),
        "list, newest first": ("/api/traces", {}),
        "list, last 24 h": ("/api/traces", {"since": since}),
        "list, one user": ("/api/traces", {"user_id": "user-7"}),
        "list, one session": ("/api/traces", {"session_id": "session-42"}),
        "list, errors": ("/api/traces", {"status": "error"}),
        "list, tag": ("/api/traces", {"tag": "sales", "since": since}),
        "list, metadata": ("/api/traces", {"metadata_key": "tier", "metadata_value": "pro"}),
        "list, metadata key (every trace)": ("/api/traces", {"metadata_key": "tier"}),
        "list, metadata + tag": (
            "/api/traces",
            {"metadata_key": "tier", "metadata_value": "free", "tag": "search"},
        ),
        "list, model": ("/api/traces", {"model": "llama-3-70b", "since": since}),
        "list, latency >= 7 s": ("/api/traces", {"min_latency_ms": 7000}),
        "list, by cost": ("/api/traces", {"sort": "-cost_usd"}),
        "list, text": ("/api/traces", {"text": "order 4242", "since": since}),
        "list, text (7 days)": ("/api/traces", {"text": "order 4242"}),
        "list, text, one question": ("/api/traces", {"text": "question 123456 "}),
        "list, text, common (7 days)": ("/api/traces", {"text": "about order"}),
        "list, text + metadata": (
            "/api/traces",
            {"text": "order 42", "metadata_key": "tier", "metadata_value": "pro"},
        ),
        "trace of 500 spans (API)": (f"/api/traces/{big_id}", {}),
        "trace of 500 spans, tree (API)": (f"/api/traces/{big_id}/tree", {}),
        "trace of 500 spans (page)": (f"/ui/traces/{big_id}", {}),
        "one span of it (API)": (f"/api/traces/{big_id}/spans/{span_id}", {}),
        "one span of it (page, opened)": (f"/ui/traces/{big_id}/spans/{span_id}", {"hx": "1"}),
        "trace list (page)": ("/ui/traces", {}),
    }
    try:
        with httpx.Client(base_url=base, timeout=120, follow_redirects=True) as client:
            csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text)
            assert csrf is not None, "no sign-in form"
            signed = client.post("/ui/login", data={"key": KEY, "csrf": csrf.group(1)})
            assert signed.status_code == 200, signed.text[:300]
            print(f"load average at start: {load_average()}")
            print(
                f"{'request':32} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
                f"{'p50/floor':>9} {'p95/floor':>9} {'load 1m':>7}"
            )
            floor: tuple[float, float] | None = None
            for label, (path, params) in requests.items():
                if only and floor is not None and not any(o in label for o in only.split("|")):
                    continue
                headers = {"X-API-Key": KEY}
                if params.pop("hx", None):
                    headers["HX-Request"] = "true"
                r = client.get(path, params=params, headers=headers)
                assert r.status_code == 200, (label, r.status_code, r.text[:300])
                times = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    r = client.get(path, params=params, headers=headers)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200
                p50, p95 = statistics.median(times), pct(times, 95)
                floor = floor or (p50, p95)
                print(
                    f"{label:32} {p50:8.1f} {p95:8.1f} {max(times):8.1f} "
                    f"{p50 / floor[0]:9.1f} {p95 / floor[1]:9.1f} {load_average().split()[0]:>7}",
                    flush=True,
                )
            print(f"load average at end: {load_average()}")
    finally:
        stop()


if __name__ == "__main__":
    main()
