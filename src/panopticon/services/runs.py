"""Running a suite: prepare (validate, register, plan, resume state), execute, finish.

Shared by the CLI and, later, the API and workers. Interfaces add only their own concerns
(signals, progress display, HTTP).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from panopticon.errors import ConfigError, Issue, StoreError
from panopticon.evaluation.endpoints import Access, build_client
from panopticon.evaluation.plan import Plan, build_cases
from panopticon.evaluation.runner import Budget, Runner, RunObserver, RunTotals, StopSignal
from panopticon.evaluation.suite import LoadedSuite, ModelSpec, load_suite
from panopticon.judges.base import build_metric
from panopticon.providers.client import ModelClient
from panopticon.providers.pricing import known_cost
from panopticon.services.metric_kinds import run_kinds
from panopticon.settings import Settings
from panopticon.store.engine import Engine, create_engine, ensure_schema, retry_on_race
from panopticon.store.limits import SharedBucket, bucket_key
from panopticon.store.queries import catalog
from panopticon.store.queries import outcomes as outcome_queries
from panopticon.store.queries import prompts as prompt_queries
from panopticon.store.queries import runs as run_queries
from panopticon.store.sink import StoreSink
from panopticon.store.spool import replay as replay_spool

if TYPE_CHECKING:  # the statistics are imported when the run has finished
    from panopticon.stats.summary import Summary

__all__ = [
    "Execution",
    "RunSummaryTotals",
    "open_store",
    "pairwise_results",
    "prepare_run",
    "store",
    "totals_of",
]

STALE_AFTER = timedelta(seconds=30)


def open_store(settings: Settings) -> Engine:
    """An engine on a schema that matches the code (the embedded SQLite is upgraded).
    The caller disposes of it; :func:`store` does so for you."""
    engine = create_engine(settings)
    try:
        ensure_schema(engine, auto_upgrade=settings.is_sqlite)
    except BaseException:
        engine.dispose()
        raise
    return engine


@contextmanager
def store(settings: Settings) -> Iterator[Engine]:
    engine = open_store(settings)
    try:
        yield engine
    finally:
        engine.dispose()


@dataclass
class RunSummaryTotals:
    """Totals over the whole run (every execution of it), read back from the store."""

    planned: int
    answers: int
    failed: int
    interrupted: int
    reused: int
    scores: int
    score_errors: int
    cost_usd: float | None  # the priced part; None when nothing is priced (known_cost)
    unknown_cost: int
    input_tokens: int
    output_tokens: int
    pairs: int = 0  # pairwise judgements made (each in both orders)
    pair_errors: int = 0

    @property
    def missing(self) -> int:
        return self.planned - self.answers - self.failed


def read_totals(engine: Engine, run_id: int, planned: int) -> RunSummaryTotals:
    with engine.connect() as conn:
        return totals_of(outcome_queries.run_counts(conn, run_id), planned)


def totals_of(counts: outcome_queries.RunCounts, planned: int) -> RunSummaryTotals:
    """A run's totals from its counts (``run_counts``, read in the caller's connection)."""
    return RunSummaryTotals(
        planned=planned,
        answers=counts.answers,
        failed=counts.failed,
        interrupted=counts.interrupted,
        reused=counts.reused,
        scores=counts.scores,
        score_errors=counts.score_errors,
        cost_usd=known_cost(counts.cost_usd, counts.unknown_cost),
        unknown_cost=counts.unknown_cost,
        input_tokens=counts.input_tokens,
        output_tokens=counts.output_tokens,
        pairs=counts.pairs,
        pair_errors=counts.pair_errors,
    )


@dataclass
class Execution:
    """A prepared run: call :meth:`run` once. ``stop`` and ``runner`` are for interfaces."""

    engine: Engine
    settings: Settings
    loaded: LoadedSuite
    run_id: int
    plan: Plan
    resumed: bool
    use_cache: bool
    stop: StopSignal = field(default_factory=StopSignal)
    runner: Runner | None = None
    status: str = "pending"
    stop_reason: str | None = None
    totals: RunTotals | None = None
    run_totals: RunSummaryTotals | None = None
    # (k, n): this execution runs the k-th of n slices of the run's queries, next to other
    # executions running the others; the run's own status is then left to the caller
    shard: tuple[int, int] | None = None

    def scores_wanted(self) -> dict[int, frozenset[int]]:
        """The metric ids that score each query's answers (with per-query metrics, not every
        one: the runner's rule, LoadedSuite.metrics_for); pairwise ones apart."""
        wanted: dict[int, frozenset[int]] = {}
        for case in self.plan.cases:
            if case.query_id not in wanted:
                wanted[case.query_id] = frozenset(
                    self.plan.metric_ids[m.name]
                    for m in self.loaded.metrics_for(case.query)
                    if m.type != "pairwise"
                )
        return wanted

    def scores_planned(self) -> int:
        """The scores the run makes when every answer is in (pairwise judgements apart)."""
        wanted = self.scores_wanted()
        return sum(len(wanted[c.query_id]) for c in self.plan.cases)

    async def run(self, observer: RunObserver | None = None) -> str:
        """Execute the plan; returns the final status. Never leaves the run 'running'.
        The database work before and after the calls runs in a thread, so that a server
        running this never stops answering while it waits on the store."""
        clients: dict[str, ModelClient] = {}
        try:
            clients = self._clients()
            sink = await asyncio.to_thread(
                StoreSink, self.engine, self.run_id, spool_dir=self.settings.home / "spool"
            )
            sink.on_failure = lambda message: self.stop.request("store", message)
            metrics = [build_metric(spec) for spec in self.loaded.metrics]
            budget = Budget(self._budget())
            if self.resumed and budget.limit is not None:
                # the budget is the run's, across every execution of it: count what was spent
                totals = await asyncio.to_thread(
                    read_totals, self.engine, self.run_id, len(self.plan.cases)
                )
                spent = totals.cost_usd or 0.0
                budget.spent = spent / self.shard[1] if self.shard is not None else spent
            self.runner = Runner(
                self.plan,
                self.loaded,
                sink,
                clients,
                metrics,
                observer=observer,
                stop=self.stop,
                budget=budget,
                use_cache=self.use_cache,
            )
            await asyncio.to_thread(self._start)
        except BaseException as exc:
            # nothing was sent: the run is recorded failed with its error (never left
            # 'pending'), and a resume starts it again once the cause is fixed
            for client in clients.values():
                await client.aclose()
            await asyncio.to_thread(self._start_failed, exc)
            raise
        error: BaseException | None = None
        try:
            self.totals = await self.runner.run()
        except BaseException as exc:  # recorded below, then re-raised
            error = exc
            raise
        finally:
            store_error = None
            try:
                await asyncio.to_thread(sink.close)
            except StoreError as exc:
                store_error = exc
            for client in clients.values():
                await client.aclose()
            await asyncio.to_thread(self._finish, error, store_error)
            if store_error is not None and error is None:
                raise store_error
        return self.status

    def _start_failed(self, error: BaseException) -> None:
        detail = (
            str(error) if isinstance(error, ConfigError) else f"{type(error).__name__}: {error}"
        )
        self.status, self.stop_reason = "failed", f"could not start: {detail}"
        if self.shard is not None:
            return  # a slice's outcome: the caller writes the run's status
        totals = read_totals(self.engine, self.run_id, len(self.plan.cases))
        self.run_totals = totals
        with self.engine.begin() as conn:
            run_queries.finish_run(
                conn,
                self.run_id,
                self.status,
                self.stop_reason,
                {k: getattr(totals, k) for k in totals.__dataclass_fields__},
            )

    def _start(self) -> None:
        with self.engine.begin() as conn:
            run_queries.start_run(conn, self.run_id, os.getpid())

    def _clients(self) -> dict[str, ModelClient]:
        suite = self.loaded.suite
        clients: dict[str, ModelClient] = {}
        specs: list[tuple[ModelSpec, int]] = [
            (m, m.concurrency or suite.concurrency) for m in suite.models
        ]
        for judge in self.loaded.judge_models:
            # one judge serves every model's workers
            specs.append((judge, judge.concurrency or suite.concurrency * len(suite.models)))
        for spec, concurrency in specs:
            clients[spec.id] = build_client(
                spec,
                self.loaded.endpoints[spec.id],
                self.loaded.egress,
                concurrency=concurrency,
                rpm=self._bucket("rpm", spec, spec.rpm),
                tpm=self._bucket("tpm", spec, spec.tpm),
                should_stop=lambda: self.stop.requested,
            )
        return clients

    def _bucket(self, kind: str, spec: ModelSpec, per_minute: int | None) -> SharedBucket | None:
        """RPM and TPM hold across every process on this store (workers, API, CLI runs):
        one account's limit on one model is one row, whoever spends it."""
        if not per_minute:
            return None
        endpoint = self.loaded.endpoints[spec.id]
        identity = {  # hashed: the row's key never holds the API key
            "provider": endpoint.kind,
            "base_url": endpoint.base_url,
            "model": spec.provider_model,
            "key": endpoint.api_key or endpoint.key_source,
        }
        return SharedBucket(self.engine, bucket_key(kind, identity), per_minute)

    def _budget(self) -> float | None:
        budget = self.loaded.suite.budget_usd
        if budget is None or self.shard is None:
            return budget
        return budget / self.shard[1]  # each slice may spend its share, so all stay within

    def _finish(self, error: BaseException | None, store_error: StoreError | None) -> None:
        if self.shard is not None:
            self._finish_shard(error, store_error)
            return
        totals = read_totals(self.engine, self.run_id, len(self.plan.cases))
        self.run_totals = totals
        reason: str | None
        if self.stop.kind == "interrupt" or (
            error is not None and not isinstance(error, Exception)
        ):
            status, reason = "interrupted", self.stop.reason or "interrupted"
        elif self.stop.kind == "budget":
            status, reason = "stopped", self.stop.reason
            limit = self._budget()
            if reason and limit is not None and (totals.cost_usd or 0.0) > limit:
                # the reason's spend is the one that stopped the run; the calls then in
                # flight finished past it, and the run's total (printed beside) says more
                reason += (
                    f"; with the calls in flight then, the run spent ${totals.cost_usd:.4f} in all"
                )
        elif store_error is not None or self.stop.kind == "store":
            status, reason = "failed", str(store_error or self.stop.reason)
        elif error is not None:
            status, reason = "failed", f"{type(error).__name__}: {error}"
        elif totals.failed or totals.missing:
            status = "failed"
            reason = f"{totals.failed} of {totals.planned} answers failed"
            first = self._first_error()
            if first:
                reason += f"; first error: {first}"
        else:
            status, reason = "completed", None
        if status == "completed" and (totals.score_errors or totals.pair_errors):
            with self.engine.connect() as conn:
                for outcome in outcome_queries.metric_outcomes(conn, self.run_id):
                    if outcome.valid == 0 and outcome.errors:
                        # every score of this metric failed: no number to show for it
                        status = "failed"
                        reason = (
                            f"metric '{outcome.metric}' has no valid score ({outcome.errors} "
                            f"errors; first: {outcome.first_error})"
                        )
                        break
        self.status, self.stop_reason = status, reason
        with self.engine.begin() as conn:
            run_queries.finish_run(
                conn,
                self.run_id,
                status,
                reason,
                {k: getattr(totals, k) for k in totals.__dataclass_fields__},
            )

    def _finish_shard(self, error: BaseException | None, store_error: StoreError | None) -> None:
        """A slice's outcome; the run's status is written once every slice is done."""
        totals = self.runner.totals if self.runner is not None else None
        if self.stop.kind == "interrupt" or (
            error is not None and not isinstance(error, Exception)
        ):
            self.status, self.stop_reason = "interrupted", self.stop.reason or "interrupted"
        elif self.stop.kind is not None or store_error is not None or error is not None:
            self.status = "failed"
            self.stop_reason = str(store_error or self.stop.reason or error)
        elif totals is not None and totals.failed:
            self.status = "failed"
            self.stop_reason = f"{totals.failed} of {totals.planned} answers failed"
        else:
            self.status, self.stop_reason = "completed", None

    def _first_error(self) -> str | None:
        with self.engine.connect() as conn:
            return outcome_queries.first_error(conn, self.run_id)


