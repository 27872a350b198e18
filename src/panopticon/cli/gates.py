"""What ``panopticon run`` adds for CI: query selection, ``--dry-run``, per-metric gates,
``--baseline ... --fail-on-regression`` and ``--junit``. Kept out of run.py, which is about
executing a run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from panopticon.cli.output import EXIT, console, err_console, money

if TYPE_CHECKING:
    from panopticon.evaluation.suite import LoadedSuite
    from panopticon.services.database import Engine
    from panopticon.services.gates import GateResult
    from panopticon.stats.summary import Summary

__all__ = ["print_dry_run", "report_gates", "write_junit"]


def print_dry_run(loaded: LoadedSuite, *, use_cache: bool) -> None:
    """What the run would send and cost; sends nothing and writes nothing."""
    from panopticon.services.dryrun import DEFAULT_ANSWER_TOKENS, dry_run, stored_answer_keys
    from panopticon.settings import load_settings

    stored = stored_answer_keys(load_settings(), loaded) if use_cache else None
    plan = dry_run(loaded, stored or frozenset())
    console.print(
        f"Dry run of {loaded.suite.name}: the suite is valid. {plan.answers} answers = "
        f"{plan.queries} queries x {plan.models} models x {plan.prompts} prompts x "
        f"{plan.repeats} repeats"
        + (f", of which {plan.reused} are stored already and reused unpaid" if plan.reused else "")
        + f"; {plan.calls} calls in all, {plan.judge_calls} of them to judges. Nothing "
        "was sent.",
        soft_wrap=True,
    )
    from panopticon.cli.tables import Column, show_rows

    show_rows(
        console,
        [
            "model",
            "role",
            Column("calls", right=True),
            Column("est. tok in", lambda v: f"{v:,}", right=True),
            Column("est. tok out", lambda v: f"{v:,}", right=True),
            Column("est. cost", money, right=True),
        ],
        [
            [r.model, r.role, r.calls, r.input_tokens, r.output_tokens, r.cost_usd]
            for r in plan.rows
        ],
        title="Estimated calls and cost (before retries and cache hits)",
    )
    total = plan.cost_usd
    unknown = sorted({r.model for r in plan.rows if r.cost_usd is None})
    console.print(
        "Estimated cost: "
        + (
            money(total)
            if total is not None
            else f"unknown ({money(plan.known_cost_usd)} for the models with a price; no "
            f"price for {', '.join(unknown)}: add price: {{input: .., output: ..}})"
        )
        + f". Tokens are estimates: 4 characters a token, an answer of max_tokens (else "
        f"{DEFAULT_ANSWER_TOKENS}).",
        soft_wrap=True,
    )


def gate_text(g: GateResult) -> str:
    """A gate's value with its interval and what the interval says of the verdict."""
    if g.value is None:
        return f"no valid score (gate {g.threshold:.1%})"
    if g.low is None or g.high is None:
        interval = f"{g.queries} quer{'y' if g.queries == 1 else 'ies'}: too few for an interval"
    else:
        interval = f"95% CI {g.low:.1%} to {g.high:.1%}, {g.queries} queries"
    text = f"{g.value:.1%} ({interval}; gate {g.threshold:.1%})"
    if not g.settled:
        text += " - not settled: the interval reaches the gate, more queries would tell"
    return text


def report_gates(
    engine: Engine,
    summary: Summary,
    run_id: int,
    thresholds: dict[str, float],
    baseline_id: int | None,
) -> int:
    """Print each gate's outcome; returns the exit code (0, gate 3, regression 4)."""
    from panopticon.services.gates import check_thresholds, find_regressions

    code = EXIT["ok"]
    for g in check_thresholds(summary, thresholds):
        line = f"{g.metric} {g.measure} on {g.model}: {gate_text(g)}"
        if g.passed:
            console.print(f"[green]gate passed:[/] {line}", soft_wrap=True)
        else:
            err_console.print(f"[bold red]gate failed:[/] {line}", soft_wrap=True)
            code = EXIT["gate"]
    if baseline_id is not None:
        found = find_regressions(engine, baseline_id, run_id)
        for reg in found:
            c, r = reg.comparison, reg.result
            err_console.print(
                f"[bold red]regression:[/] {r.metric}: {c.label_b} is worse than {c.label_a} "
                f"({r.diff:+.3f} on 0..1, 95% CI {r.ci_low:+.3f} to {r.ci_high:+.3f}, "
                f"p (Holm) {r.p_adjusted:.3g})",
                highlight=False,
                soft_wrap=True,
            )
        if found and code == EXIT["ok"]:
            code = EXIT["regression"]
        if not found:
            console.print(f"no metric is significantly worse than baseline run {baseline_id}")
    return code


def write_junit(engine: Engine, run_id: int, name: str, path: Path) -> None:
    from panopticon.errors import ConfigError, Issue
    from panopticon.reports.junit import render_junit
    from panopticon.services.runs import summary_rows

    if not path.parent.is_dir():
        raise ConfigError(
            Issue(
                f"cannot write {path}: the folder {path.parent} does not exist",
                field="--junit",
                hint=f"create it first (mkdir -p {path.parent})",
            )
        )
    path.write_bytes(render_junit({"id": run_id, "name": name}, summary_rows(engine, run_id)))
    console.print(f"wrote JUnit XML to {path}", highlight=False)
