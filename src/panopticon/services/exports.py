"""A run's results as a file: JSON, JSON lines or CSV (one row per answer); and the scores
a results filter selects (run and production ones, each with its source), as a stream."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from panopticon.services.results import ScoreRow

__all__ = ["FORMATS", "SCORE_FIELDS", "render_export", "render_scores"]

FORMATS = {"json": "application/json", "jsonl": "application/x-ndjson", "csv": "text/csv"}


def _flatten(row: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    flat = {k: v for k, v in row.items() if k != "scores"}
    for name in metrics:
        s = row["scores"].get(name) or {}
        flat[f"{name}.value"] = s.get("value")
        flat[f"{name}.passed"] = s.get("passed")
        flat[f"{name}.reasoning"] = s.get("reasoning")
        flat[f"{name}.error"] = s.get("error")
    return flat


def render_export(
    fmt: str,
    run: dict[str, Any],
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    pairwise: list[dict[str, Any]] | None = None,
) -> bytes:
    """``fmt`` is one of FORMATS. JSON holds the run, its summary, every result and every
    pairwise judgement; JSON lines give the answers, then one line per pairwise judgement
    (``"kind": "pairwise"``); CSV has one row per answer."""
    pairwise = pairwise or []
    if fmt == "jsonl":
        lines = [orjson.dumps(r, default=str) + b"\n" for r in rows]
        lines += [orjson.dumps({"kind": "pairwise", **p}, default=str) + b"\n" for p in pairwise]
        return b"".join(lines)
    if fmt == "json":
        return orjson.dumps(
            {"run": run, "summary": summary, "results": rows, "pairwise": pairwise},
            option=orjson.OPT_INDENT_2,
            default=str,
        )
    metrics = sorted({name for r in rows for name in r["scores"]})
    flat = [_flatten(r, metrics) for r in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(flat[0]) if flat else ["result_id"])
    writer.writeheader()
    writer.writerows(flat)
    return buf.getvalue().encode()


# one row per score: what it is about (a run's answer, or a production trace or span), where
# it came from, and the score itself
SCORE_FIELDS = (
    "id",
    "created_at",
    "source",
    "run_id",
    "result_id",
    "trace_id",
    "span_id",
    "rule_version",
    "model_id",
    "theme",
    "query",
    "response",
    "metric",
    "value",
    "normalized",
    "passed",
    "label",
    "reasoning",
    "error",
    "judge_model",
    "latency_ms",
    "cost_usd",
)


def _cell(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def render_scores(fmt: str, rows: Iterable[ScoreRow]) -> Iterator[bytes]:
    """Scores as CSV (one row each, SCORE_FIELDS), JSON lines, or one JSON array, streamed
    in chunks; ``fmt`` is one of FORMATS."""
    fields = list(SCORE_FIELDS)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(fields)
        for i, row in enumerate(rows, 1):
            d = asdict(row)
            writer.writerow([_cell(d[k]) for k in fields])
            if i % 500 == 0:
                yield buf.getvalue().encode()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue().encode()
        return
    if fmt == "jsonl":
        for row in rows:
            d = asdict(row)
            yield orjson.dumps({k: d[k] for k in fields}, default=str) + b"\n"
        return
    yield b"["
    for i, row in enumerate(rows):
        d = asdict(row)
        yield (b",\n" if i else b"\n") + orjson.dumps({k: d[k] for k in fields}, default=str)
    yield b"\n]\n"
