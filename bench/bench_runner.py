"""Throughput of `panopticon run` as a ratio to a bare aiohttp loop doing the same calls.

N queries, one model with concurrency C, one rubric judge per answer (also concurrency C):
2N calls to an OpenAI-compatible server that answers every request after a fixed latency.
The server is a minimal one written here (not Panopticon's mock), in its own process.

Two programs do the same work against it, each in its own process, timed from process start
to exit, alternately:

- the floor: a bare aiohttp loop (C workers; each asks for an answer, then for its judgement,
  and parses both)
- `panopticon run suite.yaml --no-progress` on a fresh SQLite database

efficiency = ideal / wall with ideal = 2 x ceil(N/C) x latency; ratio = the run's efficiency
over the floor's from the same round. These machines differ by up to 3x in CPU speed, so the
ratio is the figure to compare; the absolute ones are for this machine only.

    python bench/bench_runner.py                          # N=500 C=50, 3 rounds
    python bench/bench_runner.py --n 10000 --c 200 --rounds 1
    python bench/bench_runner.py --server mock            # Panopticon's mock server instead
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ANSWER = '{"score": 8, "reasoning": "A clear, correct answer."}'  # also a valid judgement


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the server: OpenAI's chat completions, a fixed answer after a fixed latency -------------
def serve(port: int, latency_ms: float) -> None:
    import asyncio

    from aiohttp import web

    stats: dict[str, Any] = {"answered": 0, "first_request_at": None, "last_answer_at": None}
    body = json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "model": "bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52},
        }
    ).encode()

    async def complete(request: web.Request) -> web.Response:
        if stats["first_request_at"] is None:
            stats["first_request_at"] = time.time()
        await request.read()
        await asyncio.sleep(latency_ms / 1000)
        stats["answered"] += 1
        stats["last_answer_at"] = time.time()
        return web.Response(body=body, content_type="application/json")

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(stats)

    async def reset(request: web.Request) -> web.Response:
        stats.update(answered=0, first_request_at=None, last_answer_at=None)
        return web.json_response(stats)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", complete)
    app.router.add_get("/stats", get_stats)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def start_server(kind: str, latency_ms: float) -> tuple[subprocess.Popen[bytes], str, str]:
    """The server process, its /v1 URL and its stats URL."""
    port = free_port()
    if kind == "mock":
        args = ["-m", "panopticon", "mock-server", "--port", str(port)]
        args += ["--latency-ms", str(latency_ms)]
        stats = f"http://127.0.0.1:{port}/_mock/stats"
    else:
        args = [__file__, "--serve", str(port), "--latency-ms", str(latency_ms)]
        stats = f"http://127.0.0.1:{port}/stats"
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(stats).close()
            return proc, f"http://127.0.0.1:{port}/v1", stats
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


def server_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url) as resp:
        data: dict[str, Any] = json.load(resp)
    return data


def reset_server(stats_url: str) -> None:
    if stats_url.endswith("/_mock/stats"):
        request = urllib.request.Request(stats_url.replace("stats", "reset"), method="POST")
    else:
        request = urllib.request.Request(stats_url.replace("/stats", "/reset"), method="POST")
    urllib.request.urlopen(request, data=b"{}").close()


# --- the floor: a bare aiohttp loop ----------------------------------------------------------
def floor(url: str, n: int, c: int) -> None:
    import asyncio

    import aiohttp

    async def main() -> None:
        queue = list(range(n))
        connector = aiohttp.TCPConnector(limit=2 * c)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def ask(model: str, content: str) -> str:
                body = {"model": model, "messages": [{"role": "user", "content": content}]}
                async with session.post(url + "/chat/completions", json=body) as resp:
                    data = await resp.json()
                return str(data["choices"][0]["message"]["content"])

            async def worker() -> None:
                while queue:
                    i = queue.pop()
                    answer = await ask("model", f"Question {i}: how do I do task {i}?")
                    verdict = json.loads(await ask("judge", f"Rate this answer: {answer}"))
                    assert 1 <= verdict["score"] <= 10

            await asyncio.gather(*(worker() for _ in range(c)))

    asyncio.run(main())


# --- panopticon run ---------------------------------------------------------------------------
def write_suite(folder: Path, n: int, c: int, url: str) -> Path:
    with (folder / "queries.jsonl").open("w") as fh:
        for i in range(n):
            theme = ("billing", "technical", "writing")[i % 3]
            row = {"text": f"Question {i}: how do I do task {i}?", "theme": theme}
            fh.write(json.dumps(row) + "\n")
    suite = folder / "suite.yaml"
    suite.write_text(f"""
