"""The online-evaluation ledger as a work queue: new spans taken from the inbox, one outcome
per (rule version, span), waiting entries claimed by workers, and the scores they write.

Claims are safe across processes: on PostgreSQL ``FOR UPDATE SKIP LOCKED`` hands each
waiting entry to one worker; everywhere the claiming UPDATE re-checks that the entry is
still waiting, so an entry two workers both saw is taken by one of them only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.store.tables import (
    Job,
    Metric,
    OnlineInbox,
    OnlineOutcome,
    OnlineRule,
    OnlineRuleVersion,
    Score,
    Span,
    Trace,
)
from panopticon.store.tables.base import utcnow

__all__ = [
    "WAITING",
    "Claimed",
    "Finish",
    "InboxSpan",
    "JobCounts",
    "OutcomeRow",
    "RuleState",
    "SpanFacts",
    "add_cost",
    "backfill_terms",
    "claim",
    "due_count",
    "enabled_rules",
    "expire_leases",
    "find_judged",
    "find_judged_many",
    "finish",
    "finish_many",
    "hourly_outcomes",
    "insert_outcomes",
    "job_counts",
    "online_scores",
    "online_scores_many",
    "outcomes_of_trace",
    "rule_states",
    "save_scores",
    "segment_counts",
    "span_facts",
    "spans_between",
    "take_inbox",
    "trace_exists",
    "waiting_count",
]

WAITING = ("pending", "rate_limited")
SELECTED = ("pending", "rate_limited", "running", "evaluated", "deduplicated", "failed")


@dataclass(frozen=True)
class InboxSpan:
    workspace_id: int
    trace_id: str
    span_id: str
    start_time: datetime


@dataclass(frozen=True)
class SpanFacts:
    """What online rules read of a span and its trace."""

    workspace_id: int
    trace_id: str
    span_id: str
    start_time: datetime
    kind: str
    status: str
    model: str | None
    input_messages: Any
    output_messages: Any
    input_value: str | None
    output_value: str | None
    documents: Any
    attributes: dict[str, Any]
    latency_ms: float | None
    cost_usd: float | None
    input_tokens: int | None
    output_tokens: int | None
    tags: list[str]
    metadata: dict[str, Any]
    user_id: str | None
    environment: str | None


@dataclass(frozen=True)
class Claimed:
    id: int
    workspace_id: int
    rule_id: int
    rule_version: str
    trace_id: str
    span_id: str
    attempts: int
    job_id: int | None
    was: str  # pending or rate_limited (a rate-limited entry already holds its slot)
    created_at: datetime | None = None  # when the entry was selected


@dataclass(frozen=True)
class RuleState:
    id: int
    workspace_id: int
    name: str
    enabled: bool
    version: str  # the version in force
    specs: dict[str, dict[str, Any]]  # version -> spec, for the versions asked about


@dataclass(frozen=True)
class OutcomeRow:
    rule: str
    rule_version: str
    trace_id: str
    span_id: str
    outcome: str
    reason: str | None
    error: str | None
    cost_usd: float | None
    attempts: int
    job_id: int | None
    created_at: datetime
    updated_at: datetime


# --- the inbox ------------------------------------------------------------------------------


def take_inbox(conn: Connection, limit: int) -> list[InboxSpan]:
    """Remove and return up to ``limit`` of the oldest inbox entries (in the caller's
    transaction: they come back if it rolls back)."""
    picked = sa.select(OnlineInbox.c.id).order_by(OnlineInbox.c.id).limit(limit)
    cols = (
        OnlineInbox.c.workspace_id,
        OnlineInbox.c.trace_id,
        OnlineInbox.c.span_id,
        OnlineInbox.c.start_time,
    )
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            sa.delete(OnlineInbox)
            .where(OnlineInbox.c.id.in_(picked.with_for_update(skip_locked=True).scalar_subquery()))
            .returning(*cols)
        ).all()
    else:
        ids = list(conn.execute(picked).scalars())
        if not ids:
            return []
        rows = conn.execute(
            sa.delete(OnlineInbox).where(OnlineInbox.c.id.in_(ids)).returning(*cols)
        ).all()
    return [InboxSpan(*r) for r in rows]


def span_facts(conn: Connection, keys: Iterable[tuple[int, str, str]]) -> list[SpanFacts]:
    """The spans (workspace, trace, span) with their traces' tags, metadata, user and
    environment. Spans no longer stored (retention) are left out."""
    wanted = sorted(set(keys))
    if not wanted:
        return []
    out: list[SpanFacts] = []
    # per workspace, trace ids IN (...) AND span ids IN (...), the rows then matched here:
    # a list of (workspace, trace, span) tuples is an OR of row comparisons that PostgreSQL
    # takes ~0.4 ms per key to plan (and, without statistics, probes badly)
    for i in range(0, len(wanted), 500):
        chunk = set(wanted[i : i + 500])
        for ws in sorted({k[0] for k in chunk}):
            mine = [k for k in chunk if k[0] == ws]
            rows = conn.execute(
                _facts_query().where(
                    Span.c.workspace_id == ws,
                    Span.c.trace_id.in_(sorted({k[1] for k in mine})),
                    Span.c.span_id.in_(sorted({k[2] for k in mine})),
                )
            )
            out += [_facts(r) for r in rows if (r.workspace_id, r.trace_id, r.span_id) in chunk]
    return out


def spans_between(
    conn: Connection,
    workspace_id: int,
    since: datetime,
    until: datetime,
    after: tuple[datetime, str, str] | None,
    limit: int,
) -> list[SpanFacts]:
    """A page of a workspace's spans that started in [since, until), in (start, trace,
    span) order after ``after``: what a backfill walks through."""
    q = _facts_query().where(
        Span.c.workspace_id == workspace_id,
        Span.c.start_time >= since,
        Span.c.start_time < until,
    )
    if after is not None:
        q = q.where(sa.tuple_(Span.c.start_time, Span.c.trace_id, Span.c.span_id) > after)
    q = q.order_by(Span.c.start_time, Span.c.trace_id, Span.c.span_id).limit(limit)
    return [_facts(r) for r in conn.execute(q)]


def _facts_query() -> sa.Select[Any]:
    return sa.select(
        Span.c.workspace_id,
        Span.c.trace_id,
        Span.c.span_id,
        Span.c.start_time,
        Span.c.kind,
        Span.c.status,
        sa.func.coalesce(Span.c.model_served, Span.c.model_requested).label("model"),
        Span.c.input_messages,
        Span.c.output_messages,
        Span.c.input_value,
        Span.c.output_value,
        Span.c.documents,
        Span.c.attributes,
        Span.c.latency_ms,
        Span.c.cost_usd,
        Span.c.input_tokens,
        Span.c.output_tokens,
        Trace.c.tags,
        Trace.c.metadata,
        Trace.c.user_id,
        Trace.c.environment,
    ).outerjoin(
        Trace, sa.and_(Trace.c.workspace_id == Span.c.workspace_id, Trace.c.id == Span.c.trace_id)
    )


def _facts(r: Any) -> SpanFacts:
    return SpanFacts(
        workspace_id=r.workspace_id,
        trace_id=r.trace_id,
        span_id=r.span_id,
        start_time=r.start_time,
        kind=r.kind,
        status=r.status,
        model=r.model,
        input_messages=r.input_messages,
        output_messages=r.output_messages,
        input_value=r.input_value,
        output_value=r.output_value,
        documents=r.documents,
        attributes=r.attributes or {},
        latency_ms=r.latency_ms,
        cost_usd=r.cost_usd,
        input_tokens=r.input_tokens,
        output_tokens=r.output_tokens,
        tags=list(r.tags or []),
        metadata=dict(r.metadata or {}),
        user_id=r.user_id,
        environment=r.environment,
    )


# --- rules ----------------------------------------------------------------------------------


def enabled_rules(conn: Connection, workspace_ids: Iterable[int]) -> list[RuleState]:
    """The enabled rules of these workspaces, with the spec of the version in force."""
    ids = sorted(set(workspace_ids))
    if not ids:
        return []
    rows = conn.execute(
        sa.select(
            OnlineRule.c.id,
            OnlineRule.c.workspace_id,
            OnlineRule.c.name,
            OnlineRule.c.enabled,
            OnlineRule.c.version,
            OnlineRuleVersion.c.spec,
        )
        .join(
            OnlineRuleVersion,
            sa.and_(
                OnlineRuleVersion.c.rule_id == OnlineRule.c.id,
                OnlineRuleVersion.c.version == OnlineRule.c.version,
            ),
        )
        .where(OnlineRule.c.workspace_id.in_(ids), OnlineRule.c.enabled.is_(True))
        .order_by(OnlineRule.c.priority.desc(), OnlineRule.c.name)
    )
    return [
        RuleState(r.id, r.workspace_id, r.name, r.enabled, r.version, {r.version: r.spec})
        for r in rows
    ]


def rule_states(conn: Connection, wanted: Iterable[tuple[int, str]]) -> dict[int, RuleState]:
    """Rules by id, each with the specs of the versions asked for ((rule id, version))."""
    pairs = sorted(set(wanted))
    if not pairs:
        return {}
    rule_ids = sorted({p[0] for p in pairs})
    rules = {
        r.id: r
        for r in conn.execute(
            sa.select(
                OnlineRule.c.id,
                OnlineRule.c.workspace_id,
                OnlineRule.c.name,
                OnlineRule.c.enabled,
                OnlineRule.c.version,
            ).where(OnlineRule.c.id.in_(rule_ids))
        )
    }
    specs: dict[int, dict[str, dict[str, Any]]] = {}
    for r in conn.execute(
        sa.select(
            OnlineRuleVersion.c.rule_id, OnlineRuleVersion.c.version, OnlineRuleVersion.c.spec
        ).where(sa.tuple_(OnlineRuleVersion.c.rule_id, OnlineRuleVersion.c.version).in_(pairs))
    ):
        specs.setdefault(r.rule_id, {})[r.version] = r.spec
    return {
        rid: RuleState(r.id, r.workspace_id, r.name, r.enabled, r.version, specs.get(rid, {}))
        for rid, r in rules.items()
    }


# --- outcomes -------------------------------------------------------------------------------


def segment_counts(
    conn: Connection, rule_ids: list[int], since: datetime
) -> dict[tuple[int, str], int]:
    """Per (rule, segment): the entries selected since ``since`` (the hour's minimum counts
    these)."""
    if not rule_ids:
        return {}
    rows = conn.execute(
        sa.select(OnlineOutcome.c.rule_id, OnlineOutcome.c.segment, sa.func.count())
        .where(
            OnlineOutcome.c.rule_id.in_(rule_ids),
            OnlineOutcome.c.created_at >= since,
            OnlineOutcome.c.outcome.in_(SELECTED),
        )
        .group_by(OnlineOutcome.c.rule_id, OnlineOutcome.c.segment)
    )
    return {(r[0], r[1] or ""): int(r[2]) for r in rows}


def insert_outcomes(conn: Connection, rows: list[dict[str, Any]], *, rejudge: bool = False) -> int:
    """Record outcomes; an entry the ledger has already (same rule version and span) is
    kept as it is, or with ``rejudge`` (a backfill asked to judge again) put back to wait
    under the new entry's job unless a worker holds it. Returns how many were written."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    now = utcnow()
    values = [
        {
            "attempts": 0,
            "priority": 0,
            "created_at": now,
            "updated_at": now,
            "reason": None,
            "dedup_key": None,
            "segment": None,
            "job_id": None,
            "not_before": None,
            **r,
        }
        for r in rows
    ]
    stmt = insert(OnlineOutcome)
    if rejudge:
        pending = stmt.excluded.outcome == "pending"
        stmt = stmt.on_conflict_do_update(
            index_elements=["rule_id", "rule_version", "trace_id", "span_id"],
            set_={
                "outcome": stmt.excluded.outcome,
                "reason": stmt.excluded.reason,
                "job_id": stmt.excluded.job_id,
                "attempts": 0,
                "not_before": None,
                "error": None,
                "updated_at": stmt.excluded.updated_at,
            },
            where=sa.and_(OnlineOutcome.c.outcome != "running", pending),
        )
    else:
        stmt = stmt.on_conflict_do_nothing()
    done = conn.execute(stmt, values)
    return max(done.rowcount, 0) if done.rowcount is not None else len(values)


