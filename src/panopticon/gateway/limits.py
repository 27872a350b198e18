"""RPM, TPM and USD budgets that hold across every gateway replica, off the hot path.

RPM/TPM: each scope (a key, a model) has a bucket row shared through the database
(``store/limits.py``). A replica does not touch that row per request: it reserves a
*chunk* of the allowance (a fiftieth of the per-minute limit, at least 1) and serves
requests from it in memory, going back to the database only when the chunk is used up.
A chunk that cannot be had means the limit is reached: 429, naming the limit. The price:
a replica may hold up to one chunk that the others cannot use (the limit is exact to
within replicas x chunk).

While the database is away, requests are still served: each replica counts on its own and
the shared rows catch up when it is back.

Budgets: spend is counted in memory per (scope, period) and added to the shared counters
(``gateway_spend``) once a second by :meth:`SpendTracker.flush`, which also reads back the
totals of every replica. A budget is checked against the last total read plus this
replica's unflushed spend, so replicas may overspend by at most about a second of traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from panopticon.errors import GatewayError
from panopticon.services import gateway_store
from panopticon.services.database import Engine

__all__ = ["ChunkedBucket", "LimitExceeded", "SpendTracker", "periods"]


def LimitExceeded(message: str, retry_after_s: float | None = None) -> GatewayError:
    """A limit or budget is reached: a 429 whose message says which."""
    return GatewayError(
        message, 429, "rate_limit_error", code="rate_limit_exceeded", retry_after=retry_after_s
    )


class ChunkedBucket:
    """``per_minute`` units shared through the database, taken from it in chunks."""

    def __init__(self, engine: Engine, scope: str, per_minute: int, label: str) -> None:
        self.scope = scope
        self.per_minute = per_minute
        self.label = label
        self.chunk = max(1, per_minute // 50)
        self._shared = gateway_store.shared_bucket(engine, scope, per_minute)
        self._local = 0.0
        self._lock = asyncio.Lock()
        self._down_until = 0.0  # the database failed: count locally until then

    async def take(self, n: float) -> None:
        """Take ``n`` units or raise a 429 GatewayError."""
        n = min(float(n), float(self.per_minute))
        if self._local >= n:
            self._local -= n
            return
        async with self._lock:
            if self._local >= n:
                self._local -= n
                return
            need = n - self._local
            want = max(float(self.chunk), need)
            if time.monotonic() < self._down_until:
                self._local += want - n
                return
            try:
                wait = await asyncio.to_thread(self._shared.reserve, want)
            except Exception as exc:  # the database is away: serve on, count here only
                _log_failure(exc)
                self._down_until = time.monotonic() + 1.0
                self._local += want - n
                return
            if wait > 0:  # not that much left: give it back, try just what is needed
                await asyncio.to_thread(self._shared.reserve, -want)
                if want > need:
                    wait = await asyncio.to_thread(self._shared.reserve, need)
                    if wait > 0:
                        await asyncio.to_thread(self._shared.reserve, -need)
                        raise LimitExceeded(self._message(), wait)
                    want = need
                else:
                    raise LimitExceeded(self._message(), wait)
            self._local += want - n

    def spend(self, n: float) -> None:
        """Count ``n`` more units than were taken (tokens known after the answer)."""
        self._local -= n

    def _message(self) -> str:
        return f"{self.label} limit of {self.per_minute} per minute reached; retry later"


def periods(now: datetime | None = None) -> dict[str, str]:
    now = now or datetime.now(UTC)
    return {"day": now.strftime("%Y-%m-%d"), "month": now.strftime("%Y-%m")}


class SpendTracker:
    """USD spend per scope and period, shared through the database."""

    def __init__(
        self,
        engine: Engine,
        *,
        refresh_s: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.refresh_s = refresh_s
        self.clock = clock
        self._total: dict[str, float] = {}  # as last read from the database
        self._pending: dict[str, float] = {}  # spent here, not yet added there
        # being added there now: still counted, or a check during the flush under-counts
        self._flushing: dict[str, float] = {}
        self._loaded_at: dict[str, float] = {}
        self._lock = asyncio.Lock()

    @staticmethod
    def counter(scope: str, period: str, value: str) -> str:
        return f"{scope}:{period}:{value}"

    def spent(self, counter: str) -> float:
        return (
            self._total.get(counter, 0.0)
            + self._pending.get(counter, 0.0)
            + self._flushing.get(counter, 0.0)
        )

    async def check(self, scope: str, label: str, budgets: dict[str, float | None]) -> None:
        """Raise a 429 GatewayError when any budget of ``scope`` is used up."""
        now = periods(self.clock())
        counters = {
            p: self.counter(scope, p, now[p]) for p, limit in budgets.items() if limit is not None
        }
        if not counters:
            return
        missing = [c for c in counters.values() if c not in self._loaded_at]
        if missing:  # first use of this counter in this process: read it once
            loaded = time.monotonic()
            try:
                totals = await asyncio.to_thread(gateway_store.read_spend, self.engine, missing)
            except Exception as exc:  # the database is away: count from here; the flush
                _log_failure(exc)  # reads the totals once it is back (stale at once)
                totals = {c: 0.0 for c in missing}
                loaded = 0.0
            for c, v in totals.items():
                self._total[c] = v
                self._loaded_at[c] = loaded
        for p, c in counters.items():
            limit = budgets[p]
            assert limit is not None
            if self.spent(c) >= limit:
                raise LimitExceeded(
                    f"{label} {'daily' if p == 'day' else 'monthly'} budget of ${limit:g} "
                    f"reached (${self.spent(c):.4f} spent this "
                    f"{'UTC day' if p == 'day' else 'month'}); raise it or wait for the next "
                    f"{'day' if p == 'day' else 'month'}"
                )

    def add(self, scopes: list[str], cost: float | None) -> None:
        if not cost:
            return
        now = periods(self.clock())
        for scope in scopes:
            for p, value in now.items():
                c = self.counter(scope, p, value)
                self._pending[c] = self._pending.get(c, 0.0) + cost

    async def flush(self) -> None:
        """Add this replica's spend to the shared counters and read back every total."""
        async with self._lock:
            pending, self._pending = self._pending, {}
            self._flushing = pending
            stale = [
                c
                for c, t in self._loaded_at.items()
                if c not in pending and time.monotonic() - t > self.refresh_s
            ]
            try:
                if pending:
                    totals = await asyncio.to_thread(gateway_store.add_spend, self.engine, pending)
                    self._total.update(totals)
                    self._flushing = {}
                    for c in totals:
                        self._loaded_at[c] = time.monotonic()
                if stale:
                    totals = await asyncio.to_thread(gateway_store.read_spend, self.engine, stale)
                    self._total.update(totals)
                    for c in totals:
                        self._loaded_at[c] = time.monotonic()
            except Exception:  # the database is away: keep counting here, add it later
                if self._flushing:
                    for c, v in pending.items():
                        self._pending[c] = self._pending.get(c, 0.0) + v
                    self._flushing = {}
                raise

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.refresh_s)
            try:
                await self.flush()
            except Exception as exc:
                _log_failure(exc)


def _log_failure(exc: Any) -> None:
    import logging

    logging.getLogger(__name__).warning("gateway limits or spend not shared: %s", exc)