def prepare_run(
    settings: Settings,
    suite_path: str | Path,
    *,
    env: Mapping[str, str],
    resume: str | None = None,
    use_cache: bool = True,
    engine: Engine | None = None,
    check: Callable[[LoadedSuite], None] | None = None,
    select: Callable[[LoadedSuite], LoadedSuite] | None = None,
) -> Execution:
    """Validate the suite, register what it uses, create (or reopen) the run and plan it.
    ``select`` may choose part of the suite (``--filter``, ``--limit``); ``check`` may refuse
    the suite it chose (raising ConfigError) before anything is stored.
    Raises ConfigError, StoreError or NotFoundError before any provider call.

    The suite file is the CLI user's: it may name any variable of ``env`` and any base
    URL (egress rules still hold), and use the credentials and providers of the
    settings' workspace (:mod:`panopticon.evaluation.endpoints`)."""
    from panopticon.services.registry import WorkspaceDirectory

    own_engine = engine is None
    engine = engine or open_store(settings)
    try:
        with engine.begin() as conn:
            ws = catalog.ensure_workspace(conn, settings.workspace)
        loaded = load_suite(
            suite_path,
            env,
            access=Access.cli(settings),
            directory=WorkspaceDirectory(engine, ws, settings),
        )
        if select is not None:
            loaded = select(loaded)
        if check is not None:
            check(loaded)
        return prepare_loaded(settings, engine, loaded, str(suite_path), resume, use_cache)
    except BaseException:
        if own_engine:
            engine.dispose()
        raise


