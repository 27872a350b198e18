"""Throughput of `panopticon run`: N queries, one rubric judge per answer, mock at 200 ms.

Measures, for the whole `panopticon run` process (start-up, planning and storage included):
wall time, efficiency = ideal / actual with ideal = 2 x ceil(N/C) x latency, CPU ms per
provider call, and peak RSS. The mock server runs in its own process and is not counted.

    python bench/bench_runner.py                 # N=500 C=50 and N=10000 C=200, SQLite
    python bench/bench_runner.py --n 500 --c 50  # one configuration
    PANOPTICON_DATABASE_URL=postgresql://... python bench/bench_runner.py --n 500 --c 50
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mock(latency_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "panopticon",
            "mock-server",
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
        ],
        stdout=subprocess.DEVNULL,
    )
    root = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(root + "/_mock/stats").close()
            return proc, root
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mock server did not start")


def write_suite(folder: Path, n: int, c: int, url: str) -> Path:
    with (folder / "queries.jsonl").open("w") as fh:
        for i in range(n):
            theme = ("billing", "technical", "writing")[i % 3]
            fh.write(
                json.dumps(
                    {
                        "text": f"Question {i}: how do I do task {i}?",
                        "theme": theme,
                        "expected": f"Do step {i}.",
                    }
                )
                + "\n"
            )
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


def measure(n: int, c: int, latency_ms: float) -> dict[str, float | int | str]:
    mock, root = start_mock(latency_ms)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            suite = write_suite(folder, n, c, root + "/v1")
            env = dict(os.environ, PANOPTICON_HOME=str(folder / "home"))
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started_unix = time.time()
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "panopticon", "run", str(suite), "--no-progress"],
                env=env,
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != 0:
                raise RuntimeError(f"run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
            with urllib.request.urlopen(root + "/_mock/stats") as resp:
                stats = json.load(resp)
    finally:
        mock.terminate()
        mock.wait(10)
    calls = 2 * n
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    ideal = 2 * math.ceil(n / c) * latency_ms / 1000
    assert stats["answered"] == calls, f"mock answered {stats['answered']} of {calls}"
    assert stats["answered_duplicates"] == 0
    return {
        "n": n,
        "concurrency": c,
        "latency_ms": latency_ms,
        "calls": calls,
        "database": "postgresql" if os.environ.get("PANOPTICON_DATABASE_URL") else "sqlite",
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "efficiency": round(ideal / wall, 3),
        "cpu_ms_per_call": round(cpu * 1000 / calls, 3),
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),
        # where the time goes: before the first request, between, after the last answer
        "startup_s": round(stats["first_request_at"] - started_unix, 2),
        "calls_s": round(stats["last_answer_at"] - stats["first_request_at"], 2),
        "tail_s": round(started_unix + wall - stats["last_answer_at"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int)
    parser.add_argument("--c", type=int)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--repeat", type=int, default=1, help="Runs per configuration.")
    args = parser.parse_args()
    configs = [(args.n, args.c)] if args.n else [(500, 50), (10_000, 200)]
    print(
        "| N | C | database | wall s | ideal s | efficiency | CPU ms/call | peak RSS MB "
        "| start-up s | calls s | tail s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n, c in configs:
        for _ in range(args.repeat):
            r = measure(n, c or 50, args.latency_ms)
            print(
                f"| {r['n']} | {r['concurrency']} | {r['database']} | {r['wall_s']} | "
                f"{r['ideal_s']} | {r['efficiency']} | {r['cpu_ms_per_call']} | "
                f"{r['peak_rss_mb']} | {r['startup_s']} | {r['calls_s']} | {r['tail_s']} |",
                flush=True,
            )
            out = Path(__file__).with_name("out")
            out.mkdir(exist_ok=True)
            with (out / "results.jsonl").open("a") as fh:
                fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
