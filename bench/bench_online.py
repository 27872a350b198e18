"""Online evaluation on PostgreSQL: live traffic judged by a rule, workers scaling, budgets.

Every phase runs on a fresh PostgreSQL database, with ``panopticon serve --role api,ingest``
and ``panopticon worker`` processes of their own, and the bundled mock server (its own
process) as the judge: the model ``mock-judge`` answers after 50 ms, priced at $1 / $2 per
million tokens. Spans are sent as OTLP protobuf batches to ``/v1/traces`` (the real ingest
path: decoding, the trace writer, the online inbox in the same transaction), 5 LLM spans
per trace, every span's question and answer unique (nothing is deduplicated).

1. **steady**: ``--rate`` spans/s for ``--seconds`` (paced: a batch every 100 ms), a rule
   with one rubric metric sampling 10% of traces, ``--workers`` worker processes. It reports
   whether the pipeline keeps up (the inbox and the waiting entries stay bounded while
   spans arrive, and drain after), the time from a span's batch being sent to its score
   (p50, p95, max; and to its ledger entry), and CPU per span and per judged entry of each
   process. Floors, run in the same script: the same load with no rule enabled (what the
   inbox adds to ingestion), and a bare aiohttp client making the same judge calls against
   the same mock (CPU per call, the call's own latency).
2. **scale**: a backlog of ``--backlog`` pending entries (a rule at rate 1.0; the spans
   sent with no worker running, then selected by ``select_new``, the tick's own code), then
   one worker process, then (on a fresh copy) two: entries judged per second, and the
   ratio. The floor: a bare aiohttp client with one and then two times a worker's judge
   calls in flight, on as many calls (the ratio this machine allows for the calls alone).
3. **budget**: four worker processes against a rule with ``usd_per_day``, on a backlog
   that would cost several times the budget: the final spend (the budget's own row, the
   ledger's costs and the scores' costs) over the budget, and how far below it in calls'
   cost bounds (target: never above, less than one bound below).

In every run, the ledger is checked: every span stored has exactly one outcome for every
enabled rule, none is left waiting, and the mock answered no judge prompt twice.

    python bench/bench_online.py                 # all three phases, 60 s of traffic
    python bench/bench_online.py --quick         # a short version (about 3 minutes)
    python bench/bench_online.py --phases scale --backlog 6000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).parent))

from bench_ingest import free_port, pct, tree

KEY = "bench_online_key_0123456789"
HEADERS = {"X-API-Key": KEY}
SPANS_PER_TRACE = 5
BATCH_EVERY_S = 0.1
PRICE = {"input": 1, "output": 2}  # USD per million tokens
ANALYZE_EVERY_S = 30.0  # autovacuum's naptime is 60 s; a table that grew 10% is analyzed
RUBRIC = "Does the answer solve the customer's problem? Rate it."

MOCK = """
import json, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
from threading import Thread
from panopticon.mockllm import MockConfig, MockServer
server = MockServer(MockConfig(model_latency_ms={"mock-judge": float(sys.argv[1])})).start()
class LastBody(BaseHTTPRequestHandler):  # the last request's body (for a call's cost bound)
    def log_message(self, *args):
        pass
    def do_GET(self):
        body = json.dumps(server.stats.last_body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
side = HTTPServer(("127.0.0.1", 0), LastBody)
Thread(target=side.serve_forever, daemon=True).start()
print(server.port, side.server_address[1], flush=True)
while True:
    time.sleep(3600)
"""


# --- processes ------------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by a set of processes between start() and now (processes first
    seen after start() count from zero)."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def see(self, pids: list[int], *, at_start: bool = False) -> None:
        for pid in pids:
            used = proc_cpu_s(pid)
            if pid not in self.first:
                self.first[pid] = used if at_start else 0.0
            if used:
                self.last[pid] = used

    def used(self) -> float:
        return sum(self.last.get(p, f) - f for p, f in self.first.items())


@dataclass
class Stack:
    """The processes of one phase: the database, the server (api + ingest), the workers."""

    url: str
    home: Path
    base: str
    server: subprocess.Popen[bytes]
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_workers(self, n: int, concurrency: int) -> None:
        logs = []
        for _ in range(n):
            log = self.home / f"worker-{len(self.workers)}.log"
            proc = subprocess.Popen(
                [sys.executable, "-m", "panopticon", "worker", "--concurrency", str(concurrency)],
                env=self.env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            self.workers.append(proc)
            logs.append(log)
        deadline = time.monotonic() + 60
        while not all("taking jobs" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.05)

    def stop_workers(self) -> None:
        for p in self.workers:
            p.terminate()
        for p in self.workers:
            p.wait(30)
        self.workers = []

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self.workers]

    def close(self) -> None:
        self.stop_workers()
        self.server.terminate()
        self.server.wait(30)


@contextmanager
def stack(admin_url: str, name: str, online_workers: int) -> Iterator[Stack]:
    """A fresh database ``name``, migrated, with the server started on it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    home = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        PANOPTICON_DATABASE_URL=url,
        PANOPTICON_HOME=str(home),
        PANOPTICON_API_KEY=KEY,
        PANOPTICON_ONLINE_WORKERS=str(online_workers),
    )
    subprocess.run(
        [sys.executable, "-m", "panopticon", "db", "upgrade"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # the job queue's tables, installed once before any worker starts (workers that start
    # together on an empty database race to install them, and one of them fails)
    from panopticon.settings import Settings
    from panopticon.worker import build_app, ensure_schema

    asyncio.run(ensure_schema(build_app(Settings(database_url=url, home=home), {})))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "panopticon", "serve", "--role", "api,ingest", "--port", str(port)],
        env=env,
        stdout=(home / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/health").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    s = Stack(url, home, base, server, env)
    try:
        yield s
    finally:
        s.close()


def setup(s: Stack, mock_url: str, *, rate: float, budget: float | None = None) -> None:
    """The judge model and one rule with one rubric metric, through the API."""
    r = httpx.post(
        s.base + "/api/models",
        headers=HEADERS,
        json={"id": "judge", "model": "mock-judge", "base_url": mock_url, "price": PRICE},
    )
    assert r.status_code == 201, r.text
    rule: dict[str, Any] = {
        "name": "helpful",
        "metrics": [{"name": "helpful", "type": "rubric", "prompt": RUBRIC, "scale": [1, 10]}],
        "judge": "judge",
        "filter": {"span_kinds": ["llm"]},
        "sampling": {"rate": rate},
    }
    if budget is not None:
        rule["budgets"] = {"usd_per_day": budget}
    r = httpx.post(s.base + "/api/online/rules", headers=HEADERS, json=rule)
    assert r.status_code == 201, r.text


# --- traffic --------------------------------------------------------------------------------


@dataclass
class Batch:
    body: bytes
    trace_ids: list[str]
    spans: int
    sent: float = 0.0  # Unix time
    acked: float = 0.0


def encode(n_spans: int, per_batch: int, tag: str) -> list[Batch]:
    """OTLP protobuf batches of traces of SPANS_PER_TRACE LLM spans, each span's question
    and answer unique."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    def kv(key: str, value: Any) -> KeyValue:
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=str(value)))

    now = time.time_ns()
    out = []
    for b in range(max(1, n_spans // per_batch)):
        spans = []
        ids = []
        for t in range(per_batch // SPANS_PER_TRACE):
            trace_id = secrets.token_bytes(16)
            ids.append(trace_id.hex())
            for i in range(SPANS_PER_TRACE):
                start = now + ((b * per_batch + t) * SPANS_PER_TRACE + i) * 1000
                q = f"{tag} question {b}-{t}-{i}: where is my order {secrets.token_hex(4)}?"
                spans.append(
                    Span(
                        trace_id=trace_id,
                        span_id=secrets.token_bytes(8),
                        name="chat",
                        start_time_unix_nano=start,
                        end_time_unix_nano=start + 400_000_000,
                        attributes=[
                            kv("gen_ai.operation.name", "chat"),
                            kv("gen_ai.system", "openai"),
                            kv("gen_ai.request.model", "gpt-4o-mini"),
                            kv("gen_ai.usage.input_tokens", 200),
                            kv("gen_ai.usage.output_tokens", 40),
                            kv("gen_ai.prompt.0.role", "user"),
                            kv("gen_ai.prompt.0.content", q),
                            kv("gen_ai.completion.0.role", "assistant"),
                            kv("gen_ai.completion.0.content", f"It shipped yesterday ({q[-9:]})."),
                        ],
                    )
                )
        request = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource={"attributes": [kv("service.name", "shop")]},
                    scope_spans=[ScopeSpans(spans=spans)],
                )
            ]
        )
        out.append(Batch(request.SerializeToString(), ids, len(spans)))
    return out


async def send(base: str, batches: list[Batch], every_s: float | None, clients: int = 8) -> float:
    """Post the batches, one every ``every_s`` (paced; None: as fast as ``clients`` allow).
    Returns the wall seconds. Every batch must be acknowledged (committed)."""
    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {KEY}"}
    gate = asyncio.Semaphore(clients)

    async def post(session: aiohttp.ClientSession, b: Batch) -> None:
        async with gate:
            b.sent = time.time()
            while True:
                async with session.post(base + "/v1/traces", data=b.body, headers=headers) as r:
                    await r.read()
                    if r.status in (429, 503):
                        await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                        continue
                    assert r.status == 200, (r.status, await r.text())
                    break
            b.acked = time.time()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        started = time.perf_counter()
        tasks = []
        for i, b in enumerate(batches):
            if every_s is not None:
                delay = started + i * every_s - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(session, b)))
        await asyncio.gather(*tasks)
        return time.perf_counter() - started


# --- the database, watched ------------------------------------------------------------------

WAITING = "('pending', 'rate_limited', 'running')"


def counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM online_inbox),"
        f" count(*) FILTER (WHERE outcome IN {WAITING}),"
        " count(*) FILTER (WHERE outcome = 'evaluated'),"
        " count(*) FROM online_outcome"
    ).fetchone()
    assert row is not None
    return {"inbox": row[0], "waiting": row[1], "evaluated": row[2], "outcomes": row[3]}


class Watcher:
    """Every second: the inbox, waiting and judged entries, and the CPU of our processes
    (the server, the workers, PostgreSQL's backends on this database, the mock)."""

    def __init__(self, s: Stack, mock_pid: int) -> None:
        self.s = s
        self.mock_pid = mock_pid
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.cpu = {k: CpuMeter() for k in ("server", "workers", "postgres", "mock")}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.conn = psycopg.connect(s.url, autocommit=True)
        self._db = s.url.rsplit("/", 1)[1]
        self._sample(at_start=True)

    def _pg_pids(self) -> list[int]:
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (self._db,),
        ).fetchall()
        return [r[0] for r in rows]

    def _sample(self, at_start: bool = False) -> None:
        self.cpu["server"].see(tree(self.s.server.pid), at_start=at_start)
        self.cpu["workers"].see(self.s.worker_pids(), at_start=at_start)
        self.cpu["postgres"].see(self._pg_pids(), at_start=at_start)
        self.cpu["mock"].see([self.mock_pid], at_start=at_start)
        if not at_start:
            self.samples.append((time.time(), counts(self.conn)))

    def _run(self) -> None:
        analyzed = time.monotonic()
        while not self._stop.wait(1.0):
            self._sample()
            if time.monotonic() - analyzed >= ANALYZE_EVERY_S:
                # what autovacuum does on a production server (it is off on this machine):
                # the planner's statistics of the tables that grow during the run
                self.conn.execute("ANALYZE span, trace, online_outcome, online_inbox, score")
                analyzed = time.monotonic()

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.conn.close()

    def used(self) -> dict[str, float]:
        return {k: m.used() for k, m in self.cpu.items()}


def wait_settled(url: str, expected_outcomes: int, timeout: float) -> float:
    """Wait until every span has its outcome and none waits; returns when (Unix time)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            c = counts(conn)
            if c["inbox"] == 0 and c["waiting"] == 0 and c["outcomes"] >= expected_outcomes:
                return time.time()
            assert time.monotonic() < deadline, f"not settled in {timeout:g} s: {c}"
            time.sleep(0.2)


def check_ledger(url: str, spans_sent: int, mock: str) -> dict[str, int]:
    """Every span stored has exactly one final outcome per enabled rule; no judge prompt
    was answered twice. Returns the outcomes counted."""
    with psycopg.connect(url, autocommit=True) as conn:
        spans = conn.execute("SELECT count(*) FROM span").fetchone()[0]  # type: ignore[index]
        rules = conn.execute("SELECT count(*) FROM online_rule WHERE enabled").fetchone()[0]  # type: ignore[index]
        missing = conn.execute(
            "SELECT count(*) FROM span s CROSS JOIN online_rule r WHERE r.enabled AND NOT EXISTS"
            " (SELECT 1 FROM online_outcome o WHERE o.rule_id = r.id AND o.rule_version ="
            " r.version AND o.trace_id = s.trace_id AND o.span_id = s.span_id)"
        ).fetchone()[0]  # type: ignore[index]
        twice = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM online_outcome GROUP BY rule_id, trace_id,"
            " span_id HAVING count(*) > 1) d"
        ).fetchone()[0]  # type: ignore[index]
        strays = conn.execute(
            "SELECT count(*) FROM online_outcome o WHERE NOT EXISTS (SELECT 1 FROM span s"
            " WHERE s.trace_id = o.trace_id AND s.span_id = o.span_id)"
        ).fetchone()[0]  # type: ignore[index]
        by = dict(
            conn.execute("SELECT outcome, count(*) FROM online_outcome GROUP BY outcome").fetchall()
        )
        scores = conn.execute("SELECT count(*) FROM score WHERE source = 'online'").fetchone()[0]  # type: ignore[index]
    stats = httpx.get(mock + "/_mock/stats").json()
    assert spans == spans_sent, f"{spans} spans stored, {spans_sent} sent"
    assert rules == 1 and missing == 0 and twice == 0 and strays == 0, (missing, twice, strays)
    assert sum(by.values()) == spans * rules, by
    assert not set(by) & {"pending", "running", "rate_limited"}, by
    assert scores == by.get("evaluated", 0), (scores, by)  # one metric: one score each
    assert stats["answered_duplicates"] == 0, stats
    assert stats["by_route"].get("chat", 0) == by.get("evaluated", 0), (stats, by)
    return by


# --- floors ---------------------------------------------------------------------------------


def judge_body(i: int) -> dict[str, Any]:
    """A judge call like the rubric's (same model, about the same prompt size)."""
    prompt = (
        f"{RUBRIC}\n\nQuestion: bench question {i}: where is my order {secrets.token_hex(4)}?"
        "\n\nAnswer: It shipped yesterday.\n\nReply with a score from 1 to 10 and a reason."
    )
    return {
        "model": "mock-judge",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 1024,
        "temperature": 0,
    }


async def bare_judge(mock_url: str, calls: int, in_flight: int) -> tuple[float, list[float]]:
    """A bare aiohttp client: ``calls`` judge calls, ``in_flight`` at once, each answer
    parsed. Returns (wall s, per-call latencies)."""
    latencies: list[float] = []
    todo = iter(range(calls))

    async def worker(session: aiohttp.ClientSession) -> None:
        for i in todo:
            t0 = time.perf_counter()
            async with session.post(mock_url + "/chat/completions", json=judge_body(i)) as r:
                data = await r.json()
                assert r.status == 200 and data["choices"][0]["message"]["content"], data
            latencies.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(in_flight)))
        return time.perf_counter() - started, latencies


