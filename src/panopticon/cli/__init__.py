"""The ``panopticon`` command. Each command group lives in its own module."""

from __future__ import annotations

import gc

from panopticon.cli.gcpause import startup

with startup():  # see gcpause: about 0.1 s of every command's start-up
    import typer

    from panopticon import __version__
    from panopticon.cli import (
        annotate,
        compare,
        db,
        demo,
        gateway,
        keys,
        mock,
        online,
        report,
        run,
        runs,
        serve,
        worker,
    )

__all__ = ["app", "main"]

app = typer.Typer(
    name="panopticon",
    help="Evaluate, compare and monitor LLMs. Start with: panopticon demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run")(run.run)
app.command("runs")(runs.runs)
app.command("show")(runs.show)
app.command("export")(runs.export)
app.command("compare")(compare.compare)
app.command("report")(report.report)
app.command("annotate")(annotate.annotate)
app.command("calibration")(annotate.calibration)
app.command("demo")(demo.demo)
app.command("mock-server")(mock.mock_server)
app.command("serve")(serve.serve)
app.command("worker")(worker.worker)
app.add_typer(db.app, name="db")
app.add_typer(keys.app, name="keys")
app.add_typer(gateway.app, name="gateway")
app.add_typer(online.app, name="online")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"panopticon {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Evaluate, compare and monitor LLMs."""


def main() -> None:
    try:
        app()
    finally:
        gc.freeze()  # everything was closed explicitly: skip the full collection at exit
