"""OTLP ingestion into PostgreSQL: spans per second and time until a span is visible.

The script encodes batches up front (as a Collector sends them: ExportTraceServiceRequest
protobuf, 500 spans each: 50 traces of an agent chain, retrieval, tool and two LLM calls
with GenAI attributes, messages and token counts), then posts them from C concurrent
clients (aiohttp, in this process) to:

1. a **floor**: a bare aiohttp server (its own process) that reads each body and answers an
   empty ExportTraceServiceResponse, discarding the spans;
2. **Panopticon**: ``panopticon serve --role ingest`` (its own process) on a fresh
   PostgreSQL database: authentication, decoding, normalisation, pricing, COPY and the
   trace rows, acknowledged only once committed.

For Panopticon it also reports the request latency (send to acknowledgement, which is when
the spans are committed and queryable) and checks visibility directly: for every tenth
batch, a poller reads one of its traces from the database right after the acknowledgement
and records how long until it is there. RSS of the server is read after the first 100,000
spans and at the end.

    python bench/bench_ingest.py --pg postgresql://postgres@127.0.0.1:5432/postgres
    python bench/bench_ingest.py --pg ... --spans 1000000 --clients 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

sys.path.insert(0, str(Path(__file__).parent))

from bench_api_results import fresh_database

KEY = "bench_ingest_key_0123456789"
BATCH = 500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def encode_batches(n_batches: int) -> list[tuple[bytes, str]]:
    """(body, one trace id of it) per batch; 50 traces x 10 spans each."""
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
    for b in range(n_batches):
        spans = []
        first = ""
        for t in range(BATCH // 10):
            trace_id = secrets.token_bytes(16)
            first = first or trace_id.hex()
            root = secrets.token_bytes(8)
            start = now - 2_000_000_000 + (b * 1000 + t) * 1000
            spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=root,
                    name="handle request",
                    start_time_unix_nano=start,
                    end_time_unix_nano=start + 900_000_000,
                    attributes=[
                        kv("gen_ai.operation.name", "invoke_agent"),
                        kv("gen_ai.conversation.id", f"s{t % 7}"),
                        kv("user.id", f"u{t % 13}"),
                    ],
                )
            )
            for i in range(9):
                attrs = [
                    kv("gen_ai.operation.name", "chat"),
                    kv("gen_ai.system", "openai"),
                    kv("gen_ai.request.model", "gpt-4o-mini"),
                    kv("gen_ai.usage.input_tokens", 200 + i),
                    kv("gen_ai.usage.output_tokens", 40),
                    kv("gen_ai.prompt.0.role", "user"),
                    kv("gen_ai.prompt.0.content", f"Question {b}-{t}-{i}: where is my order?"),
                    kv("gen_ai.completion.0.role", "assistant"),
                    kv("gen_ai.completion.0.content", "It shipped yesterday."),
                ]
                if i % 3 == 1:
                    attrs = [
                        kv("openinference.span.kind", "RETRIEVER"),
                        kv("retrieval.documents.0.document.content", "Orders ship in 2 days."),
                    ]
                elif i % 3 == 2:
                    attrs = [
                        kv("gen_ai.operation.name", "execute_tool"),
                        kv("gen_ai.tool.call.arguments", '{"order": 42}'),
                        kv("gen_ai.tool.call.result", "shipped"),
                    ]
                s0 = start + (i + 1) * 80_000_000
                spans.append(
                    Span(
                        trace_id=trace_id,
                        span_id=secrets.token_bytes(8),
                        parent_span_id=root,
                        name=f"step {i}",
                        start_time_unix_nano=s0,
                        end_time_unix_nano=s0 + 70_000_000,
                        attributes=attrs,
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
        out.append((request.SerializeToString(), first))
    return out


FLOOR = """
import asyncio
import sys
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)
EMPTY = ExportTraceServiceResponse().SerializeToString()
DECODE = sys.argv[2] == "decode"
async def traces(request):
    body = await request.read()
    if DECODE:
        ExportTraceServiceRequest().ParseFromString(body)
    return web.Response(body=EMPTY, content_type="application/x-protobuf")
