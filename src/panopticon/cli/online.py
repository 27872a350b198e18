"""``panopticon online``: online-evaluation rules from YAML files, their budgets, and the
production scores by model and metric (``scores``, ``heatmap``: see cli/production.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from panopticon.cli.output import console, handle_errors
from panopticon.cli.production import heatmap_cmd, scores_cmd
from panopticon.cli.tables import FORMAT_HELP, check_format, show_rows
from panopticon.settings import load_settings

if TYPE_CHECKING:
    from panopticon.services.database import Engine

app = typer.Typer(
    help="Online evaluation: rules that judge production traffic, their budgets, and the "
    "production scores (online, guardrail, human, api) by model and metric.",
    no_args_is_help=True,
)
app.command("scores")(scores_cmd)
app.command("heatmap")(heatmap_cmd)


def _workspace_id(engine: Engine) -> int:
    from panopticon.services.database import workspace_id

    return workspace_id(engine, load_settings().workspace)


@app.command("apply")
@handle_errors
def apply_cmd(
    files: list[Path] = typer.Argument(..., help="Rule files (YAML)."),
    check: bool = typer.Option(False, "--check", help="Validate only; store nothing."),
) -> None:
    """Create rules, or give them new versions (a file that changes nothing is no new
    version)."""
    from panopticon.errors import ConfigError
    from panopticon.online.rules import rule_version
    from panopticon.services.online import OnlineRules, load_rule_file
    from panopticon.services.runs import store

    problems: list[ConfigError] = []
    loaded = []
    for path in files:
        try:
            loaded.append(load_rule_file(path))
        except ConfigError as err:
            problems.append(err)
    if problems:
        raise ConfigError([i for p in problems for i in p.issues])
    with store(load_settings()) as engine:
        rules = OnlineRules(engine, _workspace_id(engine))
        for data, doc in loaded:
            if check:
                spec = rules.validate(data, doc=doc)
                console.print(
                    f"{doc.file}: rule '{spec.name}' is valid (version {rule_version(spec)})",
                    highlight=False,
                )
                continue
            applied = rules.apply(data, doc=doc)
            rule = applied.rule
            what = "saved as version" if applied.changed else "unchanged, version"
            state = "" if rule.enabled else " (disabled)"
            console.print(f"rule '{rule.name}' {what} {rule.version}{state}", highlight=False)


@app.command("list")
@handle_errors
def list_cmd(
    fmt: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
) -> None:
    """The workspace's rules: sampling, budgets, version."""
    from panopticon.services.online import OnlineRules
    from panopticon.services.runs import store

    check_format(fmt)
    with store(load_settings()) as engine:
        rules = OnlineRules(engine, _workspace_id(engine)).list()
    if not rules and fmt not in ("json", "csv"):
        console.print("no online rules yet: write one (see README) and `panopticon online apply`")
        return
    show_rows(
        console,
        ["rule", "state", "metrics", "judge", "sample", "per day", "per month", "version"],
        [
            [
                r.name,
                "on" if r.enabled else "off",
                ", ".join(str(m.get("name")) for m in r.spec.metrics),
                r.spec.judge or "-",
                f"{r.spec.sampling.rate:.0%}",
                f"${r.spec.budgets.usd_per_day:g}" if r.spec.budgets.usd_per_day else "-",
                f"${r.spec.budgets.usd_per_month:g}" if r.spec.budgets.usd_per_month else "-",
                r.version,
            ]
            for r in rules
        ],
        fmt,
        key="rules",
    )


@app.command("show")
@handle_errors
def show_cmd(name: str = typer.Argument(..., help="The rule's name.")) -> None:
    """A rule as stored, as YAML, and its versions."""
    import yaml

    from panopticon.services.online import OnlineRules
    from panopticon.services.runs import store

    with store(load_settings()) as engine:
        rule = OnlineRules(engine, _workspace_id(engine)).get(name)
    console.print(
        yaml.safe_dump(rule.spec.model_dump(mode="json"), sort_keys=False),
        highlight=False,
        markup=False,
    )
    for version, at in rule.versions:
        mark = " (in force)" if version == rule.version else ""
        console.print(f"version {version}  {at:%Y-%m-%d %H:%M:%S}{mark}", highlight=False)


def _toggle(name: str, enabled: bool) -> None:
    from panopticon.services.online import OnlineRules
    from panopticon.services.runs import store

    with store(load_settings()) as engine:
        rule = OnlineRules(engine, _workspace_id(engine)).set_enabled(name, enabled)
    console.print(
        f"rule '{rule.name}' {'enabled' if enabled else 'disabled'} (version {rule.version})",
        highlight=False,
    )


@app.command("enable")
@handle_errors
def enable_cmd(name: str = typer.Argument(...)) -> None:
    """Resume a rule."""
    _toggle(name, True)


@app.command("disable")
@handle_errors
def disable_cmd(name: str = typer.Argument(...)) -> None:
    """Pause a rule: no new span is judged by it until it is enabled."""
    _toggle(name, False)


@app.command("delete")
@handle_errors
def delete_cmd(name: str = typer.Argument(...)) -> None:
    """Delete a rule with its versions and ledger."""
    from panopticon.services.online import OnlineRules
    from panopticon.services.runs import store

    with store(load_settings()) as engine:
        OnlineRules(engine, _workspace_id(engine)).delete(name)
    console.print(f"rule '{name}' deleted", highlight=False)