@dataclass(frozen=True)
class JobCounts:
    selected: int
    done: int
    evaluated: int
    failed: int
    cost_usd: float


def job_counts(conn: Connection, job_id: int) -> JobCounts:
    """A backfill's entries: chosen for judging, finished, judged, failed, and the cost."""
    final = ("evaluated", "deduplicated", "over_budget", "failed", "superseded")
    row = conn.execute(
        sa.select(
            sa.func.count().filter(OnlineOutcome.c.outcome.not_in(("filtered_out", "not_sampled"))),
            sa.func.count().filter(OnlineOutcome.c.outcome.in_(final)),
            sa.func.count().filter(OnlineOutcome.c.outcome.in_(("evaluated", "deduplicated"))),
            sa.func.count().filter(OnlineOutcome.c.outcome.in_(("failed", "over_budget"))),
            sa.func.coalesce(sa.func.sum(OnlineOutcome.c.cost_usd), 0.0),
        ).where(OnlineOutcome.c.job_id == job_id)
    ).one()
    return JobCounts(int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4]))


def waiting_count(conn: Connection) -> int:
    """Entries waiting for or held by a worker, over every workspace."""
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(OnlineOutcome.c.outcome.in_((*WAITING, "running")))
        ).scalar_one()
    )


def due_count(conn: Connection, now: datetime) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                OnlineOutcome.c.outcome.in_(WAITING),
                sa.or_(OnlineOutcome.c.not_before.is_(None), OnlineOutcome.c.not_before <= now),
            )
        ).scalar_one()
    )


