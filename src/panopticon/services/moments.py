"""A time given by a person (a command-line option, a job's payload): ISO 8601, a date or
a time, ``Z`` for UTC; without a zone it is UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from panopticon.errors import ConfigError, Issue

__all__ = ["parse_time"]


def parse_time(value: Any, name: str) -> datetime:
    """``value`` (a datetime or its ISO 8601 text) as an aware datetime, or ConfigError
    naming the field ``name``."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                Issue(f"'{value}' is not a time", field=name, hint="e.g. 2026-11-26T00:00:00Z")
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
