"""Online evaluation at work: new production spans selected by the enabled rules, judged by
workers within budgets, and one ledger entry per (rule version, span) that says what
happened and why.

The flow (ARCHITECTURE.md, "The production flow"):

1. The trace writer stores a span and, in the same transaction, an inbox entry when its
   workspace has an enabled rule.
2. ``online_tick`` (every second, one at a time) takes inbox entries, runs every enabled
   rule's filter and sampling on each span (:func:`panopticon.online.decide`) and records
   the outcome: filtered out, not sampled, or pending. While too much is pending, it leaves
   the inbox alone (backpressure: the entries wait on disk). It also lets go of entries
   whose worker died (a lease), then wakes the judging tasks.
3. ``online_evaluate`` (``online_workers`` of them, in process on SQLite, spread over
   procrastinate workers on PostgreSQL) claims pending entries and judges them: a rule
   version that changed meanwhile supersedes the entry; an identical input, output and
   metrics judged before is deduplicated (its scores are copied); the rule's per-minute
   cap defers it; each judge call holds its cost bound in the rule's and the workspace's
   budgets before it is sent (no call that could pass a budget is made) and settles the
   real cost after; a failed judgement is retried, then recorded as failed with its error.

Scores are the same score rows as everywhere (subject: the span; source ``online``; the
rule version that made them), so every view reads them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from panopticon.errors import ConfigError
from panopticon.evaluation.endpoints import Access, Problem, build_client, resolve_endpoint
from panopticon.evaluation.judging import CachedJudgement, CallEstimate, Judging
from panopticon.evaluation.spec import ModelSpec, model_price
from panopticon.judges.base import Metric, MetricContext, MetricSpec, build_metric, spec_class
from panopticon.online.outcomes import Outcome
from panopticon.online.rules import RuleSpec
from panopticon.online.select import Candidate, decide, dedup_key, prompt_keys, segment_of
from panopticon.providers.base import ChatResponse
from panopticon.providers.client import ModelClient
from panopticon.providers.pricing import Price
from panopticon.services.online import Hold, OnlineBudgets, Refusal
from panopticon.services.registry import ModelRegistry
from panopticon.services.tasks import TASKS, TaskContext
from panopticon.settings import Settings
from panopticon.store.engine import Engine, retry_on_race
from panopticon.store.limits import SharedBucket, bucket_key
from panopticon.store.queries import catalog as catalog_q
from panopticon.store.queries import ledger as q
from panopticon.store.queries import online as online_q
from panopticon.store.queries.online import Window
from panopticon.store.span_text import content_text, span_input_text, span_output_text
from panopticon.store.tables.base import utcnow

__all__ = [
    "MAX_ATTEMPTS",
    "OnlineEvaluator",
    "SelectStats",
    "candidate_of",
    "context_of",
    "ledger_entry",
    "online_evaluate",
    "online_tick",
    "select_new",
]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # judge failures (or lost workers) before an entry is recorded as failed
INBOX_BATCH = 2000  # inbox entries one tick takes at most
IN_FLIGHT = 16  # entries one judging task judges at once
# the next entries are claimed once this many slots are free, while the others are judged;
# no more are claimed than can start at once (a lease is judging time, not waiting time)
CLAIM_AT = IN_FLIGHT // 2
DRAIN_S = 10.0  # a judging task gives its slot back after this long (the next tick wakes it)
BUSY_WAIT_S = 600.0  # how long a span waits for calls in flight to free a budget's room
JUDGE_MAX_TOKENS = 1024  # a judge's answer is capped, so a budget can bound every call


# --- what a rule reads of a span --------------------------------------------------------------


def _input(f: q.SpanFacts) -> str:
    return span_input_text(f.input_value, f.input_messages) or ""


def _output(f: q.SpanFacts) -> str:
    return span_output_text(f.output_value, f.output_messages) or ""


def _prompt(f: q.SpanFacts, key: str) -> str | None:
    for source in (f.attributes, f.metadata):
        for name in prompt_keys(key):
            value = source.get(name)
            if value is not None:
                return str(value)
    return None


def candidate_of(f: q.SpanFacts) -> Candidate:
    return Candidate(
        trace_id=f.trace_id,
        span_id=f.span_id,
        kind=f.kind,
        model=f.model,
        prompt_name=_prompt(f, "name"),
        prompt_version=_prompt(f, "version"),
        tags=tuple(f.tags),
        metadata=f.metadata,
        user=f.user_id,
        environment=f.environment,
        status=f.status,
        input_text=_input(f),
        output_text=_output(f),
    )


def context_of(f: q.SpanFacts) -> MetricContext:
    """A span as a metric sees an answer: the user's last turn as the query, the messages,
    the answer, and its retrieved documents as the context (what faithfulness and context
    relevance read)."""
    messages = [
        {"role": str(m.get("role", "user")), "content": content_text(m.get("content"))}
        for m in (f.input_messages or [])
        if isinstance(m, dict)
    ] or [{"role": "user", "content": _input(f)}]
    docs = [
        content_text(d.get("content")) if isinstance(d, dict) else content_text(d)
        for d in f.documents or []
    ]
    return MetricContext(
        query=_input(f),
        response=_output(f),
        messages=messages,
        context="\n\n".join(d for d in docs if d) or None,
        metadata=f.metadata,
        latency_ms=f.latency_ms,
        cost_usd=f.cost_usd,
        input_tokens=f.input_tokens,
        output_tokens=f.output_tokens,
    )


# --- selection ------------------------------------------------------------------------------


@dataclass
class SelectStats:
    taken: int = 0  # inbox entries taken
    recorded: int = 0  # ledger entries written
    pending: int = 0  # of which selected for judging
    released: int = 0  # running entries let go (their worker died)
    due: int = 0  # entries waiting for a judge now
    held_back: bool = False  # backpressure: the inbox was left alone


def _hour(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


def select_new(engine: Engine, settings: Settings, now: datetime | None = None) -> SelectStats:
    """One tick of selection (blocking: run it in a thread)."""
    now = now or utcnow()
    stats = SelectStats()
    with engine.begin() as conn:
        stats.released = q.expire_leases(conn, now, settings.online_lease_s, MAX_ATTEMPTS)
    with engine.begin() as conn:
        if q.waiting_count(conn) >= settings.online_max_waiting:
            stats.held_back = True
        else:
            taken = q.take_inbox(conn, INBOX_BATCH)
            stats.taken = len(taken)
            if taken:
                rows = _decide_all(conn, taken, now)
                stats.recorded = q.insert_outcomes(conn, rows)
                stats.pending = sum(1 for r in rows if r["outcome"] == Outcome.PENDING)
        stats.due = q.due_count(conn, now)
    return stats


def ledger_entry(
    spec: RuleSpec,
    rule_id: int,
    version: str,
    f: q.SpanFacts,
    c: Candidate,
    counts: dict[tuple[int, str], int],
) -> dict[str, Any]:
    """The ledger entry a rule version gives a span: its filter and sampling decided, the
    span counted in its segment's hour when selected (``counts`` is updated)."""
    segment = segment_of(spec, c)
    decision = decide(spec, c, counts.get((rule_id, segment), 0))
    if decision.outcome == Outcome.PENDING:
        counts[(rule_id, segment)] = counts.get((rule_id, segment), 0) + 1
    return {
        "workspace_id": f.workspace_id,
        "rule_id": rule_id,
        "rule_version": version,
        "trace_id": f.trace_id,
        "span_id": f.span_id,
        "outcome": str(decision.outcome),
        "reason": decision.reason,
        "segment": segment[:200],
        "priority": spec.priority,
    }


