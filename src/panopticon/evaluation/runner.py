"""The async engine: runs a plan's cases, scores the answers, and saves as it goes.

One pool of workers per model, as many as the model's concurrency limit; each worker takes
the next case, gets its answer (from this run's stored results, the cache, or the provider),
saves it at once, then scores it. Nothing is kept only in memory: the sink is the
checkpoint, which is why a resumed run never pays twice for an answer it already has.

Stopping: :meth:`StopSignal.request` stops new calls (Ctrl-C, budget); calls in flight
finish and are saved. :meth:`Runner.cancel` abandons them (a second Ctrl-C); each is saved as
an ``interrupted`` failure, which a resume retries.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from panopticon.evaluation.judging import CallEstimate, Judging
from panopticon.evaluation.plan import Case, KnownResult, Plan
from panopticon.evaluation.records import PairwiseRecord, ResultRecord, ResultSink, ScoreRecord
from panopticon.evaluation.suite import LoadedSuite, ModelSpec
from panopticon.judges.base import Metric, MetricContext
from panopticon.providers.base import ChatRequest, ChatResponse
from panopticon.providers.client import ModelClient
from panopticon.providers.pricing import Price

if TYPE_CHECKING:  # imported by the pairwise phase, which only a pairwise metric has
    from panopticon.judges.pairwise import PairwiseMetric

__all__ = ["Budget", "RunObserver", "RunTotals", "Runner", "StopSignal"]


class StopSignal:
    """Once requested, no new provider call starts. ``kind``: interrupt or budget."""

    def __init__(self) -> None:
        self.requested = False
        self.kind: str | None = None
        self.reason: str | None = None

    def request(self, kind: str, reason: str) -> None:
        if not self.requested:
            self.requested, self.kind, self.reason = True, kind, reason


class Budget:
    def __init__(self, limit_usd: float | None) -> None:
        self.limit = limit_usd
        self.spent = 0.0

    def add(self, cost: float | None) -> None:
        if cost:
            self.spent += cost

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.spent >= self.limit


@dataclass
class RunTotals:
    planned: int = 0
    answered: int = 0  # answers from a provider call in this execution
    reused: int = 0  # answers already stored in this run (resume) or another (cache)
    failed: int = 0
    interrupted: int = 0
    scores: int = 0
    score_errors: int = 0
    pairs: int = 0  # pairwise judgements (each in both orders)
    pair_errors: int = 0
    calls: int = 0  # provider requests that left the process, judges included
    spent_usd: float = 0.0
    unknown_cost_calls: int = 0

    @property
    def not_run(self) -> int:
        return self.planned - self.answered - self.reused - self.failed


class RunObserver:
    """Progress callbacks (all optional). Called on the event loop; keep them cheap."""

    def on_result(self, record: ResultRecord, reused: bool) -> None:
        return None

    def on_score(self, record: ScoreRecord) -> None:
        return None

    def on_spend(self, total_usd: float) -> None:
        return None

    def on_pairs_planned(self, count: int) -> None:
        """The pairwise phase starts with ``count`` pairs to judge."""
        return None

    def on_pair(self, record: PairwiseRecord) -> None:
        return None


class Runner:
    def __init__(
        self,
        plan: Plan,
        loaded: LoadedSuite,
        sink: ResultSink,
        clients: dict[str, ModelClient],
        metrics: list[Metric],
        *,
        observer: RunObserver | None = None,
        stop: StopSignal | None = None,
        budget: Budget | None = None,
        use_cache: bool = True,
    ) -> None:
        self.plan = plan
        self.loaded = loaded
        self.sink = sink
        self.clients = clients
        self.metrics = metrics
        self.observer = observer or RunObserver()
        self.stop = stop or StopSignal()
        self.budget = budget or Budget(loaded.suite.budget_usd)
        self.use_cache = use_cache
        self.totals = RunTotals(planned=len(plan.cases))
        self._tasks: list[asyncio.Task[None]] = []
        # (query id, repeat) -> model (or model@prompt) -> (answer, case): what pairwise
        # judges compare
        self._answers: dict[tuple[int, int], dict[str, tuple[KnownResult, Case]]] = defaultdict(
            dict
        )
        self._judges: dict[str, ModelSpec] = {}
        self._specs = {m.id: m for m in loaded.models + loaded.judge_models}
        for metric in metrics:
            if metric.needs_judge:
                own = getattr(metric.spec, "judge", None)
                judge = self._specs.get(own) if own else loaded.judge
                if judge is not None:
                    self._judges[metric.name] = judge
        self.judging = Judging(
            clients, self._specs, _RunGate(self), cache=plan.judge_cache, reuse=use_cache
        )

    async def run(self) -> RunTotals:
        queues: dict[str, deque[Case]] = defaultdict(deque)
        for case in self.plan.cases:
            queues[case.model.id].append(case)
        for model_id, queue in queues.items():
            workers = min(self.clients[model_id].limiter.maximum, len(queue))
            self._tasks += [asyncio.create_task(self._worker(queue)) for _ in range(workers)]
        await self._gather()
        if any(m.pairwise for m in self.metrics) and not self.stop.requested:
            self._tasks = []
            await self._pairwise_phase()
        return self.totals

    async def _gather(self) -> None:
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                raise r

    def cancel(self) -> None:
        """Abandon the calls in flight (each is saved as an interrupted failure)."""
        for task in self._tasks:
            task.cancel()

    async def _worker(self, queue: deque[Case]) -> None:
        while queue and not self.stop.requested:
            await self._process(queue.popleft())

    # --- answers --------------------------------------------------------------------------
    async def _process(self, case: Case) -> None:
        known = self.plan.done.get(case.slot)
        if known is not None:
            self.totals.reused += 1
        else:
            hit = self.plan.cache.get(case.cache_key) if self.use_cache else None
            if hit is not None:
                known = self._reuse(case, hit)
            else:
                if self.budget.exhausted:
                    self.stop.request(
                        "budget",
                        f"the budget of ${self.budget.limit:g} was "
                        f"reached (spent ${self.budget.spent:.4f})",
                    )
                    return
                known = await self._call(case)
                if known is None:
                    return
        self._answers[(case.query_id, case.repeat)][case.arm] = (known, case)
        if self.stop.requested:
            return  # scoring is more paid calls: a resume scores what is left
        await self._score_all(case, known)

    def _reuse(self, case: Case, hit: KnownResult) -> KnownResult:
        record = self._record(
            case,
            response_text=hit.response_text,
            finish_reason=hit.finish_reason,
            latency_ms=hit.latency_ms,
            input_tokens=hit.input_tokens,
            output_tokens=hit.output_tokens,
            cost_usd=hit.cost_usd,
            cached=True,
        )
        self.sink.save_result(record)
        self.totals.reused += 1
        self.observer.on_result(record, True)
        return _known(record)

    def _record(self, case: Case, **fields: Any) -> ResultRecord:
        """The record of this case's answer (or failure): who, what was asked, then
        ``fields``."""
        request = {
            "model": case.model.provider_model,
            "messages": case.messages,
            "params": case.params,
        }
        return ResultRecord(
            run_id=self.plan.run_id,
            query_id=case.query_id,
            model_id=case.model_id,
            repeat=case.repeat,
            cache_key=case.cache_key,
            request=request,
            prompt=None if case.prompt.is_default else case.prompt.id,
            prompt_hash=None if case.prompt.is_default else case.prompt.content_hash,
            **fields,
        )

    async def _call(self, case: Case) -> KnownResult | None:
        client = self.clients[case.model.id]
        request = ChatRequest(case.model.provider_model, case.messages, case.params)
        estimate = sum(len(m["content"]) for m in case.messages) // 4 + int(
            case.params.get("max_tokens") or 0
        )
        record = self._record(case)
        try:
            outcome = await client.call(request, estimate)
        except asyncio.CancelledError:
            record.error = (
                "interrupted while the call was in flight (the provider may have "
                "billed it); a resume sends it again"
            )
            record.error_kind = "interrupted"
            self.sink.save_result(record)
            self.totals.interrupted += 1
            self.totals.failed += 1
            raise
        record.attempts = outcome.attempts
        self.totals.calls += outcome.attempts
        response = outcome.response
        if response is None:
            assert outcome.error is not None
            record.error = outcome.error.message
            record.error_kind = outcome.error.kind
            self.sink.save_result(record)
            self.totals.failed += 1
            self.observer.on_result(record, False)
            return None
        record.response_text = response.text
        record.finish_reason = response.finish_reason
        record.latency_ms = outcome.latency_ms
        record.input_tokens = response.input_tokens
        record.output_tokens = response.output_tokens
        record.cost_usd = self._cost(
            self.loaded.prices.get(case.model.id),
            case.model,
            response.input_tokens,
            response.output_tokens,
        )
        self.sink.save_result(record)
        self.totals.answered += 1
        self.observer.on_result(record, False)
        return _known(record)

    def _cost(
        self,
        price: Price | None,
        model: ModelSpec,
        input_tokens: int | None,
        output_tokens: int | None,
    ) -> float | None:
        if model.provider == "fake":
            return 0.0
        cost = price.cost(input_tokens, output_tokens) if price else None
        if cost is None:
            self.totals.unknown_cost_calls += 1
        else:
            self.budget.add(cost)
            self.totals.spent_usd += cost
            self.observer.on_spend(self.totals.spent_usd)
        return cost

    # --- scores ---------------------------------------------------------------------------
    async def _score_all(self, case: Case, known: KnownResult) -> None:
        ctx = MetricContext(
            query=case.query.text,
            response=known.response_text,
            messages=case.messages,
            theme=case.query.theme,
            expected=case.query.expected,
            context=case.query.context,
            metadata=case.query.metadata,
            latency_ms=known.latency_ms,
            cost_usd=known.cost_usd,
            input_tokens=known.input_tokens,
            output_tokens=known.output_tokens,
        )
        applies = {m.name for m in self.loaded.metrics_for(case.query)}
        for metric in self.metrics:
            metric_id = self.plan.metric_ids[metric.name]
            if metric_id in known.scored or metric.pairwise:
                continue
            if metric.name not in applies:
                continue  # a metric of other queries only
            scored = await self.judging.score(metric, ctx, self._judges.get(metric.name))
            if scored.not_sent:
                continue  # never sent: not done, not failed; the resume judges it
            result, keys = scored.result, scored.keys
            reply = result.judge
            record = ScoreRecord(
                run_id=self.plan.run_id,
                result_id=known.id,
                metric_id=metric_id,
                value=result.value,
                normalized=result.normalized,
                passed=result.passed,
                reasoning=result.reasoning,
                error=result.error,
                judge_model=reply.model if reply else None,
                judge_output=reply.text if reply else None,
                judge_cache_key=keys[-1] if keys else None,
                judge_input_tokens=reply.input_tokens if reply else None,
                judge_output_tokens=reply.output_tokens if reply else None,
                judge_cost_usd=reply.cost_usd if reply else None,
                judge_cached=reply.cached if reply else False,
                details=result.details,
                model_id=case.model_id,
                query_id=case.query_id,
            )
            self._add_failed_spend(record, ("score", known.id, metric_id))
            self.sink.save_score(record)
            self.totals.scores += 1
            if record.error is not None:
                self.totals.score_errors += 1
            self.observer.on_score(record)

    # --- pairwise ---------------------------------------------------------------------------
    def _pair_jobs(self) -> list[_PairJob]:
        from panopticon.judges.pairwise import PairwiseMetric

        order = [a.id for a in self.loaded.arm_models()] or [m.id for m in self.loaded.models]
        jobs = []
        for metric in self.metrics:
            if not isinstance(metric, PairwiseMetric):
                continue
            metric_id = self.plan.metric_ids[metric.name]
            wanted = set(metric.spec.models or [])
            allowed = [
                a for a in order if not wanted or a in wanted or a.rsplit("@", 1)[0] in wanted
            ]
            scoped = self.loaded.suite_metrics
            for (query_id, repeat), answers in self._answers.items():
                present = [m for m in order if m in answers and m in allowed]
                if (
                    scoped is not None
                    and metric.name not in scoped
                    and present
                    and metric.name not in answers[present[0]][1].query.metrics
                ):
                    continue
                for i, a in enumerate(present):
                    for b in present[i + 1 :]:
                        key = (
                            metric_id,
                            query_id,
                            repeat,
                            answers[a][1].model_id,
                            answers[b][1].model_id,
                        )
                        if key not in self.plan.pairwise_done:
                            jobs.append(_PairJob(metric, answers[a], answers[b]))
        return jobs

    async def _pairwise_phase(self) -> None:
        jobs = deque(self._pair_jobs())
        if not jobs:
            return
        self.observer.on_pairs_planned(len(jobs))
        width = max(self.clients[self._judges[j.metric.name].id].limiter.maximum for j in jobs)

        async def worker() -> None:
            while jobs and not self.stop.requested:
                await self._judge_pair(jobs.popleft())

        self._tasks = [asyncio.create_task(worker()) for _ in range(min(width, len(jobs)))]
        await self._gather()

    async def _judge_pair(self, job: _PairJob) -> None:
        (known_a, case_a), (known_b, case_b) = job.a, job.b
        keys: list[str] = []
        refused: list[str] = []
        verdict = await job.metric.judge_pair(
            case_a.query.text,
            known_a.response_text,
            known_b.response_text,
            self.judging.call_for(self._judges.get(job.metric.name), keys, refused),
        )
        if refused:
            return  # never sent: not done, not failed; the resume judges the pair
        replies = [r for r in verdict.replies if r.error is None]
        cached = bool(replies) and all(r.cached for r in replies)
        # what this judgement cost: every answer when all came from the cache (as a cached
        # score records its cost), else only the answers paid for now (they are the spend)
        costs = [r.cost_usd for r in replies if cached or not r.cached]
        record = PairwiseRecord(
            run_id=self.plan.run_id,
            metric_id=self.plan.metric_ids[job.metric.name],
            query_id=case_a.query_id,
            repeat=case_a.repeat,
            model_a_id=case_a.model_id,
            model_b_id=case_b.model_id,
            result_a_id=known_a.id,
            result_b_id=known_b.id,
            verdict_ab=verdict.verdict_ab,
            verdict_ba=verdict.verdict_ba,
            final=verdict.final,
            reasoning_ab=verdict.reasoning_ab,
            reasoning_ba=verdict.reasoning_ba,
            judge_key_ab=keys[0] if keys else None,
            judge_output_ab=verdict.replies[0].text if verdict.replies else None,
            judge_key_ba=keys[1] if len(keys) > 1 else None,
            judge_output_ba=verdict.replies[1].text if len(verdict.replies) > 1 else None,
            judge_model=replies[0].model if replies else None,
            judge_input_tokens=sum(r.input_tokens or 0 for r in replies) if replies else None,
            judge_output_tokens=sum(r.output_tokens or 0 for r in replies) if replies else None,
            judge_cost_usd=None if any(c is None for c in costs) else sum(c or 0 for c in costs),
            judge_cached=cached,
            error=verdict.error,
        )
        self._add_failed_spend(
            record,
            (
                "pair",
                record.metric_id,
                record.query_id,
                record.repeat,
                record.model_a_id,
                record.model_b_id,
            ),
        )
        self.sink.save_pairwise(record)
        self.totals.pairs += 1
        if verdict.error is not None:
            self.totals.pair_errors += 1
        self.observer.on_pair(record)

    def _add_failed_spend(self, record: ScoreRecord | PairwiseRecord, key: tuple[Any, ...]) -> None:
        """A retried judgement replaces the failed one's row: carry over what that cost."""
        prior = self.plan.failed_spend.pop(key, None)
        if prior:
            now = 0.0 if record.judge_cached else record.judge_cost_usd or 0.0
            record.judge_cost_usd = prior + now
            record.judge_cached = False


