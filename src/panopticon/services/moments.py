"""A time given by a person (a command-line option, a job's payload): ISO 8601, a date or
a time, ``Z`` for UTC; without a zone it is UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from panopticon.errors import ConfigError, Issue

__all__ = ["EARLIEST", "LATEST", "out_of_range", "parse_time"]

# The times a request may name. Python's datetimes end at years 1 and 9999, so a time at
# either end (9999-12-31T23:59:59-14:00) cannot be put in UTC, nor a day taken off it (the
# trace filters' partition bound): without bounds such a time was a 500, not a 422.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def out_of_range(moment: datetime) -> str | None:
    """Why an aware ``moment`` is not a time a request may name, or None when it is."""
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        return f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)"
    return None


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
    problem = out_of_range(moment)
    if problem:
        raise ConfigError(
            Issue(f"'{value}' {problem}", field=name, hint="e.g. 2026-11-26T00:00:00Z")
        )
    return moment
