"""What online evaluation did: for a trace, every rule's outcome on each of its spans and why
(the answer to "why was this trace not evaluated?"); for a workspace, outcomes per rule per
hour (what the dashboard charts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from panopticon.errors import NotFoundError
from panopticon.store.engine import Engine
from panopticon.store.queries import ledger as q
from panopticon.store.queries import online as rules_q
from panopticon.store.tables.base import utcnow

__all__ = ["HourlyOutcome", "LedgerEntry", "OnlineLedger", "TraceEvaluation"]


@dataclass(frozen=True)
class LedgerEntry:
    rule: str
    rule_version: str
    span_id: str
    outcome: str
    reason: str | None
    error: str | None
    cost_usd: float | None
    attempts: int
    backfill_job: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TraceEvaluation:
    trace_id: str
    entries: list[LedgerEntry]
    summary: str  # one sentence: what happened to this trace, or why nothing did


@dataclass(frozen=True)
class HourlyOutcome:
    rule: str
    hour: datetime
    outcome: str
    count: int
    cost_usd: float


class OnlineLedger:
    def __init__(self, engine: Engine, workspace_id: int) -> None:
        self.engine = engine
        self.ws = workspace_id

    def for_trace(self, trace_id: str) -> TraceEvaluation:
        with self.engine.connect() as conn:
            rows = q.outcomes_of_trace(conn, self.ws, trace_id)
            if not rows and not q.trace_exists(conn, self.ws, trace_id):
                raise NotFoundError(
                    f"no trace {trace_id} in this workspace (its spans may still be on their "
                    "way: they are stored within a second of being sent)"
                )
            rules = rules_q.list_rules(conn, self.ws) if not rows else []
        entries = [
            LedgerEntry(
                r.rule,
                r.rule_version,
                r.span_id,
                r.outcome,
                r.reason,
                r.error,
                r.cost_usd,
                r.attempts,
                r.job_id,
                r.created_at,
                r.updated_at,
            )
            for r in rows
        ]
        enabled = [r.name for r in rules if r.enabled]
        paused = [r.name for r in rules if not r.enabled]
        return TraceEvaluation(trace_id, entries, _summary(entries, enabled, paused))

    def hourly(self, rule: str | None = None, hours: int = 24) -> list[HourlyOutcome]:
        since = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
        with self.engine.connect() as conn:
            rule_id = None
            if rule is not None:
                found = rules_q.get_rule(conn, self.ws, rule)
                if found is None:
                    return []
                rule_id = found.id
            return [HourlyOutcome(*r) for r in q.hourly_outcomes(conn, self.ws, rule_id, since)]


def _summary(entries: list[LedgerEntry], enabled: list[str], paused: list[str]) -> str:
    if not entries:
        if not enabled:
            fix = (
                f"the rules here are paused ({', '.join(paused)}): resume one, or backfill"
                if paused
                else "apply one with `panopticon online apply RULE.yaml`"
            )
            return f"no rule looked at this trace: no online rule is enabled ({fix})"
        return (
            "no rule has recorded an outcome for this trace: it was stored before the rules "
            f"({', '.join(enabled)}) were enabled, or it is still waiting to be selected (within "
            "seconds); a backfill judges past traces"
        )
    judged = [e for e in entries if e.outcome in ("evaluated", "deduplicated")]
    if judged:
        rules = sorted({e.rule for e in judged})
        return f"evaluated by {', '.join(rules)}"
    waiting = [e for e in entries if e.outcome in ("pending", "running", "rate_limited")]
    if waiting:
        return f"waiting to be judged ({waiting[0].outcome}): {waiting[0].reason}"
    first = next(
        (e for e in entries if e.outcome in ("over_budget", "failed", "superseded")), entries[0]
    )
    return f"not evaluated: {first.outcome.replace('_', ' ')}: {first.reason}"
