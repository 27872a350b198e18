"""Console output shared by commands: errors, summary tables, money and time formats."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from panopticon.cli.tables import Column, Grid, emit, resolve_format
from panopticon.errors import ConfigError, Issue, NotFoundError, PanopticonError
from panopticon.stats.summary import Summary

__all__ = [
    "EXIT",
    "check_writable",
    "console",
    "err_console",
    "handle_errors",
    "money",
    "print_summary",
    "summary_grids",
]

# Piped or logged output has no screen to fit: Rich would fit it to 80 columns, cutting
# table cells to '…' (an interval's lower bound lost) and wrapping commands meant to be
# copied. There it is as wide as its content needs (up to PIPE_WIDTH); COLUMNS still rules.
PIPE_WIDTH = 1000


def _console(stderr: bool = False) -> Console:
    made = Console(stderr=stderr, highlight=False)
    if not made.is_terminal and not os.environ.get("COLUMNS"):
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
    if value is None:
        return "unknown"
    return f"${value:.4f}" if value < 100 else f"${value:,.2f}"


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