def claim(conn: Connection, limit: int, now: datetime) -> list[Claimed]:
    """Take up to ``limit`` due waiting entries (highest priority, oldest first) for this
    worker: each becomes ``running`` with one more attempt. On PostgreSQL one statement
    (the entries picked ``FOR UPDATE SKIP LOCKED`` and updated together)."""
    picked = (
        sa.select(OnlineOutcome.c.id, OnlineOutcome.c.outcome)
        .where(
            OnlineOutcome.c.outcome.in_(WAITING),
            sa.or_(OnlineOutcome.c.not_before.is_(None), OnlineOutcome.c.not_before <= now),
        )
        .order_by(OnlineOutcome.c.priority.desc(), OnlineOutcome.c.id)
        .limit(limit)
    )
    claimed_cols = (
        OnlineOutcome.c.id,
        OnlineOutcome.c.workspace_id,
        OnlineOutcome.c.rule_id,
        OnlineOutcome.c.rule_version,
        OnlineOutcome.c.trace_id,
        OnlineOutcome.c.span_id,
        OnlineOutcome.c.attempts,
        OnlineOutcome.c.job_id,
        OnlineOutcome.c.created_at,
    )
    take = sa.update(OnlineOutcome).values(
        outcome="running",
        claimed_at=now,
        attempts=OnlineOutcome.c.attempts + 1,
        updated_at=now,
    )
    rows: list[tuple[Any, ...]]
    if conn.dialect.name == "postgresql":
        sub = picked.with_for_update(skip_locked=True).subquery("picked")
        rows = [
            tuple(r)
            for r in conn.execute(
                take.where(
                    OnlineOutcome.c.id == sub.c.id, OnlineOutcome.c.outcome.in_(WAITING)
                ).returning(*claimed_cols, sub.c.outcome)
            )
        ]
    else:  # one writer at a time: what was read is still waiting when it is updated
        was = {r.id: r.outcome for r in conn.execute(picked)}
        if not was:
            return []
        rows = [
            (*r, was[r.id])
            for r in conn.execute(
                take.where(
                    OnlineOutcome.c.id.in_(list(was)), OnlineOutcome.c.outcome.in_(WAITING)
                ).returning(*claimed_cols)
            )
        ]
    return sorted(
        (
            Claimed(
                id=r[0],
                workspace_id=r[1],
                rule_id=r[2],
                rule_version=r[3],
                trace_id=r[4],
                span_id=r[5],
                attempts=r[6],
                job_id=r[7],
                created_at=r[8],
                was=r[9],
            )
            for r in rows
        ),
        key=lambda c: c.id,
    )


