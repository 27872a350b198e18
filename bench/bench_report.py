"""Statistics and reports on a large run: `panopticon report` (all four formats) and
`panopticon compare` over a run of 100,000 scores.

The run is written straight into a fresh database (5 models x 4,000 queries x 5 metrics =
20,000 answers and 100,000 scores, scores drawn per model so the differences are real),
then each command runs as a user would run it, in its own process; wall time includes
start-up.

    python bench/bench_report.py            # SQLite
    PANOPTICON_DATABASE_URL=postgresql://... python bench/bench_report.py
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from panopticon.services.runs import open_store
from panopticon.settings import load_settings
from panopticon.store.tables import Metric, Model, Provider, Query, Result, Run, Score

MODELS = ["m1", "m2", "m3", "m4", "m5"]
METRICS = [
    ("quality", "rubric"),
    ("correct", "reference"),
    ("short", "length"),
    ("fast", "latency"),
    ("safe", "pii"),
]


EXTRA_METRICS = [(f"extra{i}", "rubric") for i in range(5)]


def populate(
    settings_env: dict[str, str], queries: int, seed: int = 0, metrics_per_answer: int = 5
) -> int:
    rng = random.Random(seed)
    engine = open_store(load_settings(settings_env))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(Provider).values(
                workspace_id=1, name="bench", kind="openai", options={}, created_at=now
            )
        )
        pid = conn.scalar(sa.select(Provider.c.id))
        model_ids = {}
        for m in MODELS:
            model_ids[m] = conn.execute(
                sa.insert(Model)
                .values(
                    workspace_id=1,
                    provider_id=pid,
                    name=m,
                    provider_model=m,
                    settings={},
                    price_input=1.0,
                    price_output=2.0,
                    created_at=now,
                    updated_at=now,
                )
                .returning(Model.c.id)
            ).scalar_one()
        metrics = (METRICS + EXTRA_METRICS)[:metrics_per_answer]
        metric_ids = {}
        for name, kind in metrics:
            metric_ids[name] = conn.execute(
                sa.insert(Metric)
                .values(
                    workspace_id=1,
                    name=name,
                    type=kind,
                    definition={"name": name, "type": kind},
                    version="1",
                    created_at=now,
                )
                .returning(Metric.c.id)
            ).scalar_one()
        conn.execute(
            sa.insert(Query),
            [
                {
                    "workspace_id": 1,
                    "text": f"q{i}",
                    "messages": [],
                    "theme": f"t{i % 8}",
                    "metadata": {},
                    "content_hash": f"h{i}",
                    "created_at": now,
                }
                for i in range(queries)
            ],
        )
        qids = list(conn.execute(sa.select(Query.c.id).order_by(Query.c.id)).scalars())
        suite = {"metrics": [{"name": n, "type": k} for n, k in metrics]}
        run_id = conn.execute(
            sa.insert(Run)
            .values(
                workspace_id=1,
                name="bench",
                status="completed",
                suite=suite,
                suite_fingerprint="bench",
                planned=queries * len(MODELS),
                totals={},
                created_at=now,
                started_at=now,
                finished_at=now,
            )
            .returning(Run.c.id)
        ).scalar_one()
        results, scores = [], []
        tick = 0  # a clock: one millisecond per score, as a run writes them in turn
        for mi, m in enumerate(MODELS):
            skill = 0.5 + 0.08 * mi
            for qid in qids:
                rid = uuid.uuid4()
                results.append(
                    {
                        "id": rid,
                        "run_id": run_id,
                        "query_id": qid,
                        "model_id": model_ids[m],
                        "repeat": 0,
                        "cache_key": rid.hex,
                        "request": {},
                        "response_text": "x",
                        "finish_reason": "stop",
                        "latency_ms": rng.gauss(200 + 40 * mi, 30),
                        "input_tokens": 50,
                        "output_tokens": rng.randint(20, 400),
                        "cost_usd": rng.random() / 1000,
                        "error": None,
                        "error_kind": None,
                        "cached": False,
                        "attempts": 1,
                        "created_at": now + timedelta(milliseconds=tick),
                    }
                )
                for name, kind in metrics:
                    if kind == "rubric":
                        v = float(min(10, max(1, round(rng.gauss(1 + 9 * skill, 1.5)))))
                        norm, passed = (v - 1) / 9, v >= 7
                    elif kind == "length":
                        v = float(rng.randint(50, 1500))
                        norm = passed = v <= 1000
                        norm = float(norm)
                    elif kind == "latency":
                        v = rng.gauss(200 + 40 * mi, 30)
                        passed = v <= 250
                        norm = float(passed)
                    else:
                        passed = rng.random() < skill
                        v = norm = float(passed)
                    tick += 1
                    scores.append(
                        {
                            "id": uuid.uuid4(),
                            "run_id": run_id,
                            "result_id": rid,
                            "metric_id": metric_ids[name],
                            "value": v,
                            "normalized": norm,
                            "passed": passed,
                            "reasoning": "r",
                            "error": None,
                            "judge_model": "judge" if kind in ("rubric", "reference") else None,
                            "judge_output": None,
                            "judge_cache_key": None,
                            "judge_input_tokens": 100,
                            "judge_output_tokens": 20,
                            "judge_cost_usd": 0.0001,
                            "judge_cached": False,
                            "details": None,
                            "workspace_id": 1,
                            "model_id": model_ids[m],
                            "query_id": qid,
                            "created_at": now + timedelta(milliseconds=tick),
                        }
                    )
                if len(scores) >= 50_000:  # keep memory flat for a million scores
                    conn.execute(sa.insert(Result), results)
                    conn.execute(sa.insert(Score), scores)
                    results, scores = [], []
        if results:
            conn.execute(sa.insert(Result), results)
        if scores:
            conn.execute(sa.insert(Score), scores)
    engine.dispose()
    return int(run_id)


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "panopticon", *args], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PANOPTICON_HOME=str(Path(tmp) / "home"))
        run_id = populate(env, args.queries)
        n_scores = args.queries * len(MODELS) * len(METRICS)
        db = "postgresql" if env.get("PANOPTICON_DATABASE_URL") else "sqlite"
        print("| command | scores | database | wall s (each run) |")
        print("|---|---|---|---|")
        for label, cmd in (
            ("report (html, md, csv, json)", ["report", str(run_id), "-o", str(Path(tmp) / "out")]),
            ("compare --models m1,m5", ["compare", str(run_id), "--models", "m1,m5", "--json"]),
        ):
            times = [timed(cmd, env) for _ in range(args.repeat)]
            print(
                f"| {label} | {n_scores:,} | {db} | {', '.join(f'{t:.2f}' for t in times)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
