"""``panopticon compare``: is A really better than B, or is it noise?"""

from __future__ import annotations

import orjson
import typer
from rich.table import Table

from panopticon.cli.output import EXIT, console, err_console, handle_errors
from panopticon.errors import ConfigError, Issue
from panopticon.services.compare import (
    Comparison,
    compare_models,
    compare_prompts,
    compare_runs,
    worse,
)
from panopticon.services.runs import store
from panopticon.settings import load_settings
from panopticon.store.queries import catalog
from panopticon.store.queries import runs as run_queries

__all__ = ["compare"]


def _print(c: Comparison) -> None:
    table = Table(title=f"A = {c.label_a}   B = {c.label_b}", title_justify="left")
    for col in (
        "metric",
        "n",
        "mean A",
        "mean B",
        "A - B",
        "95% CI",
        "test",
        "p",
        "p (Holm)",
        "verdict",
    ):
        table.add_column(col, justify="left" if col in ("metric", "test", "verdict") else "right")
    for r in c.results:
        color = "green" if r.verdict != "tied" else "yellow"
        table.add_row(
            r.metric,
            str(r.n),
            f"{r.mean_a:.3f}",
            f"{r.mean_b:.3f}",
            f"{r.diff:+.3f}",
            f"{r.ci_low:+.3f} to {r.ci_high:+.3f}",
            r.test,
            f"{r.p_value:.3g}",
            f"{r.p_adjusted:.3g}",
            f"[{color}]{r.verdict}[/]",
        )
    console.print(table)
    for r in c.results:
        if r.warning:
            console.print(f"[yellow]warning:[/] {r.metric}: {r.warning}", soft_wrap=True)
    for metric, count in c.unpaired.items():
        if count:
            console.print(
                f"{metric}: {count} items without a value on both sides were left "
                "out (failed answers or score errors)",
                soft_wrap=True,
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
    settings = load_settings()
    with store(settings) as engine:
        with engine.begin() as conn:
            ws = catalog.ensure_workspace(conn, settings.workspace)
            ids = [run_queries.get_run(conn, ws, ref).id for ref in runs]
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
    if as_json:
        console.print_json(orjson.dumps([c.as_dict() for c in comparisons]).decode())
    else:
        for c in comparisons:
            _print(c)
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