def finish(
    conn: Connection,
    outcome_id: int,
    outcome: str,
    *,
    attempt: int,
    reason: str | None,
    error: str | None = None,
    cost_usd: float | None = None,
    dedup_key: str | None = None,
    not_before: datetime | None = None,
    not_an_attempt: bool = False,
) -> bool:
    """Give a running entry its outcome (or put it back to wait, with ``not_before``).
    ``attempt`` is the claim's: an entry whose lease passed and that another worker claimed
    since is not this worker's any more, and False says so (the caller rolls back what it
    wrote with it, so an entry's scores are written once)."""
    values: dict[str, Any] = {
        "outcome": outcome,
        "reason": reason,
        "error": error,
        "not_before": not_before,
        "updated_at": utcnow(),
        "cost_usd": sa.func.coalesce(OnlineOutcome.c.cost_usd, 0.0) + cost_usd
        if cost_usd
        else OnlineOutcome.c.cost_usd,
    }
    if dedup_key is not None:
        values["dedup_key"] = dedup_key
    if outcome == "rate_limited" or not_an_attempt:  # a deferral is not an attempt
        values["attempts"] = OnlineOutcome.c.attempts - 1
    done = conn.execute(
        sa.update(OnlineOutcome)
        .where(
            OnlineOutcome.c.id == outcome_id,
            OnlineOutcome.c.outcome == "running",
            OnlineOutcome.c.attempts == attempt,
        )
        .values(**values)
    )
    return bool(done.rowcount)