def bare_judge_process(mock_url: str, calls: int, in_flight: int) -> dict[str, float]:
    """The bare client in its own process (as a worker is): wall, calls/s, CPU per call."""
    code = (
        "import asyncio, json, resource, sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from bench_online import bare_judge\n"
        "wall, lat = asyncio.run(bare_judge(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))\n"
        "ru = resource.getrusage(resource.RUSAGE_SELF)\n"
        "lat.sort()\n"
        "print(json.dumps({'wall': wall, 'cpu': ru.ru_utime + ru.ru_stime,"
        " 'p50': lat[len(lat) // 2], 'p95': lat[int(len(lat) * 0.95)]}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, mock_url, str(calls), str(in_flight)],
        check=True,
        capture_output=True,
        text=True,
    )
    import json

    r: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    r["rate"] = calls / r["wall"]
    r["cpu_ms_per_call"] = r["cpu"] / calls * 1000
    return r


# --- figures --------------------------------------------------------------------------------


def load_now() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} cores"


def score_latencies(url: str, batches: list[Batch]) -> tuple[list[float], list[float]]:
    """Per evaluated span: seconds from its batch being sent to its score, and to its
    ledger entry."""
    sent = {t: b.sent for b in batches for t in b.trace_ids}
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT o.trace_id, o.created_at, s.created_at FROM online_outcome o JOIN score s"
            " ON s.trace_id = o.trace_id AND s.span_id = o.span_id AND s.source = 'online'"
            " WHERE o.outcome = 'evaluated'"
        ).fetchall()
    to_score = [s.timestamp() - sent[t] for t, _, s in rows]
    to_entry = [o.timestamp() - sent[t] for t, o, _ in rows]
    return to_score, to_entry


