"""The gateway against its floor and LiteLLM, in one script, with one load generator.

Each server runs in its own process on loopback; the bundled mock is the upstream (0 ms and
50 ms). Targets, all OpenAI-compatible ``/v1/chat/completions``:

    direct     the mock itself
    bare       a bare aiohttp pass-through proxy (the floor for a Python proxy)
    litellm    LiteLLM's proxy (pinned, its own venv, no database), if installed
    gw-log     ``panopticon serve --role gateway``, logging on (the default: calls are
               written by the gateway's log writer process)
    gw-thread  the same with PANOPTICON_GATEWAY_LOG_WRITER=thread (written by a thread of
               the server's process)
    gw-nolog   the same with PANOPTICON_GATEWAY_LOGGING=false

A gateway's CPU is its process's and its children's (the log writer); after the
concurrency-100 load, the measurement waits until the gateway's ``/health`` shows no call
left unwritten, so the CPU counted includes writing every call.

For each: throughput at concurrency 100 (requests/s, with the CPU the proxy process used
per request), latency p50/p99 at concurrency 1 and 10 (added latency = target minus
direct), and streaming (32 chunks): streams/s at concurrency 100 and time to first token
at concurrency 1. Every loop is bounded (a request count).

    python bench/bench_gateway.py                      # both latencies, every target
    python bench/bench_gateway.py --latency 0 --n 2000
    python bench/bench_gateway.py --litellm /work/litellm-venv/bin/litellm
    python bench/bench_gateway.py --pg postgresql://postgres@127.0.0.1:5432/postgres ...

``--pg ADMIN_URL`` puts each gateway on a fresh PostgreSQL database next to it (dropped at
the end) instead of SQLite. Two more modes, each alone:

    --outage 30 --pg ADMIN_URL   the database refuses every connection for 30 s under load
                                 (ALLOW_CONNECTIONS false and its backends terminated: only
                                 the bench's own database, the server carries on for others);
                                 counts client errors, then checks that every call answered
                                 is stored as a trace
    --soak-seconds 600           RSS of the gateway (logging on) as requests go by, for a
                                 time, with the slope of RSS over requests
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

BODY = {"model": "gpt-mock", "messages": [{"role": "user", "content": "What is a gateway?"}]}
STREAM_CHUNKS = 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 120.0, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, headers=headers or {})
            urllib.request.urlopen(req, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (and its threads) and of its live children
    (the gateway's log writer)."""
    fields = _stat(pid)
    if fields is None:
        return None
    total = int(fields[11]) + int(fields[12])
    for child in children(pid):
        cf = _stat(child)
        if cf is not None:
            total += int(cf[11]) + int(cf[12])
    return total / os.sysconf("SC_CLK_TCK")