def _decide_all(conn: Any, taken: list[q.InboxSpan], now: datetime) -> list[dict[str, Any]]:
    facts = q.span_facts(conn, [(t.workspace_id, t.trace_id, t.span_id) for t in taken])
    rules = q.enabled_rules(conn, {f.workspace_id for f in facts})
    counts = q.segment_counts(conn, [r.id for r in rules], _hour(now))
    by_ws: dict[int, list[tuple[q.RuleState, RuleSpec]]] = {}
    for rule in rules:
        try:
            spec = RuleSpec.model_validate(rule.specs[rule.version])
        except Exception:  # a stored spec this version cannot read: the rule is skipped
            log.exception("online rule %s version %s does not validate", rule.name, rule.version)
            continue
        by_ws.setdefault(rule.workspace_id, []).append((rule, spec))
    rows: list[dict[str, Any]] = []
    for f in facts:
        c = candidate_of(f)
        for rule, spec in by_ws.get(f.workspace_id, []):
            rows.append(ledger_entry(spec, rule.id, rule.version, f, c, counts))
    return rows


# --- judging --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Version:
    """One rule version ready to judge with."""

    spec: RuleSpec
    metrics: list[Metric]
    definitions: list[dict[str, Any]]
    metric_ids: dict[str, int]


@dataclass
class _Judge:
    spec: ModelSpec
    client: ModelClient
    price: Price | None