# --- phases ---------------------------------------------------------------------------------


@dataclass
class Mock:
    proc: subprocess.Popen[str]
    root: str
    last_body_url: str

    @property
    def url(self) -> str:
        return self.root + "/v1"

    def reset(self) -> None:
        httpx.post(self.root + "/_mock/reset")
        httpx.post(self.root + "/_mock/config", json={"model_latency_ms": {"mock-judge": 50.0}})


def steady(args: argparse.Namespace, mock: Mock) -> None:
    n = int(args.rate * args.seconds)
    per_batch = int(args.rate * BATCH_EVERY_S)
    print(
        f"\n== steady: {args.rate:,} spans/s for {args.seconds:g} s ({n:,} spans, batches of "
        f"{per_batch}), rule samples 10%, judge 50 ms, {args.workers} worker process(es) x "
        f"concurrency {args.concurrency}, PANOPTICON_ONLINE_WORKERS={args.slots}",
        flush=True,
    )

    # the floor: the same traffic with no rule enabled
    mock.reset()
    with stack(args.pg, "panopticon_bench_online_floor", args.slots) as s:
        batches = encode(n, per_batch, "floor")
        w = Watcher(s, mock.proc.pid)
        with w:
            wall = asyncio.run(send(s.base, batches, BATCH_EVERY_S))
        floor_cpu = w.used()
        floor_ack = [b.acked - b.sent for b in batches]
        floor_rate = n / wall
    print(
        f"floor, no rule: {floor_rate:,.0f} spans/s sent over {wall:.1f} s; ack p50 "
        f"{pct(floor_ack, 50) * 1000:.0f} ms p95 {pct(floor_ack, 95) * 1000:.0f} ms; server "
        f"CPU {floor_cpu['server'] / n * 1e6:.0f} us/span, PostgreSQL "
        f"{floor_cpu['postgres'] / n * 1e6:.0f} us/span; {load_now()}",
        flush=True,
    )

    mock.reset()
    with stack(args.pg, "panopticon_bench_online", args.slots) as s:
        setup(s, mock.url, rate=0.1)
        s.start_workers(args.workers, args.concurrency)
        batches = encode(n, per_batch, "steady")
        w = Watcher(s, mock.proc.pid)
        with w:
            wall = asyncio.run(send(s.base, batches, BATCH_EVERY_S))
            stopped = time.time()
            done = wait_settled(s.url, n, timeout=600)
        cpu = w.used()
        by = check_ledger(s.url, n, mock.root)
        to_score, to_entry = score_latencies(s.url, batches)
        ack = [b.acked - b.sent for b in batches]
    judged = by.get("evaluated", 0)
    during = [c for t, c in w.samples if t <= stopped]
    half = [c for t, c in w.samples if t > stopped - args.seconds / 2 and t <= stopped]
    t0 = w.samples[0][0]
    print(
        f"online: {n / wall:,.0f} spans/s sent over {wall:.1f} s ({n / wall / floor_rate:.2f} "
        f"of the floor's); ack p50 {pct(ack, 50) * 1000:.0f} ms p95 {pct(ack, 95) * 1000:.0f} ms "
        f"(floor p95 {pct(floor_ack, 95) * 1000:.0f} ms); {load_now()}"
    )
    print(
        f"ledger: {sum(by.values()):,} outcomes for {n:,} spans, every span once: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(by.items()))
    )
    print(
        f"keeping up: while spans arrived, inbox at most {max(c['inbox'] for c in during):,}, "
        f"waiting at most {max(c['waiting'] for c in during):,} (last half: inbox at most "
        f"{max((c['inbox'] for c in half), default=0):,}, waiting at most "
        f"{max((c['waiting'] for c in half), default=0):,}); all judged {done - stopped:.1f} s "
        f"after the last batch ({judged:,} judged, {judged / (done - t0):.0f}/s over the run)"
    )
    print(
        f"send -> score: p50 {pct(to_score, 50):.2f} s, p95 {pct(to_score, 95):.2f} s, max "
        f"{max(to_score):.2f} s (target p95 < 10 s); send -> ledger entry p50 "
        f"{pct(to_entry, 50):.2f} s, p95 {pct(to_entry, 95):.2f} s"
    )
    bare = bare_judge_process(mock.url, max(judged, 200), 16)
    per_judged = cpu["workers"] / judged * 1000
    print(
        f"CPU: server {cpu['server'] / n * 1e6:.0f} us/span "
        f"({cpu['server'] / floor_cpu['server']:.2f}x the floor's), PostgreSQL "
        f"{cpu['postgres'] / n * 1e6:.0f} us/span "
        f"({cpu['postgres'] / max(floor_cpu['postgres'], 1e-9):.2f}x); workers "
        f"{per_judged:.1f} ms per judged entry ({cpu['workers'] / n * 1e6:.0f} us/span), "
        f"{per_judged / bare['cpu_ms_per_call']:.1f}x a bare client's "
        f"{bare['cpu_ms_per_call']:.2f} ms per judge call; mock "
        f"{cpu['mock'] / judged * 1000:.2f} ms/call; judge call alone p50 "
        f"{bare['p50'] * 1000:.0f} ms p95 {bare['p95'] * 1000:.0f} ms"
    )