def load_for_dry_run(
    settings: Settings,
    suite_path: str | Path,
    *,
    env: Mapping[str, str],
    select: Callable[[LoadedSuite], LoadedSuite] | None = None,
) -> LoadedSuite:
    """The suite validated as :func:`prepare_run` would (the workspace's registered
    models and providers, and the rule that a suite never changes a registered model),
    reading the store only: nothing is created, upgraded or written. Without a store yet,
    the suite alone is validated."""
    from panopticon.errors import NotFoundError
    from panopticon.services.registry import WorkspaceDirectory
    from panopticon.store.queries.cache import existing_store

    engine = existing_store(settings)
    try:
        ws = None
        if engine is not None:
            with engine.connect() as conn:
                try:
                    ws = catalog.ensure_workspace(conn, settings.workspace, create=False)
                except NotFoundError:
                    ws = None
        directory = (
            WorkspaceDirectory(engine, ws, settings)
            if engine is not None and ws is not None
            else None
        )
        loaded = load_suite(suite_path, env, access=Access.cli(settings), directory=directory)
        if select is not None:
            loaded = select(loaded)
        if engine is not None and ws is not None:
            with engine.connect() as conn:
                issues = catalog.registered_conflicts(
                    conn, ws, loaded.models + loaded.judge_models, loaded.prices
                )
            if issues:
                raise ConfigError(issues)
        return loaded
    finally:
        if engine is not None:
            engine.dispose()


