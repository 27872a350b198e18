"""Backfill: an online rule run over past traces of a time range, as a resumable job with its
own budget.

The job walks the range's spans in (start, trace, span) order, a page at a time, and records
the rule's outcome for each in the ledger (filter and sampling as for live traffic), tagged
with the job; the same judging workers judge them, charging the job's budget as well as the
rule's and the workspace's. The walk's position is saved with each page, so a job whose
worker stopped goes on where it was. A span the rule's version has an outcome for already is
not judged again; an answer judged before with the same metrics is deduplicated (no call),
unless the backfill asks to judge again (``rejudge``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from panopticon.errors import ConfigError, Issue
from panopticon.online.rules import RuleSpec
from panopticon.services.moments import parse_time
from panopticon.services.online import OnlineRules
from panopticon.services.online_eval import candidate_of, ledger_entry
from panopticon.services.tasks import TASKS, TaskContext
from panopticon.store.engine import Engine
from panopticon.store.queries import jobs as jobs_q
from panopticon.store.queries import ledger as q
from panopticon.store.queries import online as rules_q
from panopticon.store.tables.base import utcnow

__all__ = [
    "KIND",
    "BackfillProgress",
    "backfill_here",
    "backfill_payload",
    "backfill_progress",
    "run_backfill",
]

log = logging.getLogger(__name__)

KIND = "online_backfill"
PAGE = 500
MAX_RANGE = timedelta(days=400)


@dataclass(frozen=True)
class BackfillProgress:
    selected: int  # spans the rule chose to judge
    done: int  # of which finished (any final outcome)
    evaluated: int
    failed: int  # failed or over budget
    looked_at: int  # every span of the range the walk has passed
    cost_usd: float
    finished_walk: bool


def backfill_payload(
    engine: Engine,
    workspace_id: int,
    rule: str,
    since: Any,
    until: Any,
    budget_usd: float,
    *,
    rejudge: bool = False,
) -> dict[str, Any]:
    """A validated backfill job's payload (submit it as a job of kind ``online_backfill``)."""
    OnlineRules(engine, workspace_id).get(rule)  # a clear 404 naming the rules there are
    start, end = parse_time(since, "since"), parse_time(until, "until")
    issues = []
    if start >= end:
        issues.append(Issue("'since' must be before 'until'", field="since"))
    if end - start > MAX_RANGE:
        issues.append(Issue(f"the range is longer than {MAX_RANGE.days} days", field="until"))
    if not (budget_usd > 0 and budget_usd < float("inf")):
        issues.append(
            Issue(
                "a backfill needs a budget: a positive number of dollars",
                field="budget_usd",
                hint="estimate it from the rule's sampling rate and the judge's price",
            )
        )
    if issues:
        raise ConfigError(issues)
    return {
        "rule": rule,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "budget_usd": float(budget_usd),
        "rejudge": bool(rejudge),
        "cursor": None,
        "looked_at": 0,
    }


async def backfill_here(
    ctx: TaskContext, job_id: int, *, on_progress: Any = None, poll_s: float = 0.5
) -> str:
    """Run a backfill in this process with its own judging (the CLI on a laptop): the walk
    and a judging loop side by side until every selected span has its outcome."""
    from panopticon.services.online_eval import OnlineEvaluator

    evaluator = OnlineEvaluator(ctx.engine, ctx.settings, ctx.env)
    walking = asyncio.create_task(run_backfill(ctx, job_id, poll_s=poll_s))
    try:
        while not walking.done():
            await evaluator.drain(seconds=poll_s)
            if on_progress is not None:
                on_progress(await asyncio.to_thread(backfill_progress, ctx.engine, job_id))
            await asyncio.wait({walking}, timeout=poll_s)
        return walking.result()
    finally:
        walking.cancel()
        await evaluator.aclose()


def backfill_progress(engine: Engine, job_id: int) -> BackfillProgress:
    with engine.connect() as conn:
        job = jobs_q.find_job(conn, job_id)
        counts = q.job_counts(conn, job_id)
    payload = job.payload if job is not None else {}
    return BackfillProgress(
        selected=counts.selected,
        done=counts.done,
        evaluated=counts.evaluated,
        failed=counts.failed,
        looked_at=int(payload.get("looked_at") or 0),
        cost_usd=counts.cost_usd,
        finished_walk=bool(payload.get("walked")),
    )


