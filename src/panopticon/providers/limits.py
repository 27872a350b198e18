"""Concurrency and rate limits for one model: adaptive concurrency, RPM and TPM buckets.

Concurrency is per process; RPM and TPM buckets may be shared by every process that
uses the same store (``store/limits.py``), so that rate limits hold across workers.

:class:`AdaptiveLimiter` is AIMD, as in promptfoo and Inspect: a 429 halves the number of
calls allowed in flight, and successes grow it back one step at a time up to the
configured maximum. Each grant carries a generation so that a burst of 429s from calls
started under the same limit halves it once, not once per call.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["AdaptiveLimiter", "RateBucket", "TokenBucket"]


class AdaptiveLimiter:
    def __init__(self, maximum: int, *, adaptive: bool = True, minimum: int = 1) -> None:
        if maximum < 1:
            raise ValueError("maximum must be >= 1")
        self.maximum = maximum
        self.minimum = max(1, min(minimum, maximum))
        self.limit = maximum
        self.adaptive = adaptive
        self.in_use = 0
        self.generation = 0
        self._successes = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> int:
        """Wait for a slot; returns the generation the slot was granted under."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return self.generation
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted just as we were cancelled: give it back
            else:
                self._waiters.remove(fut)
            raise
        return self.generation

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_use < self.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_use += 1
                fut.set_result(None)

    def on_rate_limited(self, generation: int) -> None:
        if not self.adaptive or generation != self.generation:
            return
        self.generation += 1
        self.limit = max(self.minimum, self.limit // 2)
        self._successes = 0

    def on_success(self) -> None:
        if not self.adaptive or self.limit >= self.maximum:
            return
        self._successes += 1
        if self._successes >= max(1, self.limit // 4):
            self._successes = 0
            self.limit += 1
            self._wake()


class RateBucket(Protocol):
    """A per-minute allowance shared by whoever holds the same bucket: this process
    (:class:`TokenBucket`) or every process on the same store (``store.limits``)."""

    async def take(self, n: float = 1.0) -> None: ...

    async def adjust(self, delta: float) -> None: ...


class TokenBucket:
    """``per_minute`` units per minute, starting full; ``take(n)`` waits until n are free.

    Reservations, not polling: ``take`` subtracts at once (the balance may go negative)
    and sleeps for as long as the debt takes to refill. Callers are served in the order
    they asked, and the lock is held only for the arithmetic, so threads may share it.
    """

    def __init__(
        self,
        per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be > 0")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.tokens = float(per_minute)
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._updated) * self.rate)
        self._updated = now

    def reserve(self, n: float) -> float:
        """Take ``n`` now; returns the seconds to wait before using them."""
        with self._lock:
            self._refill()
            self.tokens -= n
            return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    async def take(self, n: float = 1.0) -> None:
        n = min(float(n), self.capacity)
        wait = self.reserve(n)
        if wait > 0:
            try:
                await self._sleep(wait)
            except asyncio.CancelledError:
                await self.adjust(-n)  # not used: give it back
                raise

    async def adjust(self, delta: float) -> None:
        """Correct an estimate after the fact (positive: more was used than taken)."""
        with self._lock:
            self._refill()
            self.tokens = min(self.capacity, self.tokens - delta)
