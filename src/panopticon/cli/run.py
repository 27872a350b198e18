"""``panopticon run``: evaluate a suite, with progress, Ctrl-C handling and a CI gate."""

from __future__ import annotations

import asyncio
import gc
import os
import shlex
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from panopticon import aio
from panopticon.cli.gcpause import startup
from panopticon.cli.output import EXIT, check_writable, console, err_console, handle_errors
from panopticon.cli.progress import RunProgress
from panopticon.errors import ConfigError, Issue
from panopticon.evaluation.suite import LoadedSuite
from panopticon.providers.pricing import cost_text
from panopticon.services.runs import Execution, prepare_run, run_selection, summarize_run
from panopticon.settings import Settings, load_settings

if TYPE_CHECKING:
    from panopticon.evaluation.suite import LoadedSuite

__all__ = ["run"]


async def _execute(execution: Execution, show_progress: bool, interval_s: float) -> str:
    loop = asyncio.get_running_loop()
    presses = 0

    def on_signal(signame: str) -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            execution.stop.request("interrupt", f"interrupted ({signame})")
            err_console.print(
                "\n[yellow]Stopping:[/] no new calls start; waiting for the calls "
                "in flight to finish and be saved. Press Ctrl-C again to "
                "abandon them."
            )
        elif execution.runner is not None:
            err_console.print(
                "[yellow]Abandoning the calls in flight[/] (each is recorded as "
                "interrupted; a resume sends it again)."
            )
            execution.runner.cancel()

    for sig, name in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
        loop.add_signal_handler(sig, on_signal, name)
    try:
        if not show_progress:
            return await execution.run(None)
        progress = RunProgress(execution, err_console, interval_s)
        async with progress.shown():
            return await execution.run(progress)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _check_gate(loaded: LoadedSuite) -> None:
    """--min-pass-rate needs a metric that passes or fails: refused before any paid call."""
    from panopticon.judges.base import gives_pass_fail

    if not any(gives_pass_fail(m) for m in loaded.metrics):
        raise ConfigError(
            Issue(
                "--min-pass-rate is given, but no metric of the suite passes or fails",
                field="--min-pass-rate",
                hint="give a metric a threshold (for example threshold: 7 on a 1-10 rubric)",
            )
        )