def prepare_loaded(
    settings: Settings,
    engine: Engine,
    loaded: LoadedSuite,
    suite_path: str | None,
    resume: str | None,
    use_cache: bool,
    shard: tuple[int, int] | None = None,
) -> Execution:
    """Register what the suite uses, create (or reopen) the run and plan it, in one
    transaction. Two processes starting at once may both try to register the same model or
    query: the loser of that race tries again and finds the winner's rows. Records left in
    the spool by a run that lost its database are stored first, so that they count as done
    (a resume) or cached (a new run) and are never paid for again."""
    replay_spool(engine, settings.home / "spool")
    return retry_on_race(
        lambda: _prepare(settings, engine, loaded, suite_path, resume, use_cache, shard)
    )


def _prepare(
    settings: Settings,
    engine: Engine,
    loaded: LoadedSuite,
    suite_path: str | None,
    resume: str | None,
    use_cache: bool,
    shard: tuple[int, int] | None,
) -> Execution:
    with engine.begin() as conn:
        ws = catalog.ensure_workspace(conn, settings.workspace)
        all_models = loaded.models + loaded.judge_models
        model_ids = catalog.upsert_models(conn, ws, all_models, loaded.prices)
        arms = loaded.arm_models()
        if arms:  # with prompt variants, each model@prompt is compared as a model of its own
            model_ids |= catalog.upsert_models(
                conn, ws, arms, {a.id: loaded.prices.get(a.id.rsplit("@", 1)[0]) for a in arms}
            )
        metric_ids = catalog.upsert_metrics(conn, ws, loaded.metrics)
        query_ids = catalog.upsert_queries(conn, ws, loaded.queries)
        prompt_queries.upsert_prompts(conn, ws, [v for v in loaded.prompts if not v.is_default])
        if not loaded.partial:  # a selection would shrink the datasets to itself
            catalog.sync_datasets(
                conn,
                ws,
                {
                    path: [query_ids[i] for i in indexes]
                    for path, indexes in loaded.dataset_files().items()
                },
            )
        cases = build_cases(loaded, query_ids, model_ids)
        if resume is not None:
            row = run_queries.get_run(conn, ws, resume)
            _check_resumable(row, loaded, suite_path, sharded=shard is not None)
            run_id = row.id
            if row.suite_fingerprint != loaded.fingerprint:  # only its budget changed
                run_queries.update_run_suite(conn, run_id, loaded.snapshot(), loaded.fingerprint)
        else:
            run_id = run_queries.create_run(
                conn,
                ws,
                name=loaded.suite.name,
                suite=loaded.snapshot(),
                fingerprint=loaded.fingerprint,
                suite_path=str(Path(suite_path).resolve()) if suite_path else None,
                planned=len(cases),
            )
        places: dict[int, tuple[str, int]] = {}
        for query_id, place in zip(query_ids, loaded.query_places(), strict=True):
            if place is not None:
                places.setdefault(query_id, place)  # the same content twice: its first line
        run_queries.record_query_places(conn, run_id, places)
        if shard is not None:  # by query, so that pairwise judges find every model's answer
            cases = [c for c in cases if c.query_id % shard[1] == shard[0]]
        plan = Plan(run_id, cases, metric_ids)
        if resume is not None:
            plan.done = run_queries.run_results(conn, run_id)
            plan.pairwise_done = run_queries.pairwise_done(conn, run_id)
            plan.failed_spend = run_queries.failed_judge_spend(conn, run_id)
        if use_cache:
            wanted = [c.cache_key for c in cases if c.slot not in plan.done]
            plan.cache = run_queries.cached_answers(conn, ws, wanted)
        if use_cache or resume is not None:
            # judge answers on any copy of these answers: never pay a judge twice either
            plan.judge_cache = run_queries.judge_cache(conn, ws, [c.cache_key for c in cases])
    return Execution(
        engine, settings, loaded, run_id, plan, resume is not None, use_cache, shard=shard
    )


