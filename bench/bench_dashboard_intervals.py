"""What clustering the dashboard's intervals by query costs, as a ratio to the floor.

The dashboard's intervals are clustered by query (repeats and cached re-runs of an answer
are one query's scores), which needs per-query sums: a second, narrow GROUP BY over the
scores. The floor is the same aggregate without it (the group sums alone, as before),
measured in the same script on the same database. A fresh database gets one run of 5
models x 20,000 queries with 2 metrics each (200,000 scores), as bench_web.py stores it.
Each is timed with the index the per-query pass reads (ix_score_workspace_model_query,
migration 0017), then again after dropping it. Wall and CPU time (this process's: all of
SQLite's work; on PostgreSQL only the client's) are both given as ratios: on a shared
machine the CPU ratio is the steadier.

    python bench/bench_dashboard_intervals.py            # SQLite
    python bench/bench_dashboard_intervals.py --pg postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_api_results import fresh_database
from bench_report import populate

from panopticon.judges.base import operational_types
from panopticon.services.runs import open_store
from panopticon.settings import Settings, load_settings
from panopticon.store.engine import create_engine, upgrade
from panopticon.store.queries import dashboard as q

GROUPINGS: list[tuple[str, dict[str, Any]]] = [
    ("mean score by model (summary)", {"by": ("model",), "quality_only": True}),
    ("model x metric, every run (compare)", {"by": ("model", "metric")}),
    ("model x day (trends)", {"by": ("model", "day")}),
]


def median_ms(f: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU (this process's: SQLite's work, or PostgreSQL's client side) ms."""
    f()
    walls, cpus = [], []
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        f()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def measure(engine: Any, repeats: int) -> dict[str, tuple[float, float, float, float]]:
    operational = operational_types()
    out = {}
    for name, kwargs in GROUPINGS:

        def run(clustered: bool, kwargs: dict[str, Any] = kwargs) -> object:
            with engine.connect() as conn:
                return q.score_moments(
                    conn, 1, operational=operational, clustered=clustered, **kwargs
                )

        floor, floor_cpu = median_ms(lambda: run(False), repeats)
        clustered, clustered_cpu = median_ms(lambda: run(True), repeats)
        out[name] = (floor, clustered, floor_cpu, clustered_cpu)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", help="an admin URL: a fresh database is made next to it")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="panopticon-bench-intervals-"))
    env = {"PANOPTICON_HOME": str(home)}
    if args.pg:
        url = fresh_database(args.pg, "panopticon_bench_intervals")
        engine = create_engine(Settings(database_url=url))
        upgrade(engine)
        engine.dispose()
        env["PANOPTICON_DATABASE_URL"] = url
    try:
        populate(env, 20_000, metrics_per_answer=2)
        engine = open_store(load_settings(env))

        def analyze() -> None:  # as autovacuum would after a load this size
            with engine.connect() as conn:
                if args.pg:
                    conn.commit()
                    conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                        "VACUUM ANALYZE score"
                    )
                else:
                    conn.exec_driver_sql("ANALYZE")
                    conn.commit()

        analyze()
        with_index = measure(engine, args.repeats)
        # the same database without the index the per-query pass reads (migration 0017)
        with engine.connect() as conn:
            conn.exec_driver_sql("DROP INDEX ix_score_workspace_model_query")
            conn.commit()
        analyze()
        without = measure(engine, args.repeats)
        print(
            f"{'aggregate':38} {'floor ms':>9} {'clustered ms':>13} {'ratio':>6} "
            f"{'CPU ratio':>9} | without the index: {'clustered ms':>12} {'ratio':>6} "
            f"{'CPU ratio':>9}"
        )
        for name, (floor, clustered, floor_cpu, clustered_cpu) in with_index.items():
            floor0, clustered0, floor0_cpu, clustered0_cpu = without[name]
            print(
                f"{name:38} {floor:9.0f} {clustered:13.0f} {clustered / floor:6.2f} "
                f"{clustered_cpu / floor_cpu:9.2f} | {'':19}{clustered0:12.0f} "
                f"{clustered0 / floor0:6.2f} {clustered0_cpu / floor0_cpu:9.2f}"
            )
        engine.dispose()
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
