"""``panopticon report``: HTML (self-contained), Markdown, CSV and JSON for a run."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

from panopticon.cli.output import check_writable, console, handle_errors
from panopticon.errors import ConfigError, Issue
from panopticon.services.runs import find_run, store
from panopticon.settings import load_settings

__all__ = ["report"]

FORMATS = ("html", "md", "csv", "json")


@handle_errors
def report(
    run_id: str = typer.Argument(..., help="Run id, or 'last'."),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", "-o", help="Folder (default: reports/run-<id>)."
    ),
    formats: str = typer.Option(
        ",".join(FORMATS), "--format", "-f", help="Any of html, md, csv, json, comma-separated."
    ),
) -> None:
    """Write the run's report: charts with their numbers, in every format asked."""
    from panopticon.reports.html import render_html
    from panopticon.reports.markdown import render_csv, render_markdown
    from panopticon.services.reports import report_data

    wanted = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise ConfigError(
            Issue(
                f"unknown format {', '.join(unknown) or '(none)'}",
                field="--format",
                hint="use html, md, csv or json",
            )
        )
    if output_dir is not None:
        check_writable(output_dir, "--output-dir", overwrite=False)
    settings = load_settings()
    with store(settings) as engine:
        run = find_run(engine, settings.workspace, run_id)
        data = report_data(engine, run)
    folder = output_dir or Path("reports") / f"run-{run.id}"
    folder.mkdir(parents=True, exist_ok=True)
    writers = {
        "html": lambda: render_html(data).encode(),
        "md": lambda: render_markdown(data).encode(),
        "csv": lambda: render_csv(data).encode(),
        "json": lambda: orjson.dumps(data, option=orjson.OPT_INDENT_2),
    }
    for fmt in wanted:
        path = folder / f"run-{run.id}.{fmt}"
        path.write_bytes(writers[fmt]())
        console.print(f"wrote {path}", highlight=False)