@dataclass(frozen=True)
class Finish:
    """One running entry's outcome, as :func:`finish` takes it."""

    id: int
    outcome: str
    attempt: int
    reason: str | None
    error: str | None = None
    cost_usd: float | None = None
    dedup_key: str | None = None
    not_before: datetime | None = None
    not_an_attempt: bool = False


def finish_many(conn: Connection, done: list[Finish]) -> set[int]:
    """:func:`finish` for many entries: on PostgreSQL one statement (an UPDATE from the
    entries' columns as arrays). Returns the ids written; an entry left out was taken over
    by another worker."""
    if not done:
        return set()
    if conn.dialect.name != "postgresql":  # no VALUES with column names; no round trips either
        return {
            d.id
            for d in done
            if finish(
                conn,
                d.id,
                d.outcome,
                attempt=d.attempt,
                reason=d.reason,
                error=d.error,
                cost_usd=d.cost_usd,
                dedup_key=d.dedup_key,
                not_before=d.not_before,
                not_an_attempt=d.not_an_attempt,
            )
        }
    rows = conn.execute(
        _FINISH_MANY,
        {
            "now": utcnow(),
            "ids": [d.id for d in done],
            "outcomes": [d.outcome for d in done],
            "attempts": [d.attempt for d in done],
            # a deferral is not an attempt
            "undo": [int(d.outcome == "rate_limited" or d.not_an_attempt) for d in done],
            "reasons": [d.reason for d in done],
            "errors": [d.error for d in done],
            "costs": [d.cost_usd or None for d in done],
            "keys": [d.dedup_key for d in done],
            "not_before": [d.not_before for d in done],
        },
    )
    return {int(r[0]) for r in rows}


# One statement whatever the number of entries, so it is compiled once: an UPDATE from a
# VALUES list of N rows was compiled again for every group (a sixth of a worker's CPU).
# Every array is cast, since an array of NULLs has no type.
_FINISH_MANY = sa.text(
    """
    UPDATE online_outcome AS o SET
        outcome = d.outcome,
        reason = d.reason,
        error = d.error,
        not_before = d.not_before,
        updated_at = :now,
        cost_usd = CASE WHEN d.cost IS NULL THEN o.cost_usd
                        ELSE coalesce(o.cost_usd, 0.0) + d.cost END,
        dedup_key = coalesce(d.dedup_key, o.dedup_key),
        attempts = o.attempts - d.undo
    FROM unnest(
        CAST(:ids AS bigint[]), CAST(:outcomes AS text[]), CAST(:attempts AS integer[]),
        CAST(:undo AS integer[]), CAST(:reasons AS text[]), CAST(:errors AS text[]),
        CAST(:costs AS double precision[]), CAST(:keys AS text[]),
        CAST(:not_before AS timestamptz[])
    ) AS d(id, outcome, attempt, undo, reason, error, cost, dedup_key, not_before)
    WHERE o.id = d.id AND o.outcome = 'running' AND o.attempts = d.attempt
    RETURNING o.id
    """
)


def add_cost(conn: Connection, outcome_id: int, cost_usd: float) -> None:
    conn.execute(
        sa.update(OnlineOutcome)
        .where(OnlineOutcome.c.id == outcome_id)
        .values(cost_usd=sa.func.coalesce(OnlineOutcome.c.cost_usd, 0.0) + cost_usd)
    )


