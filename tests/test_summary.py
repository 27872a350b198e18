"""The run summary: intervals, per-theme rows, repeat spread and the CI gate's rule."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import pstdev
from typing import Any

import pytest
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.mockllm.server import MockServer
from panopticon.stats.summary import summarize
from tests.conftest import suite_yaml, write


def row(
    model: str,
    query: int,
    repeat: int,
    theme: str,
    value: float | None,
    passed: bool | None,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "model": model,
        "query_id": query,
        "repeat": repeat,
        "theme": theme,
        "error": None,
        "cached": False,
        "cost_usd": 0.001,
        "latency_ms": 100.0 + query,
        "input_tokens": 10,
        "output_tokens": 20,
        "scores": {
            "q": {
                "value": value,
                "normalized": None if value is None else (value - 1) / 9,
                "passed": passed,
                "error": error,
                "judge_model": "j",
                "judge_input_tokens": 5,
                "judge_output_tokens": 5,
                "judge_cost_usd": 0.0001,
            }
        },
    }


def test_repeats_spread_themes_and_intervals() -> None:
    rows = []
    scores = {1: [7, 8, 9], 2: [5, 5, 5], 3: [2, 4, 6]}
    for q, values in scores.items():
        for r, v in enumerate(values):
            rows.append(row("m", q, r, "a" if q < 3 else "b", v, v >= 6))
    s = summarize(rows)
    (m,) = s.metrics
    assert m.n == 9 and m.mean == pytest.approx(51 / 9)
    assert m.repeat_sd == pytest.approx(sum(pstdev(v) for v in scores.values()) / 3)
    assert m.mean_low is not None and m.mean_low < m.mean < (m.mean_high or 0)
    assert m.passed == 4 and m.with_threshold == 9  # 7, 8, 9 and 6
    assert m.pass_low is not None and m.pass_low < 4 / 9 < (m.pass_high or 0)
    assert {(t.theme, t.n) for t in s.by_theme} == {("a", 6), ("b", 3)}
    assert s.models[0].distributions["latency_ms"]["p50"] == pytest.approx(102.0)


def test_the_gate_counts_score_errors_as_failures() -> None:
    rows = [
        row("m", 1, 0, "a", 8, True),
        row("m", 2, 0, "a", 8, True),
        row("m", 3, 0, "a", None, None, error="no score"),
        row("m", 4, 0, "a", None, None, error="no score"),
    ]
    assert summarize(rows).gate_pass_rate() == 0.5
    assert summarize([row("m", 1, 0, "a", 8, None)]).gate_pass_rate() is None


def test_a_gate_line_counts_the_queries_whose_scores_failed_too() -> None:
    """The pass rate a gate reads counts score errors as failures, over every query; its line
    said "2 queries" (those with a valid score) for a rate of 2 out of 4."""
    from panopticon.services.gates import check_thresholds

    rows = [
        row("m", 1, 0, "a", 8, True),
        row("m", 2, 0, "a", 8, True),
        row("m", 3, 0, "a", None, None, error="no score"),
        row("m", 4, 0, "a", None, None, error="no score"),
    ]
    (gate,) = check_thresholds(summarize(rows), {"q": 0.9})
    assert (gate.measure, gate.value, gate.queries) == ("pass rate", 0.5, 4)


def test_show_and_export_count_queries_not_repeats(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    """With repeats: 3, n is 3 scores per query but the interval's sample is the queries,
    and show says both."""
    path = write(
        tmp_path / "s.yaml", suite_yaml(mock.url, queries=6, models=("good",), extra="repeats: 3\n")
    )
    assert CliRunner().invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
    show = CliRunner().invoke(app, ["show", "1", "--format", "md"])
    assert "clustered by query" in show.output and "| n | queries |" in show.output
    quality_row = next(line for line in show.output.splitlines() if "| quality |" in line)
    assert "| 18 | 6 |" in quality_row
    exported = json.loads(CliRunner().invoke(app, ["export", "1", "--format", "json"]).output)
    quality = next(m for m in exported["summary"]["metrics"] if m["metric"] == "quality")
    assert quality["n"] == 18 and quality["clusters"] == 6
    assert 1 <= quality["mean_low"] < quality["mean_high"] <= 10