def settle(health: str | None, timeout_s: float = 60.0) -> None:
    """Wait until the gateway has written every call it logged (its /health's pending)."""
    if health is None:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(health, timeout=10) as resp:
            log = json.loads(resp.read()).get("log", {})
        if not log.get("pending"):
            return
        time.sleep(0.02)
    print(f"{health}: calls still unwritten after {timeout_s:g} s", file=sys.stderr)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (the gateway's log writer)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat(int(stat.parent.name))
        if fields is not None and fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# -- the bare pass-through proxy (the floor) -------------------------------------------------


def serve_bare(port: int, upstream: str) -> None:
    import aiohttp
    from aiohttp import web

    async def main() -> None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

        async def forward(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            async with session.post(
                upstream + "/chat/completions",
                data=body,
                headers={"Content-Type": "application/json"},
            ) as up:
                resp = web.StreamResponse(
                    status=up.status,
                    headers={"Content-Type": up.headers.get("Content-Type", "application/json")},
                )
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp

        app = web.Application()
        app.router.add_post("/v1/chat/completions", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


# -- servers -------------------------------------------------------------------------------


class Proc:
    def __init__(
        self,
        name: str,
        args: list[str],
        url: str,
        env: dict[str, str | None] | None = None,
        ready: str | None = None,
    ) -> None:
        self.name = name
        self.url = url
        # BENCH_GATEWAY_LOG=folder: each server's stderr (its log) in a file there
        folder = os.environ.get("BENCH_GATEWAY_LOG")
        self.log: Any = subprocess.DEVNULL
        if folder:
            self.log = (Path(folder) / f"{name}-{time.time_ns()}.log").open("wb")
        self.proc = subprocess.Popen(
            args,
            # a None value removes the variable
            env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None},
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
        )
        wait_http(ready or url)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def start_mock(latency_ms: float) -> Proc:
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "panopticon", "mock-server", "--port", str(port),
            "--latency-ms", str(latency_ms)]  # fmt: skip
    mock = Proc("mock", args, root + "/v1", ready=root + "/_mock/stats")
    cfg = json.dumps({"stream_chunks": STREAM_CHUNKS}).encode()
    urllib.request.urlopen(
        urllib.request.Request(root + "/_mock/config", data=cfg, method="POST")
    ).close()
    return mock


def start_bare(upstream: str) -> Proc:
    port = free_port()
    args = [sys.executable, __file__, "--serve-bare", str(port), upstream]
    return Proc("bare", args, f"http://127.0.0.1:{port}/v1", ready=f"http://127.0.0.1:{port}/")


def fresh_database(admin_url: str, name: str) -> str:
    """A new, empty database ``name`` on the admin URL's server (an old one dropped)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(admin_url: str, url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def start_gateway(
    upstream: str, home: Path, mode: str, database_url: str | None = None
) -> tuple[Proc, str]:
    """``panopticon serve --role gateway`` on SQLite under ``home``, or on ``database_url``
    (an empty PostgreSQL database: migrated here), with the mock model and a key."""
    from panopticon.services.gateway_keys import create_gateway_key, parse_key_config
    from panopticon.services.registry import ModelRegistry
    from panopticon.services.runs import open_store
    from panopticon.settings import Settings
    from panopticon.store.engine import create_engine, upgrade
    from panopticon.store.queries import catalog

    settings = Settings(home=home, **({"database_url": database_url} if database_url else {}))
    if database_url:
        fresh = create_engine(settings)
        upgrade(fresh)
        fresh.dispose()
    engine = open_store(settings)
    with engine.begin() as conn:
        ws = catalog.ensure_workspace(conn, "default")
    ModelRegistry(engine, ws, settings).upsert(
        {"id": "gpt-mock", "provider": "openai", "model": "mock-good", "base_url": upstream,
         "price": {"input": 1.0, "output": 2.0}}
    )  # fmt: skip
    _, key = create_gateway_key(engine, "default", "bench", parse_key_config({}))
    engine.dispose()
    port = free_port()
    env: dict[str, str | None] = {
        "PANOPTICON_HOME": str(home),
        "PANOPTICON_GATEWAY_LOGGING": str(mode != "nolog").lower(),
        "PANOPTICON_GATEWAY_LOG_WRITER": "thread" if mode == "thread" else "process",
        "PANOPTICON_DATABASE_URL": database_url,  # None: SQLite under home
    }
    args = [sys.executable, "-m", "panopticon", "serve", "--role", "gateway", "--port", str(port)]
    name = f"gw-{mode}"
    return Proc(
        name,
        args,
        f"http://127.0.0.1:{port}/v1",
        env=env,
        ready=f"http://127.0.0.1:{port}/v1/models",
    ), key


def start_litellm(binary: str, upstream: str, folder: Path) -> Proc:
    port = free_port()
    config = folder / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: gpt-mock\n"
        "    litellm_params:\n"
        "      model: openai/mock-good\n"
        f"      api_base: {upstream}\n"
        "      api_key: none\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
        "  telemetry: false\n"
    )
    env: dict[str, str | None] = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    args = [binary, "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", "1"]  # fmt: skip
    return Proc("litellm", args, f"http://127.0.0.1:{port}/v1",
                env=env, ready=f"http://127.0.0.1:{port}/health/liveliness")  # fmt: skip


# -- the load generator --------------------------------------------------------------------


async def load(url: str, key: str | None, n: int, concurrency: int, stream: bool) -> dict[str, Any]:
    import aiohttp

    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = json.dumps({**BODY, "stream": True} if stream else BODY).encode()
    latencies: list[float] = []
    ttfts: list[float] = []
    errors = 0
    todo = iter(range(n))
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency), headers=headers
    ) as session:

        async def worker() -> None:
            nonlocal errors
            for _ in todo:
                started = time.perf_counter()
                try:
                    async with session.post(url + "/chat/completions", data=body) as resp:
                        first = None
                        async for _chunk in resp.content.iter_any():
                            if first is None:
                                first = time.perf_counter()
                        if resp.status != 200:
                            errors += 1
                            continue
                except aiohttp.ClientError:
                    errors += 1
                    continue
                done = time.perf_counter()
                latencies.append((done - started) * 1000)
                if first is not None:
                    ttfts.append((first - started) * 1000)

        # warm-up: connections, caches, the gateway's key and route
        for _ in range(min(20, n)):
            async with session.post(url + "/chat/completions", data=body) as resp:
                await resp.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {
        "rps": len(latencies) / wall,
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "ttft_p50": pct(ttfts, 50) if stream else None,
        "errors": errors,
    }


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def measure(
    url: str, key: str | None, n: int, pid: int | None, health: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    run = asyncio.run
    c1 = run(load(url, key, max(100, n // 10), 1, False))
    c10 = run(load(url, key, max(200, n // 3), 10, False))
    cpu_before = cpu_s(pid) if pid else None
    c100 = run(load(url, key, n, 100, False))
    settle(health)
    cpu_after = cpu_s(pid) if pid else None
    if cpu_before is not None and cpu_after is not None:
        out["cpu_ms_per_req"] = (cpu_after - cpu_before) * 1000 / (n + min(20, n))
    st = run(load(url, key, max(100, n // 4), 100, True))
    st1 = run(load(url, key, max(50, n // 20), 1, True))
    out.update(
        rps=c100["rps"], p50_c1=c1["p50"], p99_c1=c1["p99"], p50_c10=c10["p50"],
        p99_c10=c10["p99"], stream_rps=st["rps"], ttft_p50=st1["ttft_p50"],
        errors=c1["errors"] + c10["errors"] + c100["errors"] + st["errors"] + st1["errors"],
    )  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, action="append", help="mock latency (ms)")
    parser.add_argument("--n", type=int, default=3000, help="requests at concurrency 100")
    parser.add_argument("--litellm", default="/work/litellm-venv/bin/litellm")
    parser.add_argument(
        "--targets", default="direct,bare,litellm,gw-log,gw-nolog", help="which to measure"
    )
    parser.add_argument(
        "--pg", help="an admin URL: the gateways on fresh PostgreSQL databases next to it"
    )
    parser.add_argument(
        "--soak", type=int, default=0, help="only: N requests through gw-log, RSS as it goes"
    )
    parser.add_argument(
        "--soak-seconds", type=float, default=0, help="only: gw-log for this long, RSS as it goes"
    )
    parser.add_argument(
        "--outage", type=float, default=0, help="only: the database away this long (needs --pg)"
    )
    parser.add_argument(
        "--outage-load", type=float, default=15.0, help="seconds of load before and after it"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure every target this many times, in turn"
    )
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "UPSTREAM"))
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(int(args.serve_bare[0]), args.serve_bare[1])
        return
    if args.soak or args.soak_seconds:
        soak(args.soak, args.soak_seconds, args.pg)
        return
    if args.outage:
        if not args.pg:
            parser.error("--outage stops a PostgreSQL database: give --pg ADMIN_URL")
        outage(args.pg, args.outage, args.outage_load, args.outage_load)
        return
    latencies = args.latency or [0.0, 50.0]
    wanted = set(args.targets.split(","))
    have_litellm = "litellm" in wanted and (
        shutil.which(args.litellm) is not None or Path(args.litellm).exists()
    )
    if not have_litellm:
        print(f"LiteLLM not found at {args.litellm}: its rows are skipped", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    databases: list[str] = []
    for latency in latencies:
        mock = start_mock(latency)
        procs: list[Proc] = []
        try:
            with tempfile.TemporaryDirectory() as tmp:
                targets: list[tuple[str, str, str | None, Proc | None]] = [
                    ("direct", mock.url, None, None)
                ]
                bare = start_bare(mock.url)
                procs.append(bare)
                targets.append(("bare", bare.url, None, bare))
                if have_litellm:
                    lite = start_litellm(args.litellm, mock.url, Path(tmp))
                    procs.append(lite)
                    targets.append(("litellm", lite.url, None, lite))
                for mode in [m for m in ("log", "thread", "nolog") if f"gw-{m}" in wanted]:
                    url = None
                    if args.pg:
                        url = fresh_database(args.pg, f"panopticon_bench_gw_{mode}")
                        databases.append(url)
                    gw, key = start_gateway(mock.url, Path(tmp) / f"home-{mode}", mode, url)
                    procs.append(gw)
                    targets.append((gw.name, gw.url, key, gw))
                for rnd, (name, url, key, proc) in (
                    (rnd, t) for rnd in range(args.rounds) for t in targets
                ):
                    if name == "litellm" and rnd:
                        continue  # stopped after its first round
                    n = args.n if name != "litellm" else max(300, args.n // 10)
                    before = rss_mb(proc.proc.pid) if proc else None
                    load_before = os.getloadavg()[0]
                    health = url.removesuffix("/v1") + "/health" if name.startswith("gw-") else None
                    result = measure(url, key, n, proc.proc.pid if proc else None, health)
                    after = rss_mb(proc.proc.pid) if proc else None
                    row = {"latency_ms": latency, "round": rnd, "target": name, **result,
                           "rss_before": before, "rss_after": after,
                           "load": (load_before + os.getloadavg()[0]) / 2}  # fmt: skip
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if name == "litellm":
                        lite.stop()  # its CPU use would weigh on the next targets
        finally:
            for p in procs:
                p.stop()
            mock.stop()
            for url in databases:
                drop_database(args.pg, url)
            databases.clear()
    print_table(rows)


def soak(n: int, seconds: float, pg: str | None) -> None:
    """RSS of the gateway and of its log writer process (logging on, mock at 0 ms,
    concurrency 50) after every step of requests, for ``n`` requests or ``seconds``; then
    the slope of their sum over requests, fitted (least squares) over the second half of
    the points, past the warm-up."""
    mock = start_mock(0)
    url = fresh_database(pg, "panopticon_bench_gw_soak") if pg else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            gw, key = start_gateway(mock.url, Path(tmp) / "home", "log", url)
            try:
                step = max(1000, n // 10) if n else 10_000
                done = 0
                started = time.monotonic()
                health = gw.url.removesuffix("/v1") + "/health"

                def sample() -> tuple[float, float, int]:
                    """RSS of the server and of its log writer, and calls not yet written."""
                    writers = children(gw.proc.pid)
                    with urllib.request.urlopen(health, timeout=10) as resp:
                        pending = int(json.loads(resp.read())["log"].get("pending", 0))
                    return (
                        rss_mb(gw.proc.pid) or 0.0,
                        sum(rss_mb(w) or 0.0 for w in writers),
                        pending,
                    )

                first = sample()
                points = [(0, first[0] + first[1])]
                print(
                    "| requests | server RSS MB | writer RSS MB | unwritten calls | req/s | load |"
                )
                print("|---|---|---|---|---|---|")
                print(f"| 0 | {first[0]:.1f} | {first[1]:.1f} | {first[2]} | | |")
                while (n and done < n) or (seconds and time.monotonic() - started < seconds):
                    r = asyncio.run(load(gw.url, key, step, 50, False))
                    done += step
                    server, writer, pending = sample()
                    points.append((done, server + writer))
                    print(f"| {done} | {server:.1f} | {writer:.1f} | {pending} | {r['rps']:.0f} "
                          f"| {os.getloadavg()[0]:.1f} |", flush=True)  # fmt: skip
            finally:
                gw.stop()
    finally:
        mock.stop()
        if url and pg:
            drop_database(pg, url)
    tail = points[len(points) // 2 :]
    if len(tail) >= 2:
        mx = sum(x for x, _ in tail) / len(tail)
        my = sum(y for _, y in tail) / len(tail)
        slope = sum((x - mx) * (y - my) for x, y in tail) / sum((x - mx) ** 2 for x, _ in tail)
        print(f"\n{done} requests in {time.monotonic() - started:.0f} s; server + writer "
              f"RSS {points[1][1]:.1f} MB "
              f"after the first step, {points[-1][1]:.1f} MB at the end; slope over the second "
              f"half: {slope * 100_000:+.3f} MB per 100,000 requests "
              f"({slope * 1_000_000:+.2f} MB per 1,000,000)")  # fmt: skip


async def outage_load(
    url: str, key: str, seconds: float, concurrency: int
) -> tuple[list[str], int, list[str]]:
    """Requests for ``seconds`` at ``concurrency``: the trace ids answered, the number of
    client errors, and the first few of them."""
    import aiohttp

    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    body = json.dumps(BODY).encode()
    ids: list[str] = []
    errors = 0
    examples: list[str] = []
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency), headers=headers
    ) as session:

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                try:
                    async with session.post(
                        url + "/chat/completions", data=body, timeout=aiohttp.ClientTimeout(30)
                    ) as resp:
                        text = await resp.read()
                        if resp.status == 200:
                            ids.append(resp.headers["x-panopticon-trace-id"])
                            continue
                        problem = f"{resp.status}: {text[:200]!r}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    problem = f"{exc.__class__.__name__}: {exc}"
                errors += 1
                if len(examples) < 5:
                    examples.append(problem)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids, errors, examples


def outage(
    admin_url: str, seconds: float, before_s: float = 15.0, after_s: float = 15.0,
    concurrency: int = 20,
) -> None:  # fmt: skip
    """The database away for ``seconds`` under load: the gateway's own PostgreSQL database
    refuses connections (ALLOW_CONNECTIONS false, its backends terminated), then allows
    them again. Load runs ``before_s`` before and ``after_s`` after. Then every call
    answered must be stored as a trace, once the spool is replayed."""
    import psycopg

    mock = start_mock(0)
    url = fresh_database(admin_url, "panopticon_bench_gw_outage")
    name = url.rsplit("/", 1)[1]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            gw, key = start_gateway(mock.url, home, "log", url)
            try:
                task: dict[str, Any] = {}

                def run_load() -> None:
                    task["result"] = asyncio.run(
                        outage_load(gw.url, key, before_s + seconds + after_s, concurrency)
                    )

                loader = threading.Thread(target=run_load)
                loader.start()
                time.sleep(before_s)
                with psycopg.connect(admin_url, autocommit=True) as admin:
                    admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()",
                        (name,),
                    )
                    down = time.monotonic()
                    spool = home / "spool" / "traces"
                    most = 0
                    while time.monotonic() - down < seconds:
                        most = max(most, len(list(spool.glob("*.jsonl"))))
                        time.sleep(0.5)
                    admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
                back = time.monotonic()
                loader.join()
                ids, errors, examples = task["result"]
                stored = 0
                with psycopg.connect(url) as conn:
                    while time.monotonic() - back < 300:
                        stored = conn.execute(
                            "SELECT count(*) FROM trace WHERE id = ANY(%s)", (ids,)
                        ).fetchone()[0]  # type: ignore[index]
                        conn.commit()
                        if stored == len(ids):
                            break
                        print(f"{time.monotonic() - back:.0f} s: {stored} of {len(ids)} stored",
                              file=sys.stderr, flush=True)  # fmt: skip
                        time.sleep(2)
                caught_up = time.monotonic() - back
                left = len(list((home / "spool" / "traces").glob("*")))
            finally:
                gw.stop()
    finally:
        mock.stop()
        drop_database(admin_url, url)
    print(
        json.dumps(
            {
                "outage_s": seconds,
                "load_s": before_s + seconds + after_s,
                "concurrency": concurrency,
                "answered": len(ids),
                "client_errors": errors,
                "error_examples": examples,
                "stored": stored,
                "missing": len(ids) - stored,
                "spool_files_at_most": most,
                "spool_files_left": left,
                "all_stored_s_after_db_back": round(caught_up, 1),
                "load_avg": os.getloadavg()[0],
            }
        )
    )


def print_table(rows: list[dict[str, Any]]) -> None:
    print()
    print(
        "| mock ms | target | req/s c100 | x bare | x litellm | p50 c1 | +p50 c1 | p99 c1 "
        "| +p99 c1 | p50 c10 | +p50 c10 | p99 c10 | +p99 c10 | streams/s | x litellm "
        "| TTFT p50 c1 | +TTFT | CPU ms/req | RSS MB | load |"
    )
    print("|" + "---|" * 20)
    logging: dict[tuple[float, str], list[tuple[float, float]]] = {}
    for latency, rnd in sorted({(r["latency_ms"], r.get("round", 0)) for r in rows}):
        group = {
            r["target"]: r
            for r in rows
            if r["latency_ms"] == latency and (r.get("round", 0) == rnd or r["target"] == "litellm")
        }
        direct, bare, lite = group["direct"], group.get("bare"), group.get("litellm")
        for r in group.values():

            def ratio(a: float | None, b: float | None) -> str:
                return f"{a / b:.2f}" if a and b else "-"

            print(
                f"| {latency:g} | {r['target']} ({rnd}) | {r['rps']:.0f} "
                f"| {ratio(r['rps'], bare and bare['rps'])} "
                f"| {ratio(r['rps'], lite and lite['rps'])} "
                f"| {r['p50_c1']:.2f} | {r['p50_c1'] - direct['p50_c1']:+.2f} "
                f"| {r['p99_c1']:.2f} | {r['p99_c1'] - direct['p99_c1']:+.2f} "
                f"| {r['p50_c10']:.2f} | {r['p50_c10'] - direct['p50_c10']:+.2f} "
                f"| {r['p99_c10']:.2f} | {r['p99_c10'] - direct['p99_c10']:+.2f} "
                f"| {r['stream_rps']:.0f} | {ratio(r['stream_rps'], lite and lite['stream_rps'])} "
                f"| {r['ttft_p50']:.2f} | {r['ttft_p50'] - direct['ttft_p50']:+.2f} "
                f"| {r.get('cpu_ms_per_req') or 0:.3f} | {r['rss_after'] or 0:.0f} "
                f"| {r.get('load', 0):.1f} |"
            )
        off = group.get("gw-nolog")
        for name in ("gw-log", "gw-thread"):
            on = group.get(name)
            if on and off and off.get("cpu_ms_per_req"):
                logging.setdefault((latency, name), []).append(
                    (on["rps"] / off["rps"], on["cpu_ms_per_req"] / off["cpu_ms_per_req"])
                )
    for (latency, name), ratios in logging.items():
        each = ", ".join(f"{t:.2f} / {c:.2f}" for t, c in ratios)
        print(
            f"\nmock {latency:g} ms, {name} over gw-nolog (throughput / CPU per request), each "
            f"round: {each}; median {statistics.median(t for t, _ in ratios):.2f} / "
            f"{statistics.median(c for _, c in ratios):.2f}"
        )


if __name__ == "__main__":
    main()