def _check_resumable(
    row: run_queries.RunRow, loaded: LoadedSuite, suite_path: str | None, *, sharded: bool = False
) -> None:
    now = loaded.snapshot()
    if "selection" not in row.suite:  # runs recorded before selections were: same queries
        now.pop("selection", None)
    if row.suite_fingerprint != loaded.fingerprint and _without_budget(
        row.suite
    ) != _without_budget(now):
        started = list(row.suite.get("selection") or [])
        if started != list(loaded.selection) and _without_selection(
            row.suite
        ) == _without_selection(loaded.snapshot()):
            raise ConfigError(
                Issue(
                    f"run {row.id} was started with "
                    + (shlex.join(started) if started else "no --filter or --limit")
                    + ", and this resume gives "
                    + (shlex.join(loaded.selection) if loaded.selection else "none")
                    + ": a resume runs the queries its run chose",
                    hint="resume without --filter and --limit (a resume reuses its run's own), "
                    "or with the same ones; to run other queries, start a new run",
                )
            )
        raise ConfigError(
            Issue(
                f"{suite_path} has changed since run {row.id} started (its models, metrics, "
                "queries or settings differ), so that run cannot be resumed with it (only "
                "budget_usd may change on a resume)",
                hint="start a new run without --resume: answers already stored are reused from "
                "the cache, so nothing is paid twice",
            )
        )
    if row.status == "completed" and not (
        row.totals.get("score_errors") or row.totals.get("pair_errors")
    ):
        raise ConfigError(
            Issue(
                f"run {row.id} is already completed; nothing to resume",
                hint="start a new run to evaluate again",
            )
        )
    if row.status == "running" and not sharded and _alive(row):
        raise ConfigError(
            Issue(
                f"run {row.id} is still running (pid {row.pid} on {row.host}, last heartbeat "
                f"{row.heartbeat_at:%H:%M:%S} UTC)",
                hint="wait for it, or stop it with Ctrl-C, then resume",
            )
        )


def _without_budget(snapshot: dict[str, Any]) -> bytes:
    """The suite as run, less its budget: a resume may raise (or lower) the budget."""
    rest = {k: v for k, v in snapshot.items() if k != "budget_usd"}
    return orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)


def _without_selection(snapshot: dict[str, Any]) -> bytes:
    """The suite as run, less which of its queries were chosen (--filter, --limit)."""
    rest = {
        k: v
        for k, v in snapshot.items()
        if k not in ("budget_usd", "selection", "query_hashes", "query_metrics")
    }
    return orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)