name: bench-{n}
models:
  - {{id: model, model: mock-model, base_url: '{url}', price: {{input: 1, output: 2}},
     concurrency: {c}}}
judge: {{id: judge, model: mock-judge, base_url: '{url}', price: {{input: 1, output: 2}},
        concurrency: {c}}}
queries: [{{file: queries.jsonl}}]
metrics:
  - {{name: quality, type: rubric, prompt: 'Is the answer helpful?', scale: [1, 10]}}
""")
    return suite


def timed(args: list[str], env: dict[str, str], stats_url: str, calls: int) -> dict[str, float]:
    """Run a program to its end; its wall time, CPU time and where the time went."""
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed
    reset_server(stats_url)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started_unix = time.time()
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    stats = server_stats(stats_url)
    assert stats["answered"] == calls, f"the server answered {stats['answered']} of {calls}"
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall_s": wall,
        "cpu_ms_per_call": cpu * 1000 / calls,
        "peak_rss_mb": after.ru_maxrss / 1024,
        "startup_s": stats["first_request_at"] - started_unix,
        "tail_s": started_unix + wall - stats["last_answer_at"],
    }


def round_of(n: int, c: int, latency_ms: float, url: str, stats_url: str) -> dict[str, Any]:
    calls = 2 * n
    ideal = 2 * math.ceil(n / c) * latency_ms / 1000
    bare = timed(
        [sys.executable, __file__, "--floor", url, "--n", str(n), "--c", str(c)],
        dict(os.environ),
        stats_url,
        calls,
    )
    with tempfile.TemporaryDirectory() as tmp:
        suite = write_suite(Path(tmp), n, c, url)
        env = dict(os.environ, PANOPTICON_HOME=str(Path(tmp) / "home"))
        env.pop("PANOPTICON_DATABASE_URL", None)
        run = timed(
            [sys.executable, "-m", "panopticon", "run", str(suite), "--no-progress"],
            env,
            stats_url,
            calls,
        )
    floor_eff, run_eff = ideal / bare["wall_s"], ideal / run["wall_s"]
    return {
        "n": n,
        "c": c,
        "ideal_s": ideal,
        "floor": bare,
        "run": run,
        "floor_efficiency": floor_eff,
        "run_efficiency": run_eff,
        "ratio": run_eff / floor_eff,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--c", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--rounds", type=int, default=3, help="Floor-then-run rounds.")
    parser.add_argument("--server", choices=("bare", "mock"), default="bare")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # internal: the server
    parser.add_argument("--floor", help=argparse.SUPPRESS)  # internal: the floor, at this URL
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.latency_ms)
        return
    if args.floor:
        floor(args.floor, args.n, args.c)
        return
    server, url, stats_url = start_server(args.server, args.latency_ms)
    rounds = []
    try:
        print(
            "| N | C | floor wall s | floor eff. | run wall s | run eff. | ratio "
            "| floor CPU ms/call | run CPU ms/call | floor start-up s | run start-up s "
            "| run tail s |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for _ in range(args.rounds):
            r = round_of(args.n, args.c, args.latency_ms, url, stats_url)
            rounds.append(r)
            f, p = r["floor"], r["run"]
            print(
                f"| {r['n']} | {r['c']} | {f['wall_s']:.2f} | {r['floor_efficiency']:.3f} | "
                f"{p['wall_s']:.2f} | {r['run_efficiency']:.3f} | {r['ratio']:.3f} | "
                f"{f['cpu_ms_per_call']:.2f} | {p['cpu_ms_per_call']:.2f} | "
                f"{f['startup_s']:.2f} | {p['startup_s']:.2f} | {p['tail_s']:.2f} |",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(10)
    print(f"median ratio to the floor: {statistics.median(r['ratio'] for r in rounds):.3f}")
    out = Path(__file__).with_name("out")
    out.mkdir(exist_ok=True)
    with (out / "runner.jsonl").open("a") as fh:
        for r in rounds:
            fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
