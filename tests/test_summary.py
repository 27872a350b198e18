"""The run summary: intervals, per-theme rows, repeat spread and the CI gate's rule."""

from __future__ import annotations

from statistics import pstdev
from typing import Any

import pytest

from panopticon.stats.summary import summarize


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
