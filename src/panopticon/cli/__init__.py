"""The ``panopticon`` command. Each command group lives in its own module.

Command modules are imported only when their command runs (``LazyGroup``): importing every
command and its services took a second before anything happened, and ``panopticon
--version`` or ``panopticon run`` should not pay for the web app, the annotations service
or the worker. To add a command, name it in ``COMMANDS`` as ``"module:function"`` (or
``"module:app"`` for a group of subcommands).
"""

from __future__ import annotations

import gc
import importlib
from typing import Any

from panopticon.cli.gcpause import startup

with startup():  # see gcpause: about 0.1 s of every command's start-up
    import typer
    from typer.core import TyperGroup

    from panopticon import __version__

__all__ = ["COMMANDS", "app", "main"]

# command name -> "module:attribute" under panopticon.cli; in the order --help lists them
COMMANDS: dict[str, str] = {
    "run": "run:run",
    "runs": "runs:runs",
    "show": "runs:show",
    "export": "runs:export",
    "compare": "compare:compare",
    "report": "report:report",
    "annotate": "annotate:annotate",
    "calibration": "annotate:calibration",
    "demo": "demo:demo",
    "mock-server": "mock:mock_server",
    "serve": "serve:serve",
    "worker": "worker:worker",
    "view": "view:view",
    "db": "db:app",
    "keys": "keys:app",
    "credentials": "credentials:app",
    "online": "online:app",
    "cache": "cache:app",
    "gateway": "gateway:app",
}


def _load(name: str) -> Any:
    """The command ``name`` as Typer builds it (a group for ``db`` and ``keys``)."""
    module_name, attr = COMMANDS[name].split(":")
    with startup():
        module = importlib.import_module(f"panopticon.cli.{module_name}")
    target = getattr(module, attr)
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)
        # shell completion is the root's to offer (it offers none), not each group's
        completion = ("install_completion", "show_completion")
        command.params = [p for p in command.params if p.name not in completion]
    else:
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A Typer group whose commands are imported when they are looked up."""

    def list_commands(self, ctx: Any) -> list[str]:
        eager = [n for n in super().list_commands(ctx) if n not in COMMANDS]
        return [*COMMANDS, *eager]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in COMMANDS:
            if cmd_name not in self.commands:
                self.commands[cmd_name] = _load(cmd_name)
            return self.commands[cmd_name]
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    name="panopticon",
    cls=LazyGroup,
    help="Evaluate, compare and monitor LLMs. Start with: panopticon demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