def _bound(price: Price | None, spec: ModelSpec, e: CallEstimate) -> float:
    """The most a call can cost (NaN: it cannot be bounded)."""
    if spec.provider == "fake":
        return 0.0
    if price is None or e.max_output_tokens is None:
        return math.nan
    cost = price.cost(e.max_input_tokens, e.max_output_tokens)
    return math.nan if cost is None else cost


class _BudgetGate:
    """Each judge call of one entry holds its bound in the budgets first, settles after."""

    def __init__(
        self,
        budgets: OnlineBudgets,
        rule: RuleSpec,
        prices: Mapping[str, Price | None],
        extra: tuple[Window, ...],
    ) -> None:
        self.budgets = budgets
        self.rule = rule
        self.prices = prices
        self.extra = extra
        self.refused: str | None = None
        self.busy = False  # refused only because calls in flight hold the budget's room
        self.spent = 0.0
        self._holds: dict[int, Hold] = {}

    async def open(self, spec: ModelSpec, estimate: CallEstimate) -> str | None:
        if not self.extra and not self.budgets.windows(self.rule):  # no budget: no statement
            self._holds[id(estimate)] = Hold((), 0.0)
            return None
        bound = _bound(self.prices.get(spec.id), spec, estimate)
        held = await asyncio.to_thread(self.budgets.reserve, self.rule, bound, extra=self.extra)
        if isinstance(held, Refusal):
            self.refused, self.busy = held, held.busy
            return f"not sent: {held}"
        self._holds[id(estimate)] = held
        return None

    async def close(
        self,
        spec: ModelSpec,
        estimate: CallEstimate,
        response: ChatResponse | None,
        attempts: int,
    ) -> float | None:
        hold = self._holds.pop(id(estimate))
        cost: float | None = None
        if response is not None:
            price = self.prices.get(spec.id)
            if spec.provider == "fake":
                cost = 0.0
            elif price is not None:
                cost = price.cost(response.input_tokens, response.output_tokens)
        if hold.windows:
            await asyncio.to_thread(self.budgets.settle, hold, cost)
        self.spent += cost or 0.0
        return cost


@dataclass(frozen=True)
class _Prepared:
    """An entry ready to judge: its rule version, what the metrics see, its dedup key."""

    version: _Version
    ctx: MetricContext
    key: str


