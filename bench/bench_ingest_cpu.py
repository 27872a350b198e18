"""CPU per span of ingestion's own work, stage by stage, in one process (no server, no
database): what load on a shared machine cannot hide, since it counts CPU time
(``time.process_time``), not wall time.

The batches are bench_ingest.py's (pre-encoded OTLP protobuf, 500 spans each: agent roots,
GenAI LLM spans with messages and tokens, OpenInference retrievals, tool calls). Each stage
runs over every batch, repeated; the figure is the median over the rounds of CPU
microseconds per span:

- floor: ``ExportTraceServiceRequest.ParseFromString`` alone (what any OTLP receiver pays)
- decode: the body to ``RawSpan`` values (parse + walk + attribute values)
- normalise: checks, the convention mappers, pricing (``ingest.normalise``)
- row: the normalised span as the writer's row (``services.ingest.span_row``)
- copy rows: the writer's client-side CPU before the database: each span's ``COPY`` row
  and each trace's row (totals, previews, search text), as ``write_rows`` builds them

The process first imports what a server imports (the app, FastAPI, SQLAlchemy, Pydantic),
so that the garbage collector has a server's heap to walk, and measures every stage twice:
with the collector as it is, then after ``serve``'s ``settle_heap`` (``gc.freeze``).

    python bench/bench_ingest_cpu.py                 # 20 batches (10,000 spans), 5 rounds
    python bench/bench_ingest_cpu.py --profile out.html   # pyinstrument over one round
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_ingest import BATCH, encode_batches

import panopticon.api.app  # noqa: F401  (a server's heap, for the garbage collector)
from panopticon.ingest import Limits, decode_protobuf, normalise
from panopticon.services.ingest import span_row
from panopticon.store import trace_writer as tw


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def stages(bodies: list[bytes]) -> dict[str, float]:
    """CPU seconds of each stage over every body."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    out = dict.fromkeys(("floor: parse", "decode", "normalise", "row", "copy rows"), 0.0)
    limits = Limits()
    for body in bodies:
        t0 = time.process_time()
        ExportTraceServiceRequest().ParseFromString(body)
        t1 = time.process_time()
        raws, _ = decode_protobuf(body)
        t2 = time.process_time()
        now = datetime.now(UTC)
        spans = [normalise(raw, now, limits)[0] for raw in raws]
        t3 = time.process_time()
        rows = [span_row(1, s) for s in spans if s is not None]
        t4 = time.process_time()
        copy_rows(rows, now)
        t5 = time.process_time()
        for name, seconds in zip(out, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            out[name] += seconds
    return out


def copy_rows(rows: list[dict[str, Any]], now: datetime) -> list[Any]:
    """What write_rows computes in Python for a batch of new traces (no database)."""
    values = [tw._copy_values(r) for r in rows]
    batch: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        batch.setdefault(row["trace_id"], []).append(row)
    values += [tw._trace_row(1, t, spans, {}, None, now) for t, spans in batch.items()]
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", help="write a pyinstrument HTML profile of one round")
    args = parser.parse_args()
    bodies = [body for body, _ in encode_batches(args.batches)]
    spans = args.batches * BATCH
    stages(bodies[:2])  # warm-up: imports, caches
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        stages(bodies)
        profiler.stop()
        Path(args.profile).write_text(profiler.output_html())
        print(profiler.output_text(unicode=False, color=False, show_all=False)[:6000])
        return
    print(f"load average at start: {load_average()}; {spans:,} spans x {args.rounds} rounds")
    import gc

    for label in ("the collector as it is", "after gc.freeze (as serve's settle_heap)"):
        if label.startswith("after"):
            gc.collect()
            gc.freeze()
        rounds = [stages(bodies) for _ in range(args.rounds)]
        print(f"-- {label}\n{'stage':16} {'CPU us/span':>12} {'x floor':>8}")
        floor = statistics.median(r["floor: parse"] for r in rounds) / spans * 1e6
        total = 0.0
        for name in rounds[0]:
            us = statistics.median(r[name] for r in rounds) / spans * 1e6
            if not name.startswith("floor"):
                total += us
            print(f"{name:16} {us:12.1f} {us / floor:8.1f}")
        print(f"{'ingest total':16} {total:12.1f} {total / floor:8.1f}")
        print(f"spans per CPU-second, this work alone: {1e6 / total:,.0f}")
    gc.unfreeze()
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