def backlog(args: argparse.Namespace, s: Stack, mock: Mock, n: int) -> None:
    """``n`` pending entries: spans sent with no worker running, selected by select_new."""
    from panopticon.services.online_eval import select_new
    from panopticon.settings import Settings
    from panopticon.store.engine import create_engine

    batches = encode(n, 500 if n % 500 == 0 else 100, "backlog")
    asyncio.run(send(s.base, batches, None))
    settings = Settings(database_url=s.url, home=s.home, online_max_waiting=max(n, 100) * 2)
    engine = create_engine(settings)
    try:
        while select_new(engine, settings).taken:
            pass
    finally:
        engine.dispose()
    with psycopg.connect(s.url, autocommit=True) as conn:
        c = counts(conn)
    assert c["inbox"] == 0 and c["waiting"] == n, c


def drain(args: argparse.Namespace, s: Stack, mock: Mock, n: int, workers: int) -> dict[str, Any]:
    """Start ``workers`` processes on the backlog; time it until every entry has its outcome."""
    w = Watcher(s, mock.proc.pid)
    started = time.time()
    with w:
        s.start_workers(workers, args.concurrency)
        ready = time.time()
        done = wait_settled(s.url, n, timeout=900)
    cpu = w.used()
    by = check_ledger(s.url, n, mock.root)
    # the steady rate: between 10% and 90% of the entries judged (start-up and tail left out)
    marks = [(t, c["outcomes"] - c["waiting"]) for t, c in w.samples]
    lo = next((t, d) for t, d in marks if d >= 0.1 * n)
    hi = next((t, d) for t, d in marks if d >= 0.9 * n)
    steady_rate = (hi[1] - lo[1]) / max(hi[0] - lo[0], 1e-9)
    return {
        "wall": done - ready,
        "start": ready - started,
        "rate": n / (done - ready),
        "steady": steady_rate,
        "by": by,
        "cpu": cpu,
    }