async def main():
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(sys.argv[1])).start()
    print("ready", flush=True)  # listening now
    await asyncio.Event().wait()
asyncio.run(main())
"""


def tree(pid: int) -> list[int]:
    """The process and its children (uvicorn's workers)."""
    pids = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            pids.append(int(stat.parent.name))
    return pids


def rss_mb(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process and its children so far."""
    total = 0
    for p in tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def backend_cpu(conn: Any, database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving ``database`` (but this
    script's own connection): the server's writers' share of PostgreSQL's work."""
    out = {}
    for (pid,) in conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (database,),
    ).fetchall():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


async def post_all(
    url: str,
    batches: list[tuple[bytes, str]],
    clients: int,
    on_ack: Any = None,
    on_progress: Any = None,
) -> tuple[float, list[float]]:
    """Wall seconds and per-request latencies; every request must be answered 200."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(batches)):
        queue.put_nowait(i)
    latencies: list[float] = []
    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {KEY}"}
    done = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            body, trace_id = batches[i]
            while True:
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    if r.status in (429, 503):  # backpressure: retry as an exporter does
                        await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                        continue
                    assert r.status == 200, (r.status, await r.text())
                break
            latencies.append(time.perf_counter() - t0)
            done += 1
            if on_ack is not None and i % 10 == 0:
                on_ack(trace_id)
            if on_progress is not None:
                on_progress(done)

    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(clients)))
        return time.perf_counter() - started, latencies


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (NaN of nothing, the value of one)."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", required=True, help="an admin URL; a fresh database is made")
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument(
        "--spy",
        help="sample the server (its first process) with py-spy for 15 s once the posting "
        "starts; its folded stacks go to this file",
    )
    args = parser.parse_args()
    n_batches = args.spans // BATCH
    print("load average at start: " + " ".join(Path("/proc/loadavg").read_text().split()[:3]))
    print(f"encoding {n_batches} batches of {BATCH} spans ...", flush=True)
    batches = encode_batches(n_batches)
    mb = sum(len(b) for b, _ in batches) / 1e6
    print(f"{mb:.0f} MB of protobuf, {len(batches[0][0]) / 1024:.0f} KiB a batch", flush=True)

    # 1. the floors: discard the bodies; parse them (protobuf, C) and discard
    floors = {}
    for mode in ("discard", "decode"):
        port = free_port()
        floor = subprocess.Popen(
            [sys.executable, "-c", FLOOR, str(port), mode], stdout=subprocess.PIPE
        )
        assert floor.stdout is not None and floor.stdout.readline().strip() == b"ready"
        try:
            seconds, _ = asyncio.run(
                post_all(f"http://127.0.0.1:{port}/v1/traces", batches, args.clients)
            )
        finally:
            floor.terminate()
            floor.wait()
        floors[mode] = args.spans / seconds
    floor_rate = floors["discard"]

    # 2. Panopticon, ingest role, on a fresh PostgreSQL database
    url = fresh_database(args.pg, "panopticon_bench_ingest")
    home = Path(tempfile.mkdtemp(prefix="panopticon-bench-ingest-"))
    env = dict(
        os.environ, PANOPTICON_DATABASE_URL=url, PANOPTICON_HOME=str(home), PANOPTICON_API_KEY=KEY
    )
    subprocess.run(
        [sys.executable, "-m", "panopticon", "db", "upgrade"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "panopticon",
            "serve",
            "--role",
            "ingest",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ],
        env=env,
        stdout=(home / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # workers import the app; slow on a loaded machine
    while True:
        try:
            import httpx

            if httpx.get(base + "/health").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.terminate()  # and its workers: nothing is left running
            server.wait(30)
            raise SystemExit(f"the server did not start; see {home / 'server.log'}")
        time.sleep(0.1)
    visible: list[float] = []
    rss: dict[str, float] = {}
    conn = psycopg.connect(url, autocommit=True)

    def on_ack(trace_id: str) -> None:
        acked = time.perf_counter()
        while (
            conn.execute("SELECT 1 FROM span WHERE trace_id = %s LIMIT 1", (trace_id,)).fetchone()
            is None
        ):
            assert time.perf_counter() - acked < 60, "not visible within a minute"
            time.sleep(0.005)
        visible.append(time.perf_counter() - acked)

    def on_progress(done: int) -> None:
        mark = f"{done * BATCH // 100_000 * 100}k"
        if done * BATCH >= 100_000 and mark not in rss:
            rss[mark] = rss_mb(server.pid)

    cpu0 = cpu_s(server.pid)
    pg0 = backend_cpu(conn, "panopticon_bench_ingest")
    if args.spy:  # its own CPU is not the server's: a figure with --spy is not one to quote
        sampled = tree(server.pid)[-1]  # the worker process under --workers N
        spy = ["py-spy", "record", "-p", str(sampled), "-d", "15", "-r", "100", "-f", "raw"]
        subprocess.Popen(
            [*spy, "-o", args.spy, "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        wall, latencies = asyncio.run(
            post_all(base + "/v1/traces", batches, args.clients, on_ack, on_progress)
        )
        rss["end"] = rss_mb(server.pid)
        cpu = cpu_s(server.pid) - cpu0
        pg1 = backend_cpu(conn, "panopticon_bench_ingest")
        pg_cpu = sum(t - pg0.get(pid, 0.0) for pid, t in pg1.items())
        stored = conn.execute("SELECT count(*) FROM span").fetchone()[0]  # type: ignore[index]
        traces = conn.execute("SELECT count(*) FROM trace").fetchone()[0]  # type: ignore[index]
    finally:
        server.terminate()
        server.wait(30)
        conn.close()
    assert stored == args.spans, (stored, args.spans)
    assert traces == args.spans // 10, traces
    rate = args.spans / wall
    print(
        f"floor, bare aiohttp: {floors['discard']:,.0f} spans/s discarding the bodies, "
        f"{floors['decode']:,.0f} spans/s parsing them first"
    )
    print(
        f"panopticon --role ingest --workers {args.workers} -> PostgreSQL: {rate:,.0f} "
        f"spans/s ({wall:.1f} s): {rate / floor_rate:.3f} of the discarding floor, "
        f"{rate / floors['decode']:.3f} of the parsing one"
    )
    print(
        f"server CPU: {cpu / args.spans * 1e6:.0f} us per span "
        f"({args.spans / cpu:,.0f} spans per CPU-second); load average at the end "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    both = (cpu + pg_cpu) / args.spans
    print(
        f"its PostgreSQL backends: {pg_cpu / args.spans * 1e6:.0f} us per span; server and "
        f"backends {both * 1e6:.0f} us per span: {2 / both:,.0f} spans/s if they had 2 cores "
        "to themselves (WAL writer and checkpointer not counted)"
    )
    print(
        f"request (send -> committed) p50 {pct(latencies, 50) * 1000:.0f} ms, "
        f"p95 {pct(latencies, 95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )
    print(
        f"visible after acknowledgement: p95 {pct(visible, 95) * 1000:.1f} ms, "
        f"max {max(visible) * 1000:.1f} ms ({len(visible)} sampled)"
    )
    print(
        f"server RSS: {rss.get('100k', 0):.0f} MB after 100k spans, {rss['end']:.0f} MB at the "
        f"end ({rss['end'] / rss['100k']:.2f}x)"
        if "100k" in rss
        else f"server RSS: {rss['end']:.0f} MB at the end"
    )
    print("RSS by spans sent: " + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items()))
    print(f"stored: {stored:,} spans, {traces:,} traces")


if __name__ == "__main__":
    main()
