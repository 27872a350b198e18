"""Budgets by reservation: the estimated cost of a judge call is reserved before the call and
settled with the real cost after, so concurrent workers never spend past a limit together.

The arithmetic lives here; the store keeps the windows' sums in one row per (workspace,
rule, period) and applies :meth:`BudgetWindow.reserve` in one atomic update.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

__all__ = ["BudgetWindow", "Period", "Reservation", "period_start"]

Period = Literal["day", "month", "total"]


def period_start(now: datetime, period: Period) -> datetime:
    """The start (UTC) of the budget period that ``now`` falls in."""
    now = now.astimezone(UTC)
    if period == "total":  # one window for ever (a backfill's own budget)
        return datetime(2000, 1, 1, tzinfo=UTC)
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Reservation:
    window: BudgetWindow
    amount_usd: float


@dataclass(frozen=True)
class BudgetWindow:
    """One budget over one period: ``spent`` is settled cost, ``reserved`` is held by calls
    in flight. ``limit_usd`` None means no limit."""

    limit_usd: float | None
    spent_usd: float = 0.0
    reserved_usd: float = 0.0

    @property
    def committed_usd(self) -> float:
        return self.spent_usd + self.reserved_usd

    def allows(self, estimate_usd: float) -> bool:
        """Whether a call estimated at ``estimate_usd`` may start. A call whose cost is
        unknown (no price) cannot be bounded: it is allowed only without a limit."""
        if self.limit_usd is None:
            return True
        if estimate_usd != estimate_usd or estimate_usd < 0:  # NaN or nonsense
            return False
        return self.committed_usd + estimate_usd <= self.limit_usd + 1e-12

    def reserve(self, estimate_usd: float) -> tuple[BudgetWindow, Reservation] | None:
        """The window with ``estimate_usd`` held, or None when that would pass the limit."""
        if not self.allows(estimate_usd):
            return None
        held = replace(self, reserved_usd=self.reserved_usd + estimate_usd)
        return held, Reservation(held, estimate_usd)

    def settle(self, reserved_usd: float, actual_usd: float | None) -> BudgetWindow:
        """Release a reservation and add what the call really cost (None: the call was not
        made or failed before it was billed; the reservation is released, nothing spent)."""
        return replace(
            self,
            reserved_usd=max(0.0, self.reserved_usd - reserved_usd),
            spent_usd=self.spent_usd + (actual_usd or 0.0),
        )

    def remaining_usd(self) -> float | None:
        return None if self.limit_usd is None else max(0.0, self.limit_usd - self.committed_usd)
