"""Console output shared by commands: the consoles, errors, output paths and money.

The run's summary tables are in :mod:`panopticon.cli.summary`: a run prints them when it
has finished, and should not import the statistics and table code before its first call.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from panopticon.errors import ConfigError, Issue, NotFoundError, PanopticonError

__all__ = [
    "EXIT",
    "check_writable",
    "console",
    "err_console",
    "handle_errors",
    "money",
]

# Piped or logged output has no screen to fit: Rich would fit it to 80 columns, cutting
# table cells to '…' (an interval's lower bound lost) and wrapping commands meant to be
# copied. There it is as wide as its content needs (up to PIPE_WIDTH); COLUMNS still rules.
PIPE_WIDTH = 1000


def _console(stderr: bool = False) -> Console:
    made = Console(stderr=stderr, highlight=False)
    # no terminal and no COLUMNS: shutil's size falls back to the (0, 0) given
    if not made.is_terminal and shutil.get_terminal_size((0, 0)).columns == 0:
        made = Console(stderr=stderr, highlight=False, width=PIPE_WIDTH)
    return made


console = _console()
err_console = _console(stderr=True)

# documented in README ("Exit codes"); a CI job tells a gate (3) from a regression (4)
EXIT = {"ok": 0, "failed": 1, "usage": 2, "gate": 3, "regression": 4, "interrupted": 130}

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Turn Panopticon's errors into a clear message and an exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            count = len(exc.issues)
            what = f"the input has {count} problems" if count > 1 else "invalid input"
            err_console.print(f"[bold red]error:[/] {what}")
            for issue in exc.issues:
                err_console.print(f"  {issue}", markup=False, soft_wrap=True)
            raise typer.Exit(EXIT["usage"]) from None
        except NotFoundError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT["usage"]) from None
        except PanopticonError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT["failed"]) from None

    return wrapper  # type: ignore[return-value]


def check_writable(path: Path, option: str, *, overwrite: bool = True) -> None:
    """Refuse, before any work, an output path whose folder is missing (or, with
    ``overwrite=False``, that is an existing file where a folder is wanted)."""
    if not overwrite:
        if path.exists() and not path.is_dir():
            raise ConfigError(
                Issue(
                    f"{path} is a file; {option} takes a folder",
                    field=option,
                    hint="give a folder (it is created if missing), or remove the file",
                )
            )
        return
    if path.is_dir():
        raise ConfigError(Issue(f"{path} is a folder; {option} takes a file name", field=option))
    if not path.parent.is_dir():
        raise ConfigError(
            Issue(
                f"the folder {path.parent} does not exist",
                field=option,
                hint=f"create it first (mkdir -p {path.parent}) or write elsewhere",
            )
        )


def money(value: float | None) -> str:
    from panopticon.providers.pricing import usd

    return "unknown" if value is None else usd(value)