@dataclass
class _Batch:
    """What one claimed batch needs from the store, read in a few statements for all of
    its entries rather than a few for each."""

    states: dict[int, q.RuleState]
    facts: dict[tuple[int, str, str], q.SpanFacts]
    scored: dict[tuple[int, str, str, str], list[dict[str, Any]]]  # entries tried before
    limits: dict[int, tuple[float | None, float | None]]  # each workspace's budgets
    prepared: dict[int, _Prepared] = field(default_factory=dict)  # by entry id
    twins: dict[tuple[int, str], tuple[int, str, str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Done:
    """An entry's outcome to write (the arguments of :func:`ledger.finish`) and its scores."""

    claimed: q.Claimed
    outcome: str
    reason: str
    fields: dict[str, Any]
    scores: list[dict[str, Any]]


class _Finisher:
    """Writes entries' outcomes (and their scores) together: while one transaction is
    being written, the entries that finish meanwhile wait for the next one (group commit).
    A busy worker thus makes one round trip for many entries, an idle one waits for none;
    each entry is written before its caller goes on, as if alone."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._waiting: list[tuple[_Done, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(self, done: _Done) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((done, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        await future

    async def _write_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await asyncio.to_thread(self._write, [d for d, _ in batch])
            except Exception:  # one bad row must not fail the others: each alone
                for d, future in batch:
                    try:
                        await asyncio.to_thread(self._write, [d])
                    except Exception as exc:
                        future.set_exception(exc)
                    else:
                        future.set_result(None)
            else:
                for _, future in batch:
                    future.set_result(None)

    def _write(self, batch: list[_Done]) -> None:
        with self.engine.begin() as conn:
            written = q.finish_many(
                conn,
                [
                    q.Finish(d.claimed.id, d.outcome, d.claimed.attempts, d.reason, **d.fields)
                    for d in batch
                ],
            )
            for d in batch:
                if d.claimed.id not in written:
                    # its lease passed and another worker took it: that one writes its scores
                    log.warning("online entry %s was taken over by another worker", d.claimed.id)
            q.save_scores(conn, [s for d in batch if d.claimed.id in written for s in d.scores])


class OnlineEvaluator:
    """Claims waiting ledger entries and judges them. One per judging task; its judge
    clients (retries, rate limits) live as long as it does."""

    def __init__(
        self, engine: Engine, settings: Settings, env: Mapping[str, str], *, clock: Any = utcnow
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.env = env
        self.clock = clock
        self._versions: dict[tuple[int, str], _Version] = {}
        self._judges: dict[tuple[int, str], _Judge | Problem] = {}
        self._cache: dict[int, dict[str, CachedJudgement]] = {}
        self._limits: dict[int, SharedBucket] = {}
        self._job_terms: dict[int, tuple[float | None, bool]] = {}
        self._lock = threading.Lock()
        self._finisher = _Finisher(engine)
        # (workspace, dedup key) -> the first entry claimed with it, and its end: a twin
        # claimed while it is judged (in its batch or a later one) waits, then copies it
        self._first: dict[tuple[int, str], int] = {}
        self._judged: dict[tuple[int, str], asyncio.Event] = {}
        self.judged = 0

    async def aclose(self) -> None:
        for judge in self._judges.values():
            if isinstance(judge, _Judge):
                await judge.client.aclose()

    async def drain(self, seconds: float = DRAIN_S) -> int:
        """Judge what is due until nothing is or ``seconds`` pass; returns entries handled.

        Up to IN_FLIGHT entries are judged at once. Entries are claimed (and their spans
        read) as soon as CLAIM_AT slots are free, while the others are still being judged,
        so a batch's slowest entry does not hold up the next ones; every entry claimed
        starts at once, so its lease only runs while it is judged."""
        handled = 0
        deadline = time.monotonic() + seconds
        running: set[asyncio.Task[None]] = set()
        try:
            while time.monotonic() < deadline:
                room = IN_FLIGHT - len(running)
                if room < CLAIM_AT:
                    _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                claimed, batch = await asyncio.to_thread(self._claim_read, room)
                if not claimed:
                    if not running:
                        break
                    # nothing due now: once what is judged is done, look once more
                    await asyncio.wait(running)
                    running = set()
                    continue
                self._admit(claimed, batch)
                handled += len(claimed)
                running |= {asyncio.create_task(self._one(c, batch)) for c in claimed}
            if running:
                await asyncio.wait(running)
        except BaseException:  # cancelled (the worker stops): so are the entries it judges
            for task in running:
                task.cancel()
            raise
        return handled

    def _admit(self, claimed: list[q.Claimed], batch: _Batch) -> None:
        """Note each claimed entry's dedup key: the first entry with a key is judged, the
        others (claimed with it or while it is judged) wait for it."""
        for c in claimed:
            prepared = batch.prepared.get(c.id)
            if prepared is not None:
                same = (c.workspace_id, prepared.key)
                if self._first.setdefault(same, c.id) == c.id:
                    self._judged[same] = asyncio.Event()

    async def _one(self, c: q.Claimed, batch: _Batch) -> None:
        try:
            await self.process(c, batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # recorded, never lost: retried after a pause
            log.exception("online entry %s failed", c.id)
            await self._retry_or_fail(c, _describe(exc), [])
        finally:
            prepared = batch.prepared.get(c.id)
            if prepared is not None:
                same = (c.workspace_id, prepared.key)
                if self._first.get(same) == c.id:
                    self._judged[same].set()

    # -- blocking helpers (run in threads) ----------------------------------------------------

    def _claim_read(self, limit: int) -> tuple[list[q.Claimed], _Batch]:
        """Claim up to ``limit`` entries and read, in the same transaction, the rules,
        spans, earlier scores and budgets they need; then their judged twins."""
        # only an entry tried before (or a backfill's, which may judge again) can have
        # scores already: a live entry's first attempt has none
        with self.engine.begin() as conn:
            claimed = q.claim(conn, limit, self.clock())
            if not claimed:
                return [], _Batch({}, {}, {}, {})
            again = [
                (c.workspace_id, c.trace_id, c.span_id, c.rule_version)
                for c in claimed
                if c.attempts > 1 or c.job_id is not None
            ]
            batch = _Batch(
                q.rule_states(conn, {(c.rule_id, c.rule_version) for c in claimed}),
                {_key(f): f for f in q.span_facts(conn, [_key(c) for c in claimed])},
                q.online_scores_many(conn, again) if again else {},
                {
                    ws: online_q.workspace_budgets(conn, ws)
                    for ws in sorted({c.workspace_id for c in claimed})
                },
            )
        # outside the claim's transaction: a rule version seen for the first time records
        # its metrics in a transaction of its own
        by_ws: dict[int, set[str]] = {}
        for c in claimed:
            rule, facts = batch.states.get(c.rule_id), batch.facts.get(_key(c))
            if rule is None or facts is None or c.rule_version not in rule.specs:
                continue
            try:
                version = self._version(rule, c.rule_version)
                ctx = context_of(facts)
                key = dedup_key(
                    {"metrics": version.definitions},
                    version.spec.judge,
                    candidate_of(facts),
                    ctx.context,
                )
            except Exception:  # process() meets the same error and records it
                continue
            batch.prepared[c.id] = _Prepared(version, ctx, key)
            by_ws.setdefault(c.workspace_id, set()).add(key)
        if by_ws:
            with self.engine.connect() as conn:
                for ws, keys in by_ws.items():
                    for key, twin in q.find_judged_many(conn, ws, keys).items():
                        batch.twins[(ws, key)] = twin
        return claimed, batch

    async def _finish(self, c: q.Claimed, outcome: Outcome, reason: str, **kw: Any) -> None:
        scores = kw.pop("scores", [])
        await self._finisher.write(_Done(c, str(outcome), reason, kw, scores))

    async def _retry_or_fail(
        self,
        c: q.Claimed,
        error: str,
        scores: list[dict[str, Any]],
        cost_usd: float | None = None,
    ) -> None:
        """A failed judgement: wait and try again, or, after the last attempt, record it
        failed with its error (and the failed scores, so every view counts them)."""
        ok = [s for s in scores if s.get("error") is None]
        if c.attempts < MAX_ATTEMPTS:
            wait = 5.0 * 2 ** (c.attempts - 1)
            await self._finish(
                c,
                Outcome.PENDING,
                f"attempt {c.attempts} of {MAX_ATTEMPTS} failed ({error}); retrying in {wait:g} s",
                error=error,
                cost_usd=cost_usd,
                not_before=self.clock() + timedelta(seconds=wait),
                scores=ok,
            )
        else:
            await self._finish(
                c,
                Outcome.FAILED,
                f"the judge failed {c.attempts} times; the last error: {error}",
                error=error,
                cost_usd=cost_usd,
                scores=scores,
            )

    def _version(self, rule: q.RuleState, version: str) -> _Version:
        with self._lock:
            return self._version_locked(rule, version)

    def _version_locked(self, rule: q.RuleState, version: str) -> _Version:
        key = (rule.id, version)
        if key not in self._versions:
            spec = RuleSpec.model_validate(rule.specs[version])
            specs: list[MetricSpec] = []
            for raw in spec.metrics:
                cls = spec_class(str(raw.get("type")))
                assert cls is not None  # validated when the rule was applied
                specs.append(cls.model_validate(raw))

            def upsert() -> dict[str, int]:
                with self.engine.begin() as conn:
                    return catalog_q.upsert_metrics(conn, rule.workspace_id, specs)

            ids = retry_on_race(upsert)  # another worker may record the same metrics
            self._versions[key] = _Version(
                spec,
                [build_metric(s) for s in specs],
                [s.model_dump(mode="json") for s in specs],
                ids,
            )
        return self._versions[key]

    def _judge(self, workspace_id: int, model_id: str) -> _Judge | Problem:
        with self._lock:  # entries judged at once share one client per judge
            return self._judge_locked(workspace_id, model_id)

    def _judge_locked(self, workspace_id: int, model_id: str) -> _Judge | Problem:
        key = (workspace_id, model_id)
        if key not in self._judges:
            registry = ModelRegistry(self.engine, workspace_id, self.settings)
            try:
                spec = registry.spec(model_id, "judge")
            except ConfigError as exc:
                self._judges[key] = Problem(str(exc), "register the judge model again", "judge")
                return self._judges[key]
            params = {"max_tokens": JUDGE_MAX_TOKENS, **spec.params}
            spec = spec.model_copy(update={"params": params})
            access = Access.server(self.settings, registered=frozenset({spec.id}))
            endpoint = resolve_endpoint(spec, self.env, access, registry.directory)
            if isinstance(endpoint, Problem):
                self._judges[key] = endpoint
            else:
                rpm = (
                    SharedBucket(
                        self.engine,
                        bucket_key(
                            "rpm",
                            {
                                "provider": endpoint.kind,
                                "base_url": endpoint.base_url,
                                "model": spec.provider_model,
                                "key": endpoint.api_key or endpoint.key_source,
                            },
                        ),
                        spec.rpm,
                    )
                    if spec.rpm
                    else None
                )
                client = build_client(
                    spec,
                    endpoint,
                    access.egress,
                    concurrency=spec.concurrency or IN_FLIGHT,
                    rpm=rpm,
                )
                self._judges[key] = _Judge(spec, client, model_price(spec, endpoint.kind))
        return self._judges[key]

    def _limit(self, rule_id: int, per_minute: int) -> SharedBucket:
        if rule_id not in self._limits:
            self._limits[rule_id] = SharedBucket(
                self.engine, bucket_key("online", {"rule": rule_id}), per_minute
            )
        return self._limits[rule_id]

    # -- one entry ----------------------------------------------------------------------------

    async def process(self, c: q.Claimed, batch: _Batch) -> Outcome:
        db = asyncio.to_thread
        rule, facts = batch.states.get(c.rule_id), batch.facts.get(_key(c))
        if rule is None or c.rule_version not in rule.specs:
            await self._finish(c, Outcome.SUPERSEDED, "the rule was deleted")
            return Outcome.SUPERSEDED
        live = c.job_id is None  # a backfill runs a paused rule too
        if rule.version != c.rule_version or (live and not rule.enabled):
            why = (
                f"rule '{rule.name}' was disabled before this span was judged"
                if rule.version == c.rule_version
                else f"rule '{rule.name}' changed to version {rule.version} before this span "
                f"was judged (this entry is version {c.rule_version})"
            )
            await self._finish(c, Outcome.SUPERSEDED, why)
            return Outcome.SUPERSEDED
        if facts is None:
            await self._finish(
                c,
                Outcome.FAILED,
                "the span is no longer stored (its retention passed before it was judged)",
                error="span not found",
            )
            return Outcome.FAILED
        prepared = batch.prepared.get(c.id)
        if prepared is None:  # its preparation failed: meet the error here, to record it
            version = await db(self._version, rule, c.rule_version)
            ctx = context_of(facts)
            key = dedup_key(
                {"metrics": version.definitions},
                version.spec.judge,
                candidate_of(facts),
                ctx.context,
            )
            prepared = _Prepared(version, ctx, key)
        version, ctx, key = prepared.version, prepared.ctx, prepared.key
        spec = version.spec
        rejudge = c.job_id is not None and (await self._terms(c.job_id))[1]
        if not rejudge:
            same = (c.workspace_id, key)
            twin = batch.twins.get(same)
            if twin is None and self._first.get(same, c.id) != c.id:
                # the same answer claimed before it: once that is judged, copy its scores
                await self._judged[same].wait()
                twin = await db(self._find_twin, c, key)
            if twin is not None:
                await db(self._copy_twin, c, key, twin)
                return Outcome.DEDUPLICATED
        if spec.max_per_minute and c.was != Outcome.RATE_LIMITED:
            wait = await db(self._limit(rule.id, spec.max_per_minute).reserve, 1.0)
            if wait > 0.05:  # its turn is in the future: it keeps the slot and waits
                until = self.clock() + timedelta(seconds=wait)
                await self._finish(
                    c,
                    Outcome.RATE_LIMITED,
                    f"deferred by the rule's max_per_minute={spec.max_per_minute} until "
                    f"{until:%H:%M:%S} UTC",
                    not_before=until,
                    dedup_key=key,
                )
                return Outcome.RATE_LIMITED
        return await self._judge_entry(c, rule, version, ctx, key, batch)

    async def _terms(self, job_id: int) -> tuple[float | None, bool]:
        """A backfill's budget and whether it judges again (fixed when it is started)."""
        if job_id not in self._job_terms:
            self._job_terms[job_id] = await asyncio.to_thread(_backfill_terms, self.engine, job_id)
        return self._job_terms[job_id]

    def _find_twin(self, c: q.Claimed, key: str) -> tuple[int, str, str, str] | None:
        with self.engine.connect() as conn:
            return q.find_judged(conn, c.workspace_id, key, c.id)

    def _copy_twin(self, c: q.Claimed, key: str, twin: tuple[int, str, str, str]) -> None:
        """The same input, output, context and metrics judged before: copy its scores."""
        with self.engine.begin() as conn:
            _, trace_id, span_id, version = twin
            copied = []
            for s in q.online_scores(conn, c.workspace_id, trace_id, span_id, version):
                copied.append(
                    {
                        **_score_copy(s),
                        "trace_id": c.trace_id,
                        "span_id": c.span_id,
                        "rule_version": c.rule_version,
                        "judge_cached": True,
                        "judge_cost_usd": 0.0,
                        "details": {
                            **(s.get("details") or {}),
                            "deduplicated_from": {"trace_id": trace_id, "span_id": span_id},
                        },
                    }
                )
            q.save_scores(conn, copied)
            if not q.finish(
                conn,
                c.id,
                str(Outcome.DEDUPLICATED),
                attempt=c.attempts,
                reason=f"the same input, output and context were judged with the same metrics "
                f"on span {span_id} of trace {trace_id}: its scores are copied",
                dedup_key=key,
            ):
                conn.rollback()  # taken over by another worker: it records the outcome

    async def _judge_entry(
        self,
        c: q.Claimed,
        rule: q.RuleState,
        version: _Version,
        ctx: MetricContext,
        key: str,
        batch: _Batch,
    ) -> Outcome:
        db = asyncio.to_thread
        spec = version.spec
        earlier = batch.scored.get((c.workspace_id, c.trace_id, c.span_id, c.rule_version), [])
        done = {s["metric"] for s in earlier if s.get("error") is None}
        wanted = [m for m in version.metrics if m.name not in done]
        judge_ids = {spec.judge} if spec.judge else set()
        judge_ids |= {
            str(getattr(m.spec, "judge", None))
            for m in wanted
            if m.needs_judge and getattr(m.spec, "judge", None)
        }
        judges: dict[str, _Judge] = {}
        for model_id in sorted(judge_ids):
            found = self._judges.get((c.workspace_id, model_id))
            if found is None:
                found = await db(self._judge, c.workspace_id, model_id)
            if isinstance(found, Problem):
                await self._retry_or_fail(c, f"judge '{model_id}': {found.message}", [])
                return Outcome.FAILED
            judges[model_id] = found
        budgets = OnlineBudgets(
            self.engine, c.workspace_id, clock=self.clock, limits=batch.limits.get(c.workspace_id)
        )
        extra: tuple[Window, ...] = ()
        if c.job_id is not None:  # a backfill's entry: its own budget too
            limit, _ = await self._terms(c.job_id)
            if limit is not None:
                extra = (Window(f"backfill:{c.job_id}", "total", _EPOCH, limit),)
        gate = _BudgetGate(budgets, spec, {k: j.price for k, j in judges.items()}, extra)
        judging = Judging(
            {k: j.client for k, j in judges.items()},
            {k: j.spec for k, j in judges.items()},
            gate,
            cache=self._cache.setdefault(c.workspace_id, {}),
        )
        default = judges.get(spec.judge) if spec.judge else None
        scores: list[dict[str, Any]] = []
        errors: list[str] = []
        for metric in wanted:
            own = getattr(metric.spec, "judge", None)
            judge = judges.get(own) if own else default
            scored = await judging.score(metric, ctx, judge.spec if judge else None)
            r = scored.result
            reply = r.judge
            scores.append(
                {
                    "workspace_id": c.workspace_id,
                    "trace_id": c.trace_id,
                    "span_id": c.span_id,
                    "source": "online",
                    "rule_version": c.rule_version,
                    "metric_id": version.metric_ids[metric.name],
                    "value": r.value,
                    "normalized": r.normalized,
                    "passed": r.passed,
                    "reasoning": r.reasoning,
                    "error": r.error,
                    "judge_model": reply.model if reply else None,
                    "judge_output": reply.text if reply else None,
                    "judge_cache_key": scored.keys[-1] if scored.keys else None,
                    "judge_input_tokens": reply.input_tokens if reply else None,
                    "judge_output_tokens": reply.output_tokens if reply else None,
                    "judge_cost_usd": reply.cost_usd if reply else None,
                    "judge_cached": reply.cached if reply else False,
                    "details": {"rule": rule.name, **(r.details or {})},
                }
            )
            if r.error is not None:
                errors.append(f"{metric.name}: {r.error}")
            if gate.refused is not None:
                break  # no further call could be made within the budget
        cost = gate.spent or None
        if gate.refused is not None:
            kept = [s for s in scores if s["error"] is None]
            age = (self.clock() - c.created_at).total_seconds() if c.created_at else 0.0
            if gate.busy and not kept and age < BUSY_WAIT_S:
                # what is spent leaves room: the calls in flight settle below their bounds
                # within seconds, so wait for them rather than give the span up
                await self._finish(
                    c,
                    Outcome.PENDING,
                    f"waiting: {gate.refused}",
                    cost_usd=cost,
                    dedup_key=key,
                    not_before=self.clock() + timedelta(seconds=1),
                    not_an_attempt=True,
                )
                return Outcome.PENDING
            await self._finish(
                c,
                Outcome.OVER_BUDGET,
                f"not judged: {gate.refused} (no call was made"
                + (f"; {len(kept)} metric(s) judged before it" if kept else "")
                + ")",
                cost_usd=cost,
                dedup_key=key,
                scores=kept,
            )
            return Outcome.OVER_BUDGET
        if errors:
            await self._retry_or_fail(c, "; ".join(errors), scores, cost)
            return Outcome.FAILED if c.attempts >= MAX_ATTEMPTS else Outcome.PENDING
        await self._finish(
            c,
            Outcome.EVALUATED,
            f"judged by {', '.join(sorted(judges)) or 'heuristics'}: "
            + ", ".join(f"{s['metric_name']}={_show(s)}" for s in _named(scores, version))
            if scores
            else "every metric was judged already",
            cost_usd=cost,
            dedup_key=key,
            scores=scores,
        )
        self.judged += 1
        return Outcome.EVALUATED


_EPOCH = datetime(2000, 1, 1, tzinfo=utcnow().tzinfo)


def _backfill_terms(engine: Engine, job_id: int) -> tuple[float | None, bool]:
    with engine.connect() as conn:
        return q.backfill_terms(conn, job_id)


class _LostClaim(Exception):
    """The entry's lease passed and another worker claimed it while this one judged."""


def _key(c: q.Claimed | q.SpanFacts) -> tuple[int, str, str]:
    return (c.workspace_id, c.trace_id, c.span_id)


def _score_copy(s: Mapping[str, Any]) -> dict[str, Any]:
    keep = (
        "workspace_id",
        "metric_id",
        "source",
        "value",
        "normalized",
        "passed",
        "reasoning",
        "error",
        "judge_model",
        "judge_output",
        "judge_cache_key",
        "judge_input_tokens",
        "judge_output_tokens",
    )
    return {k: s.get(k) for k in keep}


def _named(scores: list[dict[str, Any]], version: _Version) -> list[dict[str, Any]]:
    names = {v: k for k, v in version.metric_ids.items()}
    return [{**s, "metric_name": names.get(s["metric_id"], "?")} for s in scores]


def _show(s: Mapping[str, Any]) -> str:
    if s.get("value") is not None:
        return f"{s['value']:g}"
    if s.get("passed") is not None:
        return "pass" if s["passed"] else "fail"
    return "-"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


# --- tasks ----------------------------------------------------------------------------------


@TASKS.task("online_tick", every_s=1.0, lock=lambda kwargs: "online_tick")
async def online_tick(ctx: TaskContext) -> SelectStats:
    """Select new spans, let go of entries whose worker died, wake the judging tasks."""
    stats = await asyncio.to_thread(select_new, ctx.engine, ctx.settings)
    if stats.due and ctx.defer is not None:
        for slot in range(ctx.settings.online_workers):
            await ctx.defer("online_evaluate", slot=slot)
    return stats


@TASKS.task(
    "online_evaluate",
    lock=lambda kwargs: f"online_evaluate:{kwargs.get('slot', 0)}",
    exclusive=False,  # entries are claimed row by row: copies may judge side by side
)
async def online_evaluate(ctx: TaskContext, slot: int = 0) -> int:
    """Judge due entries for a while (one copy per slot is queued at a time)."""
    evaluator = OnlineEvaluator(ctx.engine, ctx.settings, ctx.env)
    try:
        return await evaluator.drain()
    finally:
        await evaluator.aclose()