def _alive(row: run_queries.RunRow) -> bool:
    if row.host == socket.gethostname() and row.pid:
        if row.pid == os.getpid():
            return False
        try:
            os.kill(row.pid, 0)
        except ProcessLookupError:
            return False  # the process is gone (killed, crashed): no need to wait
        except PermissionError:
            pass
    beat = row.heartbeat_at
    return beat is not None and datetime.now(UTC) - beat < STALE_AFTER


def describe_run_state(row: run_queries.RunRow) -> str:
    """The status shown to people: a 'running' run whose process is gone is 'abandoned'."""
    if row.status == "running" and not _alive(row):
        return "abandoned"
    return row.status


def load_run(settings: Settings, ref: str | int) -> tuple[run_queries.RunRow, list[dict[str, Any]]]:
    """A run of the settings' workspace (by id or ``last``) with every result and score."""
    with store(settings) as engine:
        with engine.begin() as conn:
            ws = catalog.ensure_workspace(conn, settings.workspace)
            row = run_queries.get_run(conn, ws, ref)
        return row, summary_rows(engine, row.id)


def summarize_run(engine: Engine, run_id: int) -> Summary:
    """Per model and per model x metric aggregates of a run."""
    from panopticon.stats.summary import summarize

    with engine.connect() as conn:
        rows = run_queries.summary_inputs(conn, run_id)
    return summarize(rows, run_kinds(engine, run_id))


def summary_rows(engine: Engine, run_id: int) -> list[dict[str, Any]]:
    """Every result with its query, model and scores (for export and detail views)."""
    with engine.connect() as conn:
        return list(run_queries.iter_result_rows(conn, run_id))


def pairwise_results(engine: Engine, run_id: int) -> list[dict[str, Any]]:
    """Every pairwise judgement of a run (failed ones with their error)."""
    with engine.connect() as conn:
        return run_queries.pairwise_rows(conn, run_id)


def list_runs(engine: Engine, workspace_id: int, limit: int = 20) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = _with_live_totals(conn, run_queries.list_runs(conn, workspace_id, limit))
    return [run_public(r) for r in rows]


def _with_live_totals(conn: Any, rows: list[run_queries.RunRow]) -> list[run_queries.RunRow]:
    """Runs whose totals are not written yet (a run writes them when it ends) with their
    counts so far: a running run's progress, and an abandoned one's (killed: its status
    stays running) answers and spend, which lists showed as none and of unknown cost."""
    return [
        replace(r, totals=asdict(totals_of(outcome_queries.run_counts(conn, r.id), r.planned)))
        if r.status == "running" and not r.totals
        else r
        for r in rows
    ]


def get_run(engine: Engine, workspace_id: int, ref: str | int) -> run_queries.RunRow:
    with engine.connect() as conn:
        return run_queries.get_run(conn, workspace_id, ref)


def find_run(engine: Engine, workspace: str, ref: str | int) -> run_queries.RunRow:
    """A run of the named workspace (the CLI's), by id or ``last``."""
    with engine.begin() as conn:
        return run_queries.get_run(conn, catalog.ensure_workspace(conn, workspace), ref)


def recent_runs(engine: Engine, workspace: str, limit: int = 20) -> list[run_queries.RunRow]:
    """The named workspace's runs, newest first."""
    with engine.begin() as conn:
        ws = catalog.ensure_workspace(conn, workspace)
        return _with_live_totals(conn, run_queries.list_runs(conn, ws, limit))


def run_totals(row: run_queries.RunRow) -> dict[str, Any]:
    """A run's stored totals, its cost as shown everywhere: ``cost_usd`` the priced part
    (None when nothing is priced; runs stored before said 0.0) beside ``unknown_cost``."""
    totals = dict(row.totals or {})
    if "cost_usd" in totals:
        totals["cost_usd"] = known_cost(totals["cost_usd"], totals.get("unknown_cost"))
    return totals


def run_selection(settings: Settings, ref: str) -> list[str]:
    """The --filter and --limit options a run of the settings' workspace was started with
    (empty: all of its suite's queries)."""
    with store(settings) as engine:
        row = find_run(engine, settings.workspace, ref)
    return [str(o) for o in row.suite.get("selection") or []]


def run_public(row: run_queries.RunRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "status": row.status,
        "state": describe_run_state(row),
        "stop_reason": row.stop_reason,
        "planned": row.planned,
        "totals": run_totals(row),
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }
