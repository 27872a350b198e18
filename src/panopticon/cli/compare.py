"""``panopticon compare``: is A really better than B, or is it noise?"""

from __future__ import annotations

from dataclasses import replace

import orjson
import typer

from panopticon.cli.output import EXIT, console, err_console, handle_errors
from panopticon.cli.tables import Column, Grid, check_format, emit, resolve_format
from panopticon.errors import ConfigError, Issue
from panopticon.services.compare import (
    Comparison,
    compare_models,
    compare_prompts,
    compare_runs,
    with_production,
    worse,
)
from panopticon.services.database import workspace_id
from panopticon.services.runs import find_run, store
from panopticon.settings import load_settings

__all__ = ["compare"]


def _grid(c: Comparison) -> Grid:
    three = Column("", lambda v: f"{v:.3f}", right=True)
    signed = Column("", lambda v: f"{v:+.3f}", right=True)
    grid = Grid(
        "comparison",
        f"A = {c.label_a}   B = {c.label_b}",
        [
            Column("a"),
            Column("b"),
            Column("metric"),
            Column("n", str, right=True),
            replace(three, name="mean A"),
            replace(three, name="mean B"),
            replace(signed, name="A - B"),
            Column("95% CI", lambda v: f"{v[0]:+.3f} to {v[1]:+.3f}", right=True, key="ci_95"),
            Column("test"),
            Column("p", lambda v: f"{v:.3g}", right=True),
            Column("p (Holm)", lambda v: f"{v:.3g}", right=True),
            Column("verdict", style=lambda v: {"tied": "yellow", "too few": "red"}.get(v, "green")),
        ],
    )
    for r in c.results:
        grid.rows.append(
            [
                c.label_a,
                c.label_b,
                r.metric,
                r.n,
                r.mean_a,
                r.mean_b,
                r.diff,
                (r.ci_low, r.ci_high),
                r.test,
                r.p_value,
                r.p_adjusted,
                r.verdict,
            ]
        )
    return grid


def _print(c: Comparison, fmt: str) -> None:
    grid = _grid(c)
    if fmt in ("table", "md"):  # the title names A and B: no need to repeat them per row
        grid = replace(grid, columns=grid.columns[2:], rows=[row[2:] for row in grid.rows])
    emit([grid], fmt, console)
    console.print(
        f"n: items paired; p (Holm): corrected across all {c.tests} tests shown", soft_wrap=True
    )
    for r in c.results:
        if r.warning:
            console.print(f"[yellow]warning:[/] {r.metric}: {r.warning}", soft_wrap=True)
    for t in c.pairwise:
        console.print(
            f"pairwise '{t.metric}': A preferred {t.a_wins} times, B {t.b_wins}, tied "
            f"{t.ties}" + (f"; {t.errors} judgements failed" if t.errors else ""),
            soft_wrap=True,
        )
    for metric, count in c.unpaired.items():
        if count:
            console.print(
                f"{metric}: {count} items were left out: each has no value on one side "
                "(not asked there, a failed answer or a score error)",
                soft_wrap=True,
            )
    if c.production:
        console.print(c.production_note, soft_wrap=True, highlight=False)
        for p in c.production:
            served = f"{p.model}@{p.prompt}" if p.prompt is not None else p.model
            if p.mean is None:  # no score with a value: say what there is instead
                what = f"no mean: {p.note}" if p.note else "no mean"
                line = f"{what}, n=0 scores"
            else:
                interval = (
                    f"[{p.low:.3f}, {p.high:.3f}]"
                    if p.low is not None and p.high is not None
                    else "(too few traces)"
                )
                line = f"{p.mean:.3f} {interval}, n={p.n} scores of {p.traces} traces"
                if p.note:
                    line += f"; {p.note}"
            console.print(
                f"production, unpaired: {served} ({p.source}) {p.metric}: {line}",
                soft_wrap=True,
                highlight=False,
            )


@handle_errors
def compare(
    runs: list[str] = typer.Argument(..., help="RUN_A RUN_B, or one RUN with --models."),
    models: str | None = typer.Option(None, "--models", help="A,B: two models of one run."),
    min_effect: float = typer.Option(
        0.05,
        "--min-effect",
        min=0.0,
        help="The smallest "
        "difference (normalised 0..1 scale) that matters: warn "
        "when there are too few items to detect it.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    fmt: str | None = typer.Option(
        None,
        "--format",
        "-f",
        help="table, md, json or csv (default: a table on a terminal, else Markdown). "
        "--json is the comparison's full JSON.",
    ),
    prompts: str | None = typer.Option(
        None, "--prompts", help="A,B: two prompt variants of one run, on each of its models."
    ),
    fail_on_worse: bool = typer.Option(
        False,
        "--fail-on-worse",
        help="Exit with code 4 when B is significantly worse than A (A the baseline) on any "
        "metric.",
    ),
) -> None:
    """Paired comparison per metric: difference, 95% CI, p-value (Holm) and verdict."""
    check_format(fmt)
    settings = load_settings()
    with store(settings) as engine:
        ids = [find_run(engine, settings.workspace, ref).id for ref in runs]
        if prompts is not None:
            names = [p.strip() for p in prompts.split(",") if p.strip()]
            if len(ids) != 1 or len(names) != 2:
                raise ConfigError(
                    Issue(
                        "--prompts takes two prompt ids and one run",
                        field="--prompts",
                        hint="panopticon compare 12 --prompts terse,chatty",
                    )
                )
            comparisons = compare_prompts(engine, ids[0], names[0], names[1], min_effect=min_effect)
        elif models is not None:
            names = [m.strip() for m in models.split(",") if m.strip()]
            if len(ids) != 1 or len(names) != 2:
                raise ConfigError(
                    Issue(
                        "--models takes two model ids and one run",
                        field="--models",
                        hint="panopticon compare 12 --models gpt-4o,claude",
                    )
                )
            comparisons = [
                compare_models(engine, ids[0], names[0], names[1], min_effect=min_effect)
            ]
        elif len(ids) == 2:
            comparisons = compare_runs(engine, ids[0], ids[1], min_effect=min_effect)
        else:
            raise ConfigError(
                Issue(
                    "give two runs, or one run and --models A,B",
                    hint="panopticon compare 11 12   or   panopticon compare 12 --models a,b",
                )
            )
        # the models' production scores beside, unpaired
        ws = workspace_id(engine, settings.workspace, create=False)
        comparisons = with_production(engine, ws, comparisons)
    if as_json:
        console.print_json(orjson.dumps([c.as_dict() for c in comparisons]).decode())
    else:
        fmt = resolve_format(fmt, console)
        if fmt in ("json", "csv"):  # one table: a row per model pair and metric
            rows = [row for c in comparisons for row in _grid(c).rows]
            emit([replace(_grid(comparisons[0]), rows=rows)], fmt, console)
        else:
            for c in comparisons:
                _print(c, fmt)
    if fail_on_worse:
        found = worse(comparisons)
        for c, r in found:
            err_console.print(
                f"[bold red]worse:[/] {c.label_b} is worse than {c.label_a} on {r.metric} "
                f"({r.diff:+.3f}, p (Holm) {r.p_adjusted:.3g})",
                highlight=False,
                soft_wrap=True,
            )
        if found:
            raise typer.Exit(EXIT["regression"])
