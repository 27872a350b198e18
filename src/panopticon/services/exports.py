"""A run's results as a file: JSON, JSON lines or CSV (one row per answer)."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

__all__ = ["FORMATS", "render_export"]

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