@app.command("budget")
@handle_errors
def budget_cmd(
    per_day: float | None = typer.Option(
        None, "--per-day", help="USD per day, all rules together."
    ),
    per_month: float | None = typer.Option(None, "--per-month", help="USD per month."),
    clear: bool = typer.Option(False, "--clear", help="Remove the workspace's limits."),
) -> None:
    """Show or set the workspace's online-evaluation budget, and what each window spent."""
    from panopticon.services.online import OnlineBudgets
    from panopticon.services.runs import store

    with store(load_settings()) as engine:
        budgets = OnlineBudgets(engine, _workspace_id(engine))
        if clear or per_day is not None or per_month is not None:
            day, month = (None, None) if clear else budgets.workspace_limits()
            budgets.set_workspace_limits(
                per_day if per_day is not None else day,
                per_month if per_month is not None else month,
            )
        day, month = budgets.workspace_limits()
        windows = budgets.state()
    console.print(
        f"workspace limits: {f'${day:g}/day' if day else 'no daily limit'}, "
        f"{f'${month:g}/month' if month else 'no monthly limit'}",
        highlight=False,
    )
    for w in windows:
        console.print(
            f"{w.scope} {w.period} from {w.period_start:%Y-%m-%d}: spent ${w.spent_usd:.4f} "
            f"+ held ${w.reserved_usd:.4f} of ${w.limit_usd:g}",
            highlight=False,
        )


@app.command("why")
@handle_errors
def why_cmd(trace_id: str = typer.Argument(..., help="A trace's id (32 hex digits).")) -> None:
    """Why a trace was, or was not, evaluated: each rule's outcome on each of its spans."""
    from panopticon.services.ledger import OnlineLedger
    from panopticon.services.runs import store

    with store(load_settings()) as engine:
        found = OnlineLedger(engine, _workspace_id(engine)).for_trace(trace_id)
    console.print(f"trace {trace_id}: {found.summary}", highlight=False)
    for e in found.entries:
        cost = f", ${e.cost_usd:.5f}" if e.cost_usd is not None else ""
        console.print(
            f"  {e.rule} (version {e.rule_version}) on span {e.span_id}: "
            f"{e.outcome.replace('_', ' ')}{cost} — {e.reason or ''}",
            highlight=False,
            markup=False,
        )


@app.command("activity")
@handle_errors
def activity_cmd(
    rule: str | None = typer.Option(None, "--rule", help="One rule only."),
    hours: int = typer.Option(24, "--hours", min=1, max=24 * 90, help="How far back."),
) -> None:
    """Outcomes per rule per hour, newest first, with what the judging cost."""
    from panopticon.services.ledger import OnlineLedger
    from panopticon.services.runs import store

    with store(load_settings()) as engine:
        rows = OnlineLedger(engine, _workspace_id(engine)).hourly(rule, hours)
    if not rows:
        console.print(f"no outcomes in the last {hours} hours", highlight=False)
    for r in rows:
        console.print(
            f"{r.hour:%Y-%m-%d %H:00}  {r.rule}  {r.outcome.replace('_', ' ')}: {r.count}"
            + (f"  ${r.cost_usd:.4f}" if r.cost_usd else ""),
            highlight=False,
        )


@app.command("backfill")
@handle_errors
def backfill_cmd(
    rule: str = typer.Argument(..., help="The rule to run over past traces."),
    since: str = typer.Option(
        ..., "--since", help="From this time (ISO 8601, e.g. 2026-11-26 or 2026-11-26T08:00Z)."
    ),
    until: str | None = typer.Option(None, "--until", help="To this time (default: now)."),
    budget: float = typer.Option(..., "--budget", help="The backfill's own budget, in USD."),
    rejudge: bool = typer.Option(
        False, "--rejudge", help="Judge again what this rule version has judged already."
    ),
) -> None:
    """Run a rule over the traces of a time range, here and now, within its own budget (the
    API's POST /api/online/backfills queues the same job for the server's workers)."""
    import asyncio
    from datetime import UTC, datetime

    from panopticon.services.backfill import KIND, backfill_here, backfill_payload
    from panopticon.services.jobs import job_status, record_job
    from panopticon.services.runs import store
    from panopticon.services.tasks import TaskContext

    settings = load_settings()
    with store(settings) as engine:
        ws = _workspace_id(engine)
        payload = backfill_payload(
            engine, ws, rule, since, until or datetime.now(UTC), budget, rejudge=rejudge
        )
        job_id = record_job(engine, ws, KIND, payload)
        console.print(f"backfill job {job_id}: rule '{rule}' over {since} .. {until or 'now'}")
        last: list[str] = []

        def show(p: Any) -> None:
            line = (
                f"  looked at {p.looked_at} spans; {p.done}/{p.selected} selected done "
                f"({p.evaluated} judged, {p.failed} failed or over budget); ${p.cost_usd:.4f}"
            )
            if not last or last[-1] != line:
                last.append(line)
                console.print(line, highlight=False)

        import os

        ctx = TaskContext(engine, settings, dict(os.environ), None)
        status = asyncio.run(backfill_here(ctx, job_id, on_progress=show))
        job = job_status(engine, ws, job_id)
    console.print(
        f"backfill {status}: {job.done} of {job.total} selected spans have their outcome, "
        f"{job.failed} failed or over budget, ${job.cost_usd or 0:.4f} spent",
        highlight=False,
    )
    if status != "completed":
        raise typer.Exit(1)
