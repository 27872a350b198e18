"""The run's summary tables: answers by model, and scores by model and metric.

Printed by ``panopticon run`` when the run has finished and by ``panopticon show``; kept out
of :mod:`panopticon.cli.output` so that a run reaches its first call without importing the
statistics and table code (tests/test_cli_startup.py).
"""

from __future__ import annotations

from dataclasses import replace

from panopticon.cli.output import console, money
from panopticon.cli.tables import Column, Grid, emit, resolve_format
from panopticon.stats.summary import Summary

__all__ = ["print_summary", "summary_grids"]


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def _ci(low: float | None, high: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if low is None or high is None else f"{fmt.format(low)} to {fmt.format(high)}"


def summary_grids(summary: Summary) -> list[Grid]:
    """The run's two tables: answers by model, and scores by model and metric."""
    count = Column("", str, right=True)
    answers = Grid(
        "answers",
        "Answers by model",
        [
            Column("model"),
            replace(count, name="answers"),
            replace(count, name="failed", style=lambda v: "red" if v else None),
            replace(count, name="cached"),
            Column("tok in", lambda v: f"{v:,}", right=True),
            Column("tok out", lambda v: f"{v:,}", right=True),
            Column("cost", money, right=True),
            Column("p50 ms", lambda v: _num(v, "{:.0f}"), right=True),
            Column("p95 ms", lambda v: _num(v, "{:.0f}"), right=True),
        ],
        [
            [
                m.model,
                m.answers,
                m.failed,
                m.cached,
                m.input_tokens,
                m.output_tokens,
                m.cost_usd,
                m.latency_p50_ms,
                m.latency_p95_ms,
            ]
            for m in summary.models
        ],
    )
    if not summary.metrics:
        return [answers]
    pct = Column("", lambda v: "-" if v is None else f"{v:.0%}", right=True)
    scores = Grid(
        "scores",
        "Scores by model and metric (95% CIs clustered by query, within the scale; "
        "n scores of that many queries; '-': one query is too few to say)",
        [
            Column("model"),
            Column("metric"),
            Column("mean", _num, right=True),
            Column("95% CI", lambda v: _ci(v[0], v[1]), right=True),
            replace(pct, name="pass"),
            Column("pass 95% CI", lambda v: _ci(v[0], v[1], "{:.0%}"), right=True),
            replace(count, name="n"),
            replace(count, name="queries"),
            replace(count, name="errors", style=lambda v: "red" if v else None),
            Column("judge tok", lambda v: f"{v:,}" if v else "-", right=True),
            Column("judge cost", lambda v: "-" if v is None else money(v), right=True),
        ],
        [
            [
                s.model,
                s.metric,
                s.mean,
                (s.mean_low, s.mean_high),
                s.pass_rate,
                (s.pass_low, s.pass_high),
                s.n,
                s.clusters,
                s.errors,
                s.judge_tokens,
                s.judge_cost_usd if s.judge_tokens else None,
            ]
            for s in summary.metrics
        ],
    )
    return [answers, scores]


def print_summary(summary: Summary, fmt: str | None = None) -> None:
    emit(summary_grids(summary), resolve_format(fmt, console), console)