def _walk_page(engine: Engine, job_id: int) -> bool:
    """Record the outcomes of the next page of spans; False when the range is done."""
    with engine.begin() as conn:
        job = jobs_q.find_job(conn, job_id)
        if job is None:
            return False
        p = dict(job.payload)
        if p.get("walked"):
            return False
        rule_row = rules_q.get_rule(conn, job.workspace_id, str(p["rule"]))
        if rule_row is None:
            raise ConfigError(Issue(f"the rule '{p['rule']}' was deleted", field="rule"))
        spec = RuleSpec.model_validate(rule_row.spec)
        cursor = p.get("cursor")
        after = (datetime.fromisoformat(cursor[0]), cursor[1], cursor[2]) if cursor else None
        page = q.spans_between(
            conn,
            job.workspace_id,
            parse_time(p["since"], "since"),
            parse_time(p["until"], "until"),
            after,
            PAGE,
        )
        # a past hour's minimum counts what that hour selected: a backfill keeps its own
        hour_counts: dict[tuple[int, str], int] = {}
        rows = []
        for f in page:
            entry = ledger_entry(
                spec, rule_row.id, rule_row.version, f, candidate_of(f), hour_counts
            )
            entry["reason"] += f" (backfill {job_id})"
            entry["priority"] -= 1  # live traffic first
            entry["job_id"] = job_id
            rows.append(entry)
        q.insert_outcomes(conn, rows, rejudge=bool(p.get("rejudge")))
        p["looked_at"] = int(p.get("looked_at") or 0) + len(page)
        if page:
            last = page[-1]
            p["cursor"] = [last.start_time.isoformat(), last.trace_id, last.span_id]
        if len(page) < PAGE:
            p["walked"] = True
        jobs_q.update_job(conn, job_id, payload=p)
        return len(page) == PAGE


def _start(engine: Engine, job_id: int) -> str | None:
    with engine.begin() as conn:
        job = jobs_q.find_job(conn, job_id)
        if job is None:
            return None
        if job.status == "queued":
            jobs_q.claim_job(conn, job_id)
        return job.status


def _finish(engine: Engine, job_id: int, status: str, error: str | None = None) -> None:
    with engine.begin() as conn:
        jobs_q.update_job(conn, job_id, status=status, error=error, finished_at=utcnow())


def _waiting(engine: Engine, job_id: int) -> int:
    with engine.connect() as conn:
        c = q.job_counts(conn, job_id)
    return c.selected - c.done


async def run_backfill(ctx: TaskContext, job_id: int, *, poll_s: float = 1.0) -> str:
    """Walk the range, then wait until the judging workers have given every selected span
    an outcome; the job's status says how it ended."""
    db = asyncio.to_thread
    status = await db(_start, ctx.engine, job_id)
    if status is None or status in ("completed", "failed"):
        return status or "missing"
    try:
        while await db(_walk_page, ctx.engine, job_id):
            if ctx.defer is not None:
                await ctx.defer("online_evaluate", slot=0)
        while await db(_waiting, ctx.engine, job_id):
            if ctx.defer is not None:
                for slot in range(ctx.settings.online_workers):
                    await ctx.defer("online_evaluate", slot=slot)
            await asyncio.sleep(poll_s)
    except asyncio.CancelledError:
        raise  # taken up again at the next start: the walk resumes at its cursor
    except Exception as exc:
        log.warning("backfill %s failed: %s", job_id, exc)
        await db(_finish, ctx.engine, job_id, "failed", str(exc)[:500])
        return "failed"
    await db(_finish, ctx.engine, job_id, "completed")
    return "completed"


@TASKS.task(KIND, lock=lambda kwargs: f"job:{kwargs.get('job_id')}")
async def online_backfill(ctx: TaskContext, job_id: int) -> str:
    return await run_backfill(ctx, job_id)
