"""``panopticon annotate`` (import people's labels) and ``calibration`` (judge vs people)."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer
from rich.table import Table

from panopticon.cli.output import console, handle_errors
from panopticon.services.annotations import calibrate, import_labels
from panopticon.services.runs import find_run, store
from panopticon.settings import load_settings

__all__ = ["annotate", "calibration"]


@handle_errors
def annotate(
    labels: Path = typer.Argument(
        ..., help="CSV or JSONL: result_id, metric, passed and/or value, comment, annotator."
    ),
    annotator: str = typer.Option(
        "default", "--annotator", help="Who labelled (when the file has no annotator column)."
    ),
) -> None:
    """Import people's labels on results; every row is checked before any is stored."""
    settings = load_settings()
    with store(settings) as engine:
        new, replaced = import_labels(engine, settings.workspace, labels, annotator)
    console.print(f"stored {new} new labels, replaced {replaced}", highlight=False)


def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


@handle_errors
def calibration(
    run_id: str = typer.Argument(
        ...,
        help="Run id, 'last', or 'production' (people's labels on traces against the "
        "online rules', guardrails' and clients' scores of the same spans).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """How well each judge agrees with people: Cohen's kappa and Spearman, with 95% CIs."""
    from panopticon.services.annotations import calibrate_production
    from panopticon.services.database import workspace_id

    settings = load_settings()
    with store(settings) as engine:
        if run_id == "production":
            what = "production traces"
            report = calibrate_production(engine, workspace_id(engine, settings.workspace))
        else:
            run = find_run(engine, settings.workspace, run_id)
            what = f"run {run.id}"
            report = calibrate(engine, run.id)
    if as_json:
        console.print_json(orjson.dumps([c.as_dict() for c in report]).decode())
        return
    if not report:
        hint = (
            "label spans on a trace's page (/ui/traces/ID) that an online rule has scored"
            if run_id == "production"
            else "import some with panopticon annotate labels.csv"
        )
        console.print(f"{what} has no labels yet: {hint}", highlight=False)
        return
    production = run_id == "production"
    table = Table(title=f"Judge against people, {what}", title_justify="left")
    for col in (
        "metric",
        *(("source",) if production else ()),
        "labelled",
        "spans" if production else "answers",
        "pass/fail pairs",
        "agreement",
        "agreement 95% CI",
        "kappa",
        "kappa 95% CI",
        "score pairs",
        "Spearman",
        "Spearman 95% CI",
    ):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for c in report:
        table.add_row(
            c.metric,
            *((c.source,) if production else ()),
            str(c.labelled),
            str(c.results),
            str(c.pass_pairs),
            _f(c.agreement, "{:.0%}"),
            f"{_f(c.agreement_low, '{:.0%}')} to {_f(c.agreement_high, '{:.0%}')}"
            if c.agreement_low is not None
            else "too few",
            _f(c.kappa),
            f"{_f(c.kappa_low)} to {_f(c.kappa_high)}",
            str(c.value_pairs),
            _f(c.spearman),
            f"{_f(c.spearman_low)} to {_f(c.spearman_high)}",
        )
    console.print(table)
