"""Is the service able to work: can it reach its database?"""

from __future__ import annotations

import sqlalchemy as sa

from panopticon.store.engine import Engine

__all__ = ["database_problem"]


def database_problem(engine: Engine) -> str | None:
    """None when the database answers, else what went wrong."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return str(getattr(exc, "orig", exc))
    return None
