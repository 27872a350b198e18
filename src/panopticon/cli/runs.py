"""``panopticon runs``, ``show`` and ``export``: reading stored runs."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from panopticon.cli.output import check_writable, console, handle_errors, money
from panopticon.cli.summary import summary_grids
from panopticon.cli.tables import FORMAT_HELP, Column, Grid, check_format, emit, resolve_format
from panopticon.services.exports import render_export
from panopticon.services.metric_kinds import run_kinds
from panopticon.services.runs import (
    describe_run_state,
    load_run,
    pairwise_results,
    recent_runs,
    run_public,
    run_totals,
    store,
    summarize_run,
)
from panopticon.settings import load_settings
from panopticon.stats.summary import summarize

__all__ = ["export", "runs", "show"]


_STATE_COLORS = {
    "completed": "green",
    "failed": "red",
    "interrupted": "yellow",
    "stopped": "yellow",
    "abandoned": "yellow",
}


def _count(value: Any) -> str:
    return "-" if value is None else str(value)


@handle_errors
def runs(
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many, newest first."),
    fmt: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
) -> None:
    """List runs, newest first."""
    check_format(fmt)
    settings = load_settings()
    with store(settings) as engine:
        rows = recent_runs(engine, settings.workspace, limit)
    if not rows and fmt not in ("json", "csv"):
        console.print(
            "No runs yet. Start one with: panopticon run suite.yaml (or try: panopticon demo)"
        )
        return
    grid = Grid(
        "runs",
        None,
        [
            Column("id", str, right=True),
            Column("name"),
            Column("status", style=lambda v: _STATE_COLORS.get(v, "cyan")),
            Column("created (UTC)"),
            Column("answers", _count, right=True),
            Column("planned", _count, right=True),
            Column("failed", _count, right=True),
            Column("scores", _count, right=True),
            Column("score errors", _count, right=True),
            Column("pairs", _count, right=True),
            # the priced part ("unknown", null in JSON, when nothing is priced), beside the
            # answers of unknown cost (their cost is not in it: the total is at least it)
            Column(
                "cost", lambda v: "unknown" if v is None else money(v), right=True, key="cost_usd"
            ),
            Column("unknown cost", _count, right=True),
        ],
    )
    for r in rows:
        t = run_totals(r)
        grid.rows.append(
            [
                r.id,
                r.name,
                describe_run_state(r),
                f"{r.created_at:%Y-%m-%d %H:%M}",
                t.get("answers"),
                r.planned,
                t.get("failed"),
                t.get("scores"),
                t.get("score_errors"),
                t.get("pairs"),
                t.get("cost_usd"),
                t.get("unknown_cost"),
            ]
        )
    emit([grid], resolve_format(fmt, console), console)


def query_label(row: dict[str, Any]) -> str:
    """How a person finds a query: its dataset id and the file and line it came from, else
    the start of its text (:func:`panopticon.evaluation.queries.query_label`)."""
    from panopticon.evaluation.queries import query_label as label

    return label(
        row.get("query_external_id"), row.get("query_file"), row.get("query_line"), row["query"]
    )


def _pairwise_grid(pairs: list[dict[str, Any]], models: list[str]) -> Grid:
    from panopticon.reports.data import pairwise_summary

    pct = Column("", lambda v: "-" if v is None else f"{v:.0%}", right=True)
    grid = Grid(
        "pairwise",
        "Pairwise: win rate of model against each other (ties count half; 95% CI)",
        [
            Column("metric"),
            Column("model"),
            Column("against"),
            Column("n", str, right=True),
            replace(pct, name="win rate"),
            replace(pct, name="low"),
            replace(pct, name="high"),
        ],
    )
    for pw in pairwise_summary(pairs, models):
        for w in pw["win_rates"]:
            grid.rows.append(
                [pw["metric"], w["a"], w["b"], w["n"], w["win_rate"], w["low"], w["high"]]
            )
    return grid


def _position_grid(pairs: list[dict[str, Any]], models: list[str]) -> Grid:
    """Per pairwise judge: its position preference with its interval, and how often the
    two orders of a pair disagreed (any noisy judge's do; that alone is not a bias)."""
    from panopticon.reports.data import pairwise_summary

    signed = Column("", lambda v: "-" if v is None else f"{v:+.2f}", right=True)
    grid = Grid(
        "position",
        "Pairwise judges' position preference: P(first shown wins) - P(second shown wins), "
        "0 is none (95% CI); beside it, how often a pair's two orders disagreed",
        [
            Column("metric"),
            Column("pairs", str, right=True),
            replace(signed, name="preference"),
            replace(signed, name="low"),
            replace(signed, name="high"),
            Column("orders disagreed", lambda v: "-" if v is None else f"{v:.0%}", right=True),
        ],
    )
    for pw in pairwise_summary(pairs, models):
        grid.rows.append(
            [
                pw["metric"],
                pw["pairs"],
                pw["position_preference"],
                pw["position_preference_low"],
                pw["position_preference_high"],
                pw["order_disagreement_rate"],
            ]
        )
    return grid


@handle_errors
def show(
    run_id: str = typer.Argument(..., help="Run id, or 'last'."),
    errors: bool = typer.Option(False, "--errors", help="List every failure."),
    fmt: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
    answers: bool = typer.Option(
        False, "--answers", help="Every model's (and prompt's) answer to each query, in full."
    ),
    query: str | None = typer.Option(
        None, "--query", help="With --answers: one query, by its dataset id or FILE:LINE."
    ),
) -> None:
    """Show a run: its status, summary tables and failures (or, with --answers, every
    answer to each query side by side)."""
    check_format(fmt)
    settings = load_settings()
    if answers:
        from panopticon.cli.answers import print_answers
        from panopticon.services.answers import answers_side_by_side
        from panopticon.services.database import workspace_id
        from panopticon.services.runs import get_run

        with store(settings) as engine:
            found = get_run(engine, workspace_id(engine, settings.workspace), run_id)
            print_answers(answers_side_by_side(engine, found.id, query=query)[0])
        return
    row, rows = load_run(settings, run_id)
    with store(settings) as engine:
        pairs = pairwise_results(engine, row.id)
        kinds = run_kinds(engine, row.id)  # every scored metric's, per-query ones too
    fmt = resolve_format(fmt, console)
    state = describe_run_state(row)
    summary = summarize(rows, kinds)
    grids = summary_grids(summary)
    if pairs:
        models = [m.model for m in summary.models]
        grids += [_pairwise_grid(pairs, models), _position_grid(pairs, models)]
    failures = [r for r in rows if r["error"]]
    score_failures = [
        (name, r["model"], query_label(r), s["error"])
        for r in rows
        for name, s in r["scores"].items()
        if s["error"]
    ]
    score_failures += [
        (p["metric"], f"{p['model_a']} vs {p['model_b']}", query_label(p), p["error"])
        for p in pairs
        if p["error"]
    ]
    if fmt in ("json", "csv"):
        run = Grid(
            "run",
            None,
            [Column(c) for c in ("id", "name", "state", "stop_reason", "suite_path")],
            [[row.id, row.name, state, row.stop_reason, row.suite_path]],
        )
        failed = Grid(
            "failures",
            None,
            [Column(c) for c in ("kind", "metric", "model", "query", "repeat", "error")],
            [
                ["answer", None, r["model"], query_label(r), r["repeat"], r["error"]]
                for r in failures
            ]
            + [["score", m, model, q, None, e] for m, model, q, e in score_failures],
        )
        emit([run, *grids, failed], fmt, console)
        return
    console.print(
        f"[bold]Run {row.id}[/] {row.name}: {state}"
        + (f" ({row.stop_reason})" if row.stop_reason else ""),
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"created {row.created_at:%Y-%m-%d %H:%M:%S} UTC"
        + (f", finished {row.finished_at:%H:%M:%S}" if row.finished_at else "")
        + (f", suite {row.suite_path}" if row.suite_path else ""),
        soft_wrap=True,
    )
    emit(grids, fmt, console)
    shown = failures if errors else failures[:5]
    if failures:
        console.print(
            f"[red]{len(failures)} failed answers[/]"
            + ("" if errors or len(failures) <= 5 else " (first 5; --errors for all)")
        )
        for r in shown:
            console.print(
                f"  {r['model']} / {query_label(r)} / repeat {r['repeat']}: {r['error']}",
                markup=False,
                soft_wrap=True,
            )
    if score_failures:
        console.print(
            f"[red]{len(score_failures)} score errors[/]"
            + ("" if errors or len(score_failures) <= 5 else " (first 5; --errors for all)")
        )
        for name, model, query, error in score_failures if errors else score_failures[:5]:
            console.print(f"  {name} on {model} / {query}: {error}", markup=False, soft_wrap=True)
    if row.suite_path and (
        state in ("failed", "interrupted", "stopped", "abandoned") or score_failures
    ):
        console.print(
            f"To continue: panopticon run {row.suite_path} --resume {row.id}", soft_wrap=True
        )


@handle_errors
def export(
    run_id: str = typer.Argument(..., help="Run id, or 'last'."),
    fmt: str = typer.Option(
        "jsonl",
        "--format",
        "-f",
        help="csv, jsonl or json. json and jsonl also hold the pairwise judgements "
        "(jsonl: lines with kind=pairwise after the answers).",
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="File (default: stdout)."),
) -> None:
    """Export every result of a run with its scores."""
    if fmt not in ("csv", "jsonl", "json"):
        from panopticon.errors import ConfigError, Issue

        raise ConfigError(
            Issue(f"unknown format '{fmt}'", field="--format", hint="use csv, jsonl or json")
        )
    settings = load_settings()
    row, rows = load_run(settings, run_id)
    if output is not None:
        check_writable(output, "--output")
    with store(settings) as engine:
        summary = summarize_run(engine, row.id).as_dict()
        pairs = pairwise_results(engine, row.id)
    data = render_export(fmt, run_public(row) | {"suite": row.suite}, rows, summary, pairs)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        output.write_bytes(data)
        console.print(f"wrote {len(rows)} results to {output}", highlight=False)