def backfill_terms(conn: Connection, job_id: int) -> tuple[float | None, bool]:
    """The budget a backfill job was given, and whether it judges again what was judged."""
    payload = conn.execute(sa.select(Job.c.payload).where(Job.c.id == job_id)).scalar()
    if not isinstance(payload, dict):
        return None, False
    value = payload.get("budget_usd")
    budget = float(value) if isinstance(value, (int, float)) else None
    return budget, bool(payload.get("rejudge"))


def expire_leases(conn: Connection, now: datetime, lease_s: float, max_attempts: int) -> int:
    """Entries a worker took and never finished (it died): back to waiting, or failed once
    they have had ``max_attempts``. Returns how many were let go."""
    stale = sa.and_(
        OnlineOutcome.c.outcome == "running",
        OnlineOutcome.c.claimed_at < now - timedelta(seconds=lease_s),
    )
    if conn.execute(sa.select(OnlineOutcome.c.id).where(stale).limit(1)).first() is None:
        return 0  # the usual case: no write (and on SQLite no write lock) every tick
    failed = conn.execute(
        sa.update(OnlineOutcome)
        .where(stale, OnlineOutcome.c.attempts >= max_attempts)
        .values(
            outcome="failed",
            reason=f"the worker judging it stopped {max_attempts} times",
            error="worker lost",
            updated_at=now,
        )
    ).rowcount
    retried = conn.execute(
        sa.update(OnlineOutcome)
        .where(stale)
        .values(
            outcome="pending",
            reason="the worker judging it stopped: taken again",
            updated_at=now,
        )
    ).rowcount
    return int(failed or 0) + int(retried or 0)


def find_judged(
    conn: Connection, workspace_id: int, dedup_key: str, not_id: int
) -> tuple[int, str, str, str] | None:
    """An evaluated entry with this deduplication key: (id, trace, span, rule version)."""
    row = conn.execute(
        sa.select(
            OnlineOutcome.c.id,
            OnlineOutcome.c.trace_id,
            OnlineOutcome.c.span_id,
            OnlineOutcome.c.rule_version,
        )
        .where(
            OnlineOutcome.c.workspace_id == workspace_id,
            OnlineOutcome.c.dedup_key == dedup_key,
            OnlineOutcome.c.outcome == "evaluated",
            OnlineOutcome.c.id != not_id,
        )
        .order_by(OnlineOutcome.c.id)
        .limit(1)
    ).first()
    return None if row is None else (int(row[0]), row[1], row[2], row[3])


def find_judged_many(
    conn: Connection, workspace_id: int, dedup_keys: Iterable[str]
) -> dict[str, tuple[int, str, str, str]]:
    """:func:`find_judged` for many keys at once: per key, the first evaluated entry."""
    keys = sorted(set(dedup_keys))
    out: dict[str, tuple[int, str, str, str]] = {}
    for i in range(0, len(keys), 500):
        rows = conn.execute(
            sa.select(
                OnlineOutcome.c.dedup_key,
                OnlineOutcome.c.id,
                OnlineOutcome.c.trace_id,
                OnlineOutcome.c.span_id,
                OnlineOutcome.c.rule_version,
            )
            .where(
                OnlineOutcome.c.workspace_id == workspace_id,
                OnlineOutcome.c.dedup_key.in_(keys[i : i + 500]),
                OnlineOutcome.c.outcome == "evaluated",
            )
            .order_by(OnlineOutcome.c.id)
        )
        for r in rows:
            out.setdefault(r[0], (int(r[1]), r[2], r[3], r[4]))
    return out


# --- scores ---------------------------------------------------------------------------------


def online_scores(
    conn: Connection, workspace_id: int, trace_id: str, span_id: str, rule_version: str
) -> list[dict[str, Any]]:
    """The scores a rule version has written on a span (to resume without judging again)."""
    rows = conn.execute(
        sa.select(Score, Metric.c.name.label("metric"))
        .join(Metric, Metric.c.id == Score.c.metric_id)
        .where(
            Score.c.workspace_id == workspace_id,
            Score.c.trace_id == trace_id,
            Score.c.span_id == span_id,
            Score.c.source == "online",
            Score.c.rule_version == rule_version,
        )
    )
    return [dict(r._mapping) for r in rows]


