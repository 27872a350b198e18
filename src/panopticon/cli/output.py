"""Console output shared by commands: errors, summary tables, money and time formats."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from panopticon.errors import ConfigError, NotFoundError, PanopticonError
from panopticon.stats.summary import Summary

__all__ = ["EXIT", "console", "err_console", "handle_errors", "money", "print_summary"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

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


def money(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:.4f}" if value < 100 else f"${value:,.2f}"


def _num(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def print_summary(summary: Summary) -> None:
    answers = Table(title="Answers by model", title_justify="left")
    for col in (
        "model",
        "answers",
        "failed",
        "cached",
        "tok in",
        "tok out",
        "cost",
        "p50 ms",
        "p95 ms",
    ):
        answers.add_column(col, justify="left" if col == "model" else "right")
    for m in summary.models:
        answers.add_row(
            m.model,
            str(m.answers),
            str(m.failed) if m.failed else "0",
            str(m.cached),
            f"{m.input_tokens:,}",
            f"{m.output_tokens:,}",
            money(m.cost_usd),
            _num(m.latency_p50_ms, "{:.0f}"),
            _num(m.latency_p95_ms, "{:.0f}"),
        )
    console.print(answers)
    if not summary.metrics:
        return
    scores = Table(
        title="Scores by model and metric (mean with 95% CI; pass rate with Wilson 95% CI)",
        title_justify="left",
    )
    for col in (
        "model",
        "metric",
        "mean",
        "95% CI",
        "pass",
        "pass 95% CI",
        "n",
        "errors",
        "judge tok",
        "judge cost",
    ):
        scores.add_column(col, justify="left" if col in ("model", "metric") else "right")
    for s in summary.metrics:
        ci = "-" if s.mean_low is None else f"{s.mean_low:.2f} to {s.mean_high:.2f}"
        rate = "-" if s.pass_rate is None else f"{s.pass_rate:.0%}"
        rate_ci = "-" if s.pass_low is None else f"{s.pass_low:.0%} to {s.pass_high:.0%}"
        scores.add_row(
            s.model,
            s.metric,
            _num(s.mean),
            ci,
            rate,
            rate_ci,
            str(s.n),
            f"[red]{s.errors}[/]" if s.errors else "0",
            f"{s.judge_tokens:,}" if s.judge_tokens else "-",
            money(s.judge_cost_usd) if s.judge_tokens else "-",
        )
    console.print(scores)
