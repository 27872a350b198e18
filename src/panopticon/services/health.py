"""Is the service able to work: can it reach its database?"""

from __future__ import annotations

from panopticon.providers.redact import mask_secrets
from panopticon.store.engine import Engine, ping

__all__ = ["database_problem"]


def database_problem(engine: Engine) -> str | None:
    """None when the database answers, else what went wrong."""
    problem = ping(engine)
    if problem is None:
        return None
    password = engine.url.password
    return mask_secrets(problem, [password if isinstance(password, str) else None])