@handle_errors
def run(
    suite: Path = typer.Argument(..., help="The suite file (YAML).", show_default=False),
    resume: str | None = typer.Option(
        None, "--resume", help="Resume run ID (or 'last'): only what is not stored yet is sent."
    ),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Call providers again even for answers stored by earlier runs."
    ),
    min_pass_rate: float | None = typer.Option(
        None,
        "--min-pass-rate",
        min=0.0,
        max=1.0,
        help="Exit with code 3 when the pass rate over all metrics with a threshold is below this.",
    ),
    progress: bool = typer.Option(
        True,
        "--progress/--no-progress",
        help="Show progress: bars on a terminal, else a line every --progress-every seconds.",
    ),
    progress_every: float = typer.Option(
        10.0, "--progress-every", min=0.01, help="Seconds between progress lines in a log."
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Run only the first N queries (after --filter)."
    ),
    filters: list[str] = typer.Option(
        [],
        "--filter",
        help="Run only matching queries: theme=A[,B], id=ID[,ID] or text=REGEX (repeatable).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate, count calls and estimate cost; send nothing."
    ),
    threshold: list[str] = typer.Option(
        [],
        "--threshold",
        help="METRIC=VALUE: exit 3 when a model's pass rate (or mean 0..1) is below it.",
    ),
    baseline: str | None = typer.Option(
        None, "--baseline", help="Run id to compare with (see --fail-on-regression)."
    ),
    fail_on_regression: bool = typer.Option(
        False,
        "--fail-on-regression",
        help="Exit 4 when any metric is significantly worse than --baseline (paired test).",
    ),
    junit: Path | None = typer.Option(
        None, "--junit", help="Write JUnit XML: one test case per query and model."
    ),
) -> None:
    """Run a suite: every query against every model, scored by every metric."""
    from panopticon.cli import gates
    from panopticon.evaluation.selection import parse_filters, stored_selection
    from panopticon.services.gates import merge_thresholds, parse_thresholds

    selection = parse_filters(filters, limit)
    overrides = parse_thresholds(threshold)
    if fail_on_regression and baseline is None:
        raise ConfigError(
            Issue(
                "--fail-on-regression needs --baseline RUN",
                field="--fail-on-regression",
                hint="panopticon run suite.yaml --baseline 12 --fail-on-regression",
            )
        )
    if junit is not None:
        check_writable(junit, "--junit")  # before the run, not after it was paid for
    thresholds: dict[str, float] = {}
    baseline_models: list[str] | None = None  # the --baseline run's, once it is found

    def select(loaded: LoadedSuite) -> LoadedSuite:
        nonlocal thresholds
        loaded = selection.apply(loaded)
        thresholds = merge_thresholds(
            loaded.suite.gates, overrides, (m.name for m in loaded.metrics)
        )
        if baseline_id is not None and baseline_models is not None:
            from panopticon.services.compare import check_baseline

            arms = [m.id for m in loaded.arm_models() or loaded.models]  # model@prompt
            check_baseline(baseline_id, baseline_models, arms)
        return loaded

    baseline_id: int | None = None

    if dry_run:
        from panopticon.services.runs import load_for_dry_run

        loaded = load_for_dry_run(load_settings(), suite, env=os.environ, select=select)
        gates.print_dry_run(loaded, use_cache=not no_cache)
        return
    with startup():  # no GC passes while the suite loads (see gcpause)
        import aiohttp  # noqa: F401  (the providers' HTTP client: loaded here, under the pause)

        settings = load_settings()
        if resume is not None and selection.empty:
            started = run_selection(settings, resume)
            if started:  # the run's own queries: a resume never changes them
                selection = parse_filters(*stored_selection(started))
                console.print(
                    f"Run {resume} was started with {shlex.join(started)}: resuming with them",
                    highlight=False,
                )
        if baseline is not None:
            baseline_id, baseline_models = _baseline(settings, baseline)
        execution = prepare_run(
            settings,
            suite,
            env=os.environ,
            resume=resume,
            use_cache=not no_cache,
            check=None if min_pass_rate is None else _check_gate,
            select=select,
        )
        aio.loop_factory()  # imports uvloop, when installed, under the pause too
    loaded = execution.loaded
    for warning in loaded.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", markup=True)
    plan = execution.plan
    verb = "Resuming" if execution.resumed else "Starting"
    console.print(
        f"{verb} run [bold]{execution.run_id}[/] ({loaded.suite.name}): {len(plan.cases)} answers "
        f"= {len(loaded.queries)} queries x {len(loaded.models)} models x "
        + (f"{len(loaded.suite.prompts)} prompts x " if loaded.suite.prompts else "")
        + f"{loaded.suite.repeats} repeats, {len(loaded.metrics)} metrics"
        + (f"; {len(plan.done)} already stored" if plan.done else "")
        + (f"; {len(plan.cache)} from the cache" if plan.cache else "")
    )
    gc_thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)  # a run allocates fast and frees by refcount: fewer passes
    gate_code = EXIT["ok"]
    try:
        status = aio.run(_execute(execution, progress, progress_every))
        summary = summarize_run(execution.engine, execution.run_id)
        if junit is not None:
            gates.write_junit(execution.engine, execution.run_id, loaded.suite.name, junit)
        if status == "completed" and (thresholds or baseline_id is not None):
            gate_code = gates.report_gates(
                execution.engine,
                summary,
                execution.run_id,
                thresholds,
                baseline_id,
            )
    finally:
        gc.set_threshold(*gc_thresholds)
        execution.engine.dispose()
    from panopticon.cli.summary import print_summary

    print_summary(summary)
    totals = execution.run_totals
    assert totals is not None
    console.print(
        f"Spent {cost_text(totals.cost_usd, totals.unknown_cost)} on this run"
        + f"; {totals.answers} answers, {totals.failed} failed, "
        f"{totals.scores} scores, {totals.score_errors} score errors"
        + (
            f", {totals.pairs} pairwise judgements, {totals.pair_errors} failed."
            if totals.pairs or totals.pair_errors
            else "."
        )
    )
    resume_cmd = f"panopticon run {shlex.quote(str(suite))} --resume {execution.run_id}"
    if status != "completed":
        err_console.print(
            f"[bold red]run {execution.run_id} {status}:[/] {execution.stop_reason}",
            highlight=False,
            soft_wrap=True,
        )
        # scores never asked for (the run stopped first) are not failures: the resume makes
        # them, so they are said apart
        undone = max(0, execution.scores_planned() - totals.scores - totals.score_errors)
        if totals.missing or totals.failed or undone or totals.score_errors or totals.pair_errors:
            err_console.print(
                f"{totals.missing} answers not yet run, {totals.failed} failed, "
                f"{undone} scores not yet made, "
                f"{totals.score_errors + totals.pair_errors} judgements failed. "
                f"To continue: [bold]{resume_cmd}[/]",
                highlight=False,
                soft_wrap=True,
            )
        raise typer.Exit(EXIT["interrupted"] if status == "interrupted" else EXIT["failed"])
    if totals.score_errors or totals.pair_errors:
        err_console.print(
            f"{totals.score_errors + totals.pair_errors} judgements failed (panopticon show "
            f"{execution.run_id} --errors lists them). To retry them: [bold]{resume_cmd}[/]",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"[green]run {execution.run_id} completed.[/] Details: panopticon show "
        f"{execution.run_id}; export: panopticon export {execution.run_id} "
        "--format csv"
    )
    if min_pass_rate is not None:
        rate = summary.gate_pass_rate()
        if rate is None:
            err_console.print("[red]--min-pass-rate given, but no metric has a threshold[/]")
            raise typer.Exit(EXIT["usage"])
        if rate < min_pass_rate:
            err_console.print(f"[bold red]pass rate {rate:.1%} is below {min_pass_rate:.1%}[/]")
            raise typer.Exit(EXIT["gate"])
        console.print(f"pass rate {rate:.1%} >= {min_pass_rate:.1%}")
    if gate_code == EXIT["regression"] and not fail_on_regression:
        gate_code = EXIT["ok"]  # --baseline alone reports regressions without failing
    if gate_code != EXIT["ok"]:
        raise typer.Exit(gate_code)


def _baseline(settings: Settings, ref: str) -> tuple[int, list[str]]:
    """The baseline run's id and models, checked before anything is paid for."""
    from panopticon.services.compare import run_models
    from panopticon.services.database import workspace_id
    from panopticon.services.runs import get_run, store

    with store(settings) as engine:
        run_id = get_run(engine, workspace_id(engine, settings.workspace), ref).id
        return run_id, run_models(engine, run_id)
