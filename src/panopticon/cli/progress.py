"""Progress of ``panopticon run``: answers, judgements (scores and pairs), failures, retries,
rate limits and spend.

On a terminal, a live bar per phase. Elsewhere (a pipe, a CI log) a plain line every
``interval`` seconds and one at the end, so a long run shows signs of life in a log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from rich.console import Console

from panopticon.cli.output import money
from panopticon.evaluation.records import PairwiseRecord, ResultRecord, ScoreRecord
from panopticon.evaluation.runner import RunObserver
from panopticon.providers.pricing import cost_text
from panopticon.services.runs import Execution

__all__ = ["RunProgress"]


class RunProgress(RunObserver):
    """Counts what the runner reports (cheap: a few additions per call) and shows it."""

    def __init__(self, execution: Execution, console: Console, interval_s: float) -> None:
        self.execution = execution
        self.console = console
        self.interval_s = interval_s
        plan = execution.plan
        # pairwise judgements are counted as they are planned
        wanted = execution.scores_wanted()
        self.answers_total = len(plan.cases)
        self.answers = len(plan.done)
        self.judgements_total = sum(len(wanted[c.query_id]) for c in plan.cases)
        self.judgements = sum(
            len(plan.done[c.slot].scored & wanted[c.query_id])
            for c in plan.cases
            if c.slot in plan.done
        )
        self.failed = 0
        self.judge_errors = 0
        self.spent = 0.0
        self.unknown_cost = 0  # answers without a price: their cost is not in ``spent``
        self.started = time.monotonic()
        self._live: Any = None
        self._tasks: tuple[Any, Any] | None = None

    # --- what the runner reports ------------------------------------------------------------
    def on_result(self, record: ResultRecord, reused: bool) -> None:
        self.answers += 1
        if record.error is not None:
            self.failed += 1
        elif record.cost_usd is None:
            self.unknown_cost += 1
        self._refresh()

    def on_score(self, record: ScoreRecord) -> None:
        self.judgements += 1
        if record.error is not None:
            self.judge_errors += 1
        self._refresh()

    def on_pairs_planned(self, count: int) -> None:
        self.judgements_total += count
        self._refresh()

    def on_pair(self, record: PairwiseRecord) -> None:
        self.judgements += 1
        if record.error is not None:
            self.judge_errors += 1
        self._refresh()

    def on_spend(self, total_usd: float) -> None:
        self.spent = total_usd

    # --- showing it -------------------------------------------------------------------------
    def retries(self) -> tuple[int, int]:
        runner = self.execution.runner
        clients = runner.clients.values() if runner is not None else []
        return sum(c.retries for c in clients), sum(c.rate_limited for c in clients)

    def spend_text(self) -> str:
        """What the run has spent; before its first answer or judgement, "nothing yet"
        rather than $0 (an unpriced model's answers must never read as free)."""
        if not (self.answers or self.judgements or self.spent):
            return "nothing yet"
        return cost_text(self.spent, self.unknown_cost)

    def line(self) -> str:
        retries, limited = self.retries()
        return (
            f"run {self.execution.run_id}: answers {self.answers}/{self.answers_total} "
            f"({self.failed} failed), judgements {self.judgements}/{self.judgements_total} "
            f"({self.judge_errors} failed), retries {retries} ({limited} rate-limited), "
            f"spent {self.spend_text()}, "
            f"{time.monotonic() - self.started:.0f} s"
        )

    def _fields(self) -> dict[str, Any]:
        retries, limited = self.retries()
        return {"failed": self.failed, "retries": retries, "limited": limited}

    def _refresh(self) -> None:
        if self._tasks is None:
            return
        answers, judgements = self._tasks
        fields = self._fields()
        self._live.update(
            answers,
            completed=self.answers,
            spend=self.spend_text(),
            **fields,
        )
        self._live.update(
            judgements,
            completed=self.judgements,
            total=self.judgements_total,
            failed=self.judge_errors,
            retries=fields["retries"],
            limited=fields["limited"],
            spend="",
        )

    @asynccontextmanager
    async def shown(self) -> AsyncIterator[RunProgress]:
        """Show progress while the body runs: live bars on a terminal, else periodic lines."""
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description:<10}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("[red]{task.fields[failed]} failed"),
                TextColumn("{task.fields[retries]} retries ({task.fields[limited]} 429)"),
                TextColumn("{task.fields[spend]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            with progress:
                common: dict[str, Any] = {"failed": 0, "retries": 0, "limited": 0}
                self._live = progress
                self._tasks = (
                    progress.add_task(
                        "answers",
                        total=self.answers_total,
                        completed=self.answers,
                        spend=money(0.0),
                        **common,
                    ),
                    progress.add_task(
                        "judgements",
                        total=self.judgements_total,
                        completed=self.judgements,
                        spend="",
                        **common,
                    ),
                )
                try:
                    yield self
                finally:
                    self._refresh()
            return

        async def tick() -> None:
            while True:
                await asyncio.sleep(self.interval_s)
                self.console.print(self.line(), highlight=False, soft_wrap=True)

        ticker = asyncio.create_task(tick())
        try:
            yield self
        finally:
            ticker.cancel()
            self.console.print(self.line(), highlight=False, soft_wrap=True)