def scale(args: argparse.Namespace, mock: Mock) -> None:
    n = args.backlog - args.backlog % 100
    per_worker = args.concurrency - 1
    slots = 2 * per_worker
    print(
        f"\n== scale: a backlog of {n:,} pending entries, one worker process then two "
        f"(each --concurrency {args.concurrency}: the tick and {per_worker} judging task(s) of "
        f"up to 16 calls; PANOPTICON_ONLINE_WORKERS={slots}), judge 50 ms",
        flush=True,
    )
    results: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for _ in range(args.repeats):  # interleaved: the machine's load changes by the minute
        for workers in (1, 2):
            mock.reset()
            with stack(args.pg, "panopticon_bench_online_scale", slots) as s:
                setup(s, mock.url, rate=1.0)
                backlog(args, s, mock, n)
                mock.reset()
                r = drain(args, s, mock, n, workers)
            results[workers].append(r)
            cpu = r["cpu"]
            print(
                f"{workers} worker(s): {r['wall']:.1f} s for {n:,} entries = {r['rate']:.0f}/s "
                f"({r['steady']:.0f}/s between 10% and 90%); CPU per entry: workers "
                f"{cpu['workers'] / n * 1000:.2f} ms, PostgreSQL "
                f"{cpu['postgres'] / n * 1000:.2f} ms, mock {cpu['mock'] / n * 1000:.2f} ms; "
                f"our processes busy {sum(cpu.values()) / (r['wall'] + r['start']):.2f} "
                f"cores; {load_now()}",
                flush=True,
            )
    floor = {k: bare_judge_process(mock.url, n, 16 * per_worker * k) for k in (1, 2)}
    for k, f in floor.items():
        print(
            f"floor, bare client with {16 * per_worker * k} calls in flight: {f['rate']:.0f} "
            f"calls/s, {f['cpu_ms_per_call']:.2f} ms CPU per call; {load_now()}"
        )
    one = statistics.median(r["rate"] for r in results[1])
    two = statistics.median(r["rate"] for r in results[2])
    cpu1 = statistics.median(r["cpu"]["workers"] / n * 1000 for r in results[1])
    print(
        f"two workers / one (median rates): {two / one:.2f}x (target >= 1.8x); the floor's: "
        f"{floor[2]['rate'] / floor[1]['rate']:.2f}x; one worker at {one / floor[1]['rate']:.2f} "
        f"of its floor, two at {two / floor[2]['rate']:.2f}; a worker's CPU per entry "
        f"{cpu1:.2f} ms = {cpu1 / floor[1]['cpu_ms_per_call']:.1f}x the bare client's per call"
    )


def budget(args: argparse.Namespace, mock: Mock) -> None:
    n = args.budget_backlog - args.budget_backlog % 100
    limit = args.budget
    print(
        f"\n== budget: 4 worker processes (each --concurrency 2; PANOPTICON_ONLINE_WORKERS=4), "
        f"a rule with usd_per_day={limit:g} on a backlog of {n:,} entries",
        flush=True,
    )
    mock.reset()
    with stack(args.pg, "panopticon_bench_online_budget", 4) as s:
        setup(s, mock.url, rate=1.0, budget=limit)
        backlog(args, s, mock, n)
        mock.reset()
        saved, args.concurrency = args.concurrency, 2
        try:
            r = drain(args, s, mock, n, 4)
        finally:
            args.concurrency = saved
        body = httpx.get(mock.last_body_url).json()
        with psycopg.connect(s.url, autocommit=True) as conn:
            spent, reserved = conn.execute(
                "SELECT spent_usd, reserved_usd FROM online_budget WHERE scope = 'rule:helpful'"
            ).fetchone()  # type: ignore[misc]
            ledger_cost = conn.execute(
                "SELECT coalesce(sum(cost_usd), 0) FROM online_outcome"
            ).fetchone()[0]  # type: ignore[index]
            score_cost = conn.execute(
                "SELECT coalesce(sum(judge_cost_usd), 0), coalesce(max(judge_cost_usd), 0)"
                " FROM score WHERE source = 'online'"
            ).fetchone()  # type: ignore[misc]
    by = r["by"]
    # a call's bound: its prompt's UTF-8 bytes (+8 a message) in, max_tokens 1,024 out
    prompt = sum(len(str(m["content"]).encode()) + 8 for m in body["messages"])
    bound = (prompt * PRICE["input"] + 1024 * PRICE["output"]) / 1e6
    assert abs(reserved) < 1e-12, reserved  # every hold settled (float residue aside)
    assert spent <= limit + 1e-12, (spent, limit)
    assert abs(spent - ledger_cost) < 1e-9 and abs(spent - score_cost[0]) < 1e-9, (
        spent,
        ledger_cost,
        score_cost,
    )
    print(
        "outcomes: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(by.items()))
        + f"; {r['wall']:.1f} s"
    )
    print(
        f"spend ${spent:.6f} of ${limit:g}: {spent / limit:.4f} of the budget, never above "
        f"(the ledger's costs ${ledger_cost:.6f}, the scores' ${score_cost[0]:.6f}); "
        f"${limit - spent:.6f} left = {(limit - spent) / bound:.2f} of one call's bound "
        f"(${bound:.6f}; a call really cost at most ${score_cost[1]:.6f}) "
        f"(target: below 1: {'met' if limit - spent < bound else 'NOT met'}); {load_now()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--quick", action="store_true", help="a short version of every phase")
    parser.add_argument("--phases", default="steady,scale,budget")
    parser.add_argument("--rate", type=int, default=1000, help="spans/s in the steady phase")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (steady)")
    parser.add_argument("--concurrency", type=int, default=3, help="each worker's --concurrency")
    parser.add_argument("--slots", type=int, default=2, help="PANOPTICON_ONLINE_WORKERS (steady)")
    parser.add_argument("--backlog", type=int, default=6000, help="entries (scale)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of 1 and 2 (scale)")
    parser.add_argument("--budget", type=float, default=0.05, help="USD a day (budget)")
    parser.add_argument("--budget-backlog", type=int, default=1500)
    args = parser.parse_args()
    if args.quick:
        args.seconds = min(args.seconds, 15.0)
        args.backlog = min(args.backlog, 2000)
        args.repeats = 1
        args.budget_backlog = min(args.budget_backlog, 800)
        args.budget = min(args.budget, 0.03)
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {load_now()}", flush=True)
    port_proc = subprocess.Popen(
        [sys.executable, "-c", MOCK, "50"], stdout=subprocess.PIPE, text=True
    )
    assert port_proc.stdout is not None
    port, side = (int(p) for p in port_proc.stdout.readline().split())
    mock = Mock(port_proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{side}/")
    try:
        phases = args.phases.split(",")
        if "steady" in phases:
            steady(args, mock)
        if "scale" in phases:
            scale(args, mock)
        if "budget" in phases:
            budget(args, mock)
    finally:
        port_proc.terminate()
        port_proc.wait()


if __name__ == "__main__":
    main()
