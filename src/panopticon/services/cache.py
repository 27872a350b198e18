"""Clearing and expiring the answer cache, with care for what runs still need.

The result store is both the cache and each run's checkpoint and record. So:

- **retire** (the default of ``cache clear`` and ``cache expire``): stored answers are no
  longer reused by later runs, and judge answers on them neither; every result stays in its
  run, so reports, exports and resumes are unchanged.
- **delete** (``--delete``): also removes the results of runs that are not completed
  (failed, interrupted, stopped, abandoned): such a run can still be resumed, but it starts
  those answers over. Runs whose process is alive are never touched.
- **force** (``--delete --force``): also removes the results of completed runs, whose
  reports then lack them (people's labels on them go too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from panopticon.errors import ConfigError, Issue
from panopticon.services.runs import describe_run_state
from panopticon.store.engine import Engine
from panopticon.store.queries import cache as cache_queries
from panopticon.store.queries import catalog
from panopticon.store.queries import runs as run_queries

__all__ = ["CacheStats", "ClearOutcome", "cache_stats", "clear_cache", "parse_age"]

_AGE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str, field: str = "--older-than") -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w``; ``field`` names the input in the error."""
    match = _AGE.match(text)
    if not match:
        raise ConfigError(
            Issue(
                f"cannot read the age '{text}'",
                field=field,
                hint="write a number and a unit: 30m, 12h, 7d or 2w",
            )
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass(frozen=True)
class CacheStats:
    models: list[dict[str, Any]]
    judge_answers: int
    retired: int

    @property
    def answers(self) -> int:
        return sum(m["answers"] for m in self.models)


@dataclass(frozen=True)
class ClearOutcome:
    retired: int
    deleted: int = 0
    runs_emptied: list[int] = field(default_factory=list)  # completed runs that lost answers
    runs_restarted: list[int] = field(default_factory=list)  # unfinished runs that lost them
    skipped_running: list[int] = field(default_factory=list)


def cache_stats(engine: Engine, workspace: str) -> CacheStats:
    with engine.begin() as conn:
        ws = catalog.ensure_workspace(conn, workspace)
        data = cache_queries.cache_stats(conn, ws)
    return CacheStats(data["models"], data["judge_answers"], data["retired"])


def clear_cache(
    engine: Engine,
    workspace: str,
    *,
    older_than: timedelta | None = None,
    delete: bool = False,
    force: bool = False,
    now: datetime | None = None,
) -> ClearOutcome:
    if force and not delete:
        raise ConfigError(
            Issue(
                "--force only makes sense with --delete",
                field="--force",
                hint="panopticon cache clear --delete --force",
            )
        )
    cutoff = (now or datetime.now(UTC)) - older_than if older_than is not None else None
    with engine.begin() as conn:
        ws = catalog.ensure_workspace(conn, workspace)
        retired = cache_queries.retire_answers(conn, ws, cutoff)
        if not delete:
            return ClearOutcome(retired)
        unfinished, completed, running = [], [], []
        for row in run_queries.list_runs(conn, ws, limit=1_000_000):
            state = describe_run_state(row)
            if state in ("running", "pending"):
                running.append(row.id)
            elif state == "completed":
                completed.append(row.id)
            else:
                unfinished.append(row.id)
        targets = unfinished + (completed if force else [])
        deleted = cache_queries.delete_results(conn, ws, targets, cutoff)
    return ClearOutcome(
        retired,
        deleted,
        completed if force and deleted else [],
        unfinished if deleted else [],
        running,
    )