def online_scores_many(
    conn: Connection, wanted: Iterable[tuple[int, str, str, str]]
) -> dict[tuple[int, str, str, str], list[dict[str, Any]]]:
    """:func:`online_scores` for many (workspace, trace, span, rule version) at once."""
    out: dict[tuple[int, str, str, str], list[dict[str, Any]]] = {}
    keys = sorted(set(wanted))
    for i in range(0, len(keys), 200):
        chunk = keys[i : i + 200]
        asked = set(chunk)
        rows = conn.execute(
            sa.select(Score, Metric.c.name.label("metric"))
            .join(Metric, Metric.c.id == Score.c.metric_id)
            .where(
                Score.c.workspace_id.in_(sorted({k[0] for k in chunk})),
                Score.c.trace_id.in_(sorted({k[1] for k in chunk})),
                Score.c.source == "online",
            )
        )
        for r in rows:
            m = dict(r._mapping)
            key = (m["workspace_id"], m["trace_id"], m["span_id"], m["rule_version"])
            if key in asked:
                out.setdefault(key, []).append(m)
    return out


def save_scores(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Scores on spans (each row: workspace_id, trace_id, span_id, metric_id, source,
    rule_version, value, ... as the score table has them)."""
    if not rows:
        return
    now = utcnow()
    conn.execute(
        sa.insert(Score),
        [{"id": uuid.uuid4(), "created_at": now, "judge_cached": False, **r} for r in rows],
    )


# --- what the ledger says -------------------------------------------------------------------


def trace_exists(conn: Connection, workspace_id: int, trace_id: str) -> bool:
    found = conn.execute(
        sa.select(Trace.c.id)
        .where(Trace.c.workspace_id == workspace_id, Trace.c.id == trace_id)
        .limit(1)
    ).first()
    return found is not None


def outcomes_of_trace(conn: Connection, workspace_id: int, trace_id: str) -> list[OutcomeRow]:
    rows = conn.execute(
        sa.select(
            OnlineRule.c.name,
            OnlineOutcome.c.rule_version,
            OnlineOutcome.c.trace_id,
            OnlineOutcome.c.span_id,
            OnlineOutcome.c.outcome,
            OnlineOutcome.c.reason,
            OnlineOutcome.c.error,
            OnlineOutcome.c.cost_usd,
            OnlineOutcome.c.attempts,
            OnlineOutcome.c.job_id,
            OnlineOutcome.c.created_at,
            OnlineOutcome.c.updated_at,
        )
        .join(OnlineRule, OnlineRule.c.id == OnlineOutcome.c.rule_id)
        .where(OnlineOutcome.c.workspace_id == workspace_id, OnlineOutcome.c.trace_id == trace_id)
        .order_by(OnlineRule.c.name, OnlineOutcome.c.span_id, OnlineOutcome.c.id)
    )
    return [OutcomeRow(*r) for r in rows]


def hourly_outcomes(
    conn: Connection, workspace_id: int, rule_id: int | None, since: datetime
) -> list[tuple[str, datetime, str, int, float]]:
    """(rule, hour, outcome, count, cost) since ``since``, newest hour first."""
    if conn.dialect.name == "postgresql":
        hour = sa.func.date_trunc("hour", OnlineOutcome.c.created_at)
    else:
        hour = sa.func.strftime("%Y-%m-%d %H:00:00", OnlineOutcome.c.created_at)
    q = (
        sa.select(
            OnlineRule.c.name,
            hour.label("hour"),
            OnlineOutcome.c.outcome,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(OnlineOutcome.c.cost_usd), 0.0),
        )
        .join(OnlineRule, OnlineRule.c.id == OnlineOutcome.c.rule_id)
        .where(OnlineOutcome.c.workspace_id == workspace_id, OnlineOutcome.c.created_at >= since)
        .group_by(OnlineRule.c.name, hour, OnlineOutcome.c.outcome)
        .order_by(hour.desc(), OnlineRule.c.name, OnlineOutcome.c.outcome)
    )
    if rule_id is not None:
        q = q.where(OnlineOutcome.c.rule_id == rule_id)
    out = []
    for r in conn.execute(q):
        moment = r[1]
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment + "+00:00")
        out.append((r[0], moment, r[2], int(r[3]), float(r[4])))
    return out
