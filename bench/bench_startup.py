"""Start-up of `panopticon run`: process start to its first HTTP request, beside the floor's.

The same server, suite and floor as bench_runner.py (a bare aiohttp loop making the same
calls), but a small N, so that a round takes about a second and start-up is what it measures:
for each round, the floor and then `panopticon run suite.yaml --no-progress` on a fresh SQLite
database (a new PANOPTICON_HOME each time), each in its own process. Prints each round's
start-up seconds and CPU seconds of the whole process, then the medians.

    python bench/bench_startup.py                 # N=50 C=50, 7 rounds
    python bench/bench_startup.py --rounds 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_runner import start_server, timed, write_suite


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--c", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    server, url, stats_url = start_server("bare", 200.0)
    floor_s, run_s, run_cpu = [], [], []
    runner = str(Path(__file__).with_name("bench_runner.py"))
    calls = 2 * args.n
    try:
        print(f"load average at start: {os.getloadavg()[0]:.2f}")
        print("| round | floor start-up s | run start-up s | run CPU s (whole process) |")
        print("|---|---|---|---|")
        for i in range(args.rounds):
            bare = timed(
                [sys.executable, runner, "--floor", url, "--n", str(args.n), "--c", str(args.c)],
                dict(os.environ),
                stats_url,
                calls,
            )
            with tempfile.TemporaryDirectory() as tmp:
                suite = write_suite(Path(tmp), args.n, args.c, url)
                env = dict(os.environ, PANOPTICON_HOME=str(Path(tmp) / "home"))
                env.pop("PANOPTICON_DATABASE_URL", None)
                run = timed(
                    [sys.executable, "-m", "panopticon", "run", str(suite), "--no-progress"],
                    env,
                    stats_url,
                    calls,
                )
            floor_s.append(bare["startup_s"])
            run_s.append(run["startup_s"])
            run_cpu.append(run["cpu_ms_per_call"] * calls / 1000)
            print(
                f"| {i + 1} | {bare['startup_s']:.3f} | {run['startup_s']:.3f} "
                f"| {run_cpu[-1]:.3f} |",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(10)
    print(
        f"median start-up: floor {statistics.median(floor_s):.3f} s, "
        f"run {statistics.median(run_s):.3f} s; run CPU {statistics.median(run_cpu):.3f} s; "
        f"load average at end: {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
