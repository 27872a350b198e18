"""Rate limits shared by every process on one store: the workers of a queue, the API, a CLI.

A bucket is one row. ``take(n)`` is one atomic upsert that refills the row by the time
elapsed on the *database's* clock (so the workers' clocks need not agree), subtracts ``n``
and returns the balance; a negative balance is a debt the caller sleeps off, so callers are
served in the order they asked without holding a lock while they wait. The statement runs
in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from panopticon.store.tables import RateLimit

__all__ = ["SharedBucket", "bucket_key"]


def bucket_key(kind: str, identity: dict[str, Any]) -> str:
    """The row of one account's limit on one model: ``kind`` is ``rpm`` or ``tpm``."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{kind}:{digest[:40]}"


def _db_now(dialect: str) -> Any:
    if dialect == "postgresql":
        return sa.extract("epoch", sa.func.clock_timestamp())
    return (sa.func.julianday("now") - 2440587.5) * 86400.0  # SQLite: epoch seconds, ms


class SharedBucket:
    """``per_minute`` units per minute for everyone holding ``key`` on this store."""

    def __init__(
        self, engine: Engine, key: str, per_minute: float, *, sleep: Any = asyncio.sleep
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be > 0")
        self.engine = engine
        self.key = key
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._sleep = sleep
        dialect = engine.dialect.name
        now = _db_now(dialect)
        least = sa.func.least if dialect == "postgresql" else sa.func.min
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        n = sa.bindparam("n", type_=sa.Float)
        cap = sa.literal(self.capacity, sa.Float)
        stmt = insert(RateLimit).values(
            key=key, per_minute=self.capacity, tokens=least(cap, cap - n), updated_s=now
        )
        refilled = least(
            cap,
            RateLimit.c.tokens + (stmt.excluded.updated_s - RateLimit.c.updated_s) * cap / 60.0,
        )
        self._take = stmt.on_conflict_do_update(
            index_elements=[RateLimit.c.key],
            set_={
                "per_minute": cap,  # the latest limit given wins (a suite may lower it)
                "tokens": least(cap, refilled - n),  # n < 0 gives back, up to the capacity
                "updated_s": stmt.excluded.updated_s,
            },
        ).returning(RateLimit.c.tokens)

    def reserve(self, n: float) -> float:
        """Take ``n`` now (blocking: call it in a thread); the seconds to wait first."""
        with self.engine.begin() as conn:
            balance = float(conn.execute(self._take, {"n": n}).scalar_one())
        return 0.0 if balance >= 0 else -balance / self.rate

    async def take(self, n: float = 1.0) -> None:
        n = min(float(n), self.capacity)
        wait = await asyncio.to_thread(self.reserve, n)
        if wait > 0:
            try:
                await self._sleep(wait)
            except asyncio.CancelledError:
                await asyncio.shield(self.adjust(-n))  # not used: give it back
                raise

    async def adjust(self, delta: float) -> None:
        """Correct an estimate (positive: more was used than taken)."""
        await asyncio.to_thread(self.reserve, delta)