def _known(record: ResultRecord) -> KnownResult:
    """What scoring needs of an answer just saved."""
    return KnownResult(
        record.id,
        record.response_text or "",
        record.finish_reason,
        record.latency_ms,
        record.input_tokens,
        record.output_tokens,
        record.cost_usd,
    )


class _PairJob(NamedTuple):
    metric: PairwiseMetric
    a: tuple[KnownResult, Case]
    b: tuple[KnownResult, Case]


class _RunGate:
    """A run's judge calls: none starts once the run is stopping or its budget is spent;
    each one's requests and cost count in the run's totals and budget."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def open(self, spec: ModelSpec, estimate: CallEstimate) -> str | None:
        r = self.runner
        if r.budget.exhausted:
            r.stop.request(
                "budget",
                f"the budget of ${r.budget.limit:g} was reached (spent ${r.budget.spent:.4f})",
            )
        if r.stop.requested:
            return "not sent: the run is stopping"
        return None

    async def close(
        self,
        spec: ModelSpec,
        estimate: CallEstimate,
        response: ChatResponse | None,
        attempts: int,
    ) -> float | None:
        r = self.runner
        r.totals.calls += attempts
        if response is None:
            return None
        return r._cost(
            r.loaded.prices.get(spec.id), spec, response.input_tokens, response.output_tokens
        )
