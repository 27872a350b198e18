"""Is the service able to work: can it reach its database?"""

from __future__ import annotations

from panopticon.store.engine import Engine, ping

__all__ = ["database_problem"]


def database_problem(engine: Engine) -> str | None:
    """None when the database answers, else what went wrong."""
    return ping(engine)
