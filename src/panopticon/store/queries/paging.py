"""Counting a page's matches cheaply: exactly up to a cap, then "at least" (``10,000+``).

Counting every match of a broad filter over millions of rows costs more than the page
itself (an unfiltered count walks the whole index). So the count reads at most ``cap + 1``
matches (``COUNT(*)`` over a ``LIMIT`` sub-select) and the answer says whether the total is
exact or a lower bound. The results API and the trace explorer count this way, and their
clients (the dashboard, the CLI) show a lower bound with a "+".
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = ["COUNT_CAP", "capped_count", "counted_total", "rows_to_count"]

# Past this many matches the total is a lower bound. Counting up to 10,000 cost more than
# the page it came with (0.6 ms of SQLite per request, on an index); 1,000 costs 0.06 ms.
COUNT_CAP = 1_000


def rows_to_count(count_cap: int, shown_to: int = 0) -> int:
    """How many matches to count: one past the cap, or past the end of the page shown
    (``offset + limit``), so that a total is exact whenever the page reaches the last match."""
    return max(count_cap, shown_to) + 1


def capped_count(from_: Any, where: list[Any], rows: Any) -> sa.Select[Any]:
    """``SELECT count(*)`` of at most ``rows`` matches of ``where`` in ``from_`` (``rows``: a
    number, or a bound parameter for a statement built once)."""
    matches = sa.select(sa.literal(1)).select_from(from_).where(*where).limit(rows).subquery()
    return sa.select(sa.func.count()).select_from(matches)


def counted_total(counted: int, rows: int) -> tuple[int, bool]:
    """(total, exact) from a count of at most ``rows`` matches: short of it, the total is
    exact; reaching it, ``rows - 1`` is a lower bound."""
    return (counted, True) if counted < rows else (rows - 1, False)
