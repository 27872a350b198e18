"""``panopticon runs``, ``show`` and ``export``: reading stored runs."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from panopticon.cli.output import console, handle_errors, money, print_summary
from panopticon.services.exports import render_export
from panopticon.services.runs import (
    describe_run_state,
    load_run,
    run_public,
    store,
    summarize_run,
)
from panopticon.settings import load_settings
from panopticon.stats.summary import summarize
from panopticon.store.queries import catalog
from panopticon.store.queries import runs as run_queries

__all__ = ["export", "runs", "show"]


@handle_errors
def runs(
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many, newest first."),
) -> None:
    """List runs, newest first."""
    settings = load_settings()
    with store(settings) as engine, engine.begin() as conn:
        ws = catalog.ensure_workspace(conn, settings.workspace)
        rows = run_queries.list_runs(conn, ws, limit)
    if not rows:
        console.print(
            "No runs yet. Start one with: panopticon run suite.yaml (or try: panopticon demo)"
        )
        return
    table = Table()
    for col in ("id", "name", "status", "created (UTC)", "answers", "failed", "scores", "cost"):
        table.add_column(
            col, justify="right" if col in ("id", "answers", "failed", "scores", "cost") else "left"
        )
    for r in rows:
        t = r.totals or {}
        state = describe_run_state(r)
        color = {
            "completed": "green",
            "failed": "red",
            "interrupted": "yellow",
            "stopped": "yellow",
            "abandoned": "yellow",
        }.get(state, "cyan")
        table.add_row(
            str(r.id),
            r.name,
            f"[{color}]{state}[/]",
            f"{r.created_at:%Y-%m-%d %H:%M}",
            f"{t.get('answers', '-')}/{r.planned}",
            str(t.get("failed", "-")),
            str(t.get("scores", "-")),
            money(t.get("cost_usd")) if t else "-",
        )
    console.print(table)


@handle_errors
def show(
    run_id: str = typer.Argument(..., help="Run id, or 'last'."),
    errors: bool = typer.Option(False, "--errors", help="List every failure."),
    answers: bool = typer.Option(
        False, "--answers", help="Every model's (and prompt's) answer to each query, in full."
    ),
    query: str | None = typer.Option(
        None, "--query", help="With --answers: one query, by its dataset id or number."
    ),
) -> None:
    """Show a run: its status, summary tables and failures."""
    if answers:
        from panopticon.cli.answers import print_answers
        from panopticon.services.answers import answers_side_by_side
        from panopticon.services.database import workspace_id
        from panopticon.services.runs import get_run

        settings = load_settings()
        with store(settings) as engine:
            found = get_run(engine, workspace_id(engine, settings.workspace), run_id)
            print_answers(answers_side_by_side(engine, found.id, query=query)[0])
        return
    row, rows = load_run(load_settings(), run_id)
    state = describe_run_state(row)
    console.print(
        f"[bold]Run {row.id}[/] {row.name}: {state}"
        + (f" ({row.stop_reason})" if row.stop_reason else ""),
        highlight=False,
    )
    console.print(
        f"created {row.created_at:%Y-%m-%d %H:%M:%S} UTC"
        + (f", finished {row.finished_at:%H:%M:%S}" if row.finished_at else "")
        + (f", suite {row.suite_path}" if row.suite_path else "")
    )
    print_summary(summarize(rows))
    failures = [r for r in rows if r["error"]]
    score_failures = [(r, name, s) for r in rows for name, s in r["scores"].items() if s["error"]]
    shown = failures if errors else failures[:5]
    if failures:
        console.print(
            f"[red]{len(failures)} failed answers[/]"
            + ("" if errors or len(failures) <= 5 else " (first 5; --errors for all)")
        )
        for r in shown:
            console.print(
                f"  {r['model']} / query {r['query_id']} / repeat {r['repeat']}: {r['error']}",
                markup=False,
            )
    if score_failures:
        console.print(f"[red]{len(score_failures)} score errors[/]")
        for r, name, s in score_failures if errors else score_failures[:5]:
            console.print(
                f"  {name} on {r['model']} / query {r['query_id']}: {s['error']}", markup=False
            )
    if state in ("failed", "interrupted", "stopped", "abandoned") and row.suite_path:
        console.print(f"To continue: panopticon run {row.suite_path} --resume {row.id}")


@handle_errors
def export(
    run_id: str = typer.Argument(..., help="Run id, or 'last'."),
    fmt: str = typer.Option("jsonl", "--format", "-f", help="csv, jsonl or json."),
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
    with store(settings) as engine:
        summary = summarize_run(engine, row.id).as_dict()
    data = render_export(fmt, run_public(row) | {"suite": row.suite}, rows, summary)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        output.write_bytes(data)
        console.print(f"wrote {len(rows)} results to {output}", highlight=False)
