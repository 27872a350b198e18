"""Time partitions of ``trace`` and ``span`` on PostgreSQL, and retention on both databases.

Each table is range-partitioned by day (``span_p20261202`` holds spans that started on
2 December 2026, UTC) with a ``_default`` partition that catches anything outside the
created range, so an insert never fails for want of a partition. :func:`maintain` creates
yesterday's partition and a week ahead, drops partitions older than the longest
retention of any workspace (a ``DROP TABLE``: instant, no vacuum), and deletes the rows of
workspaces whose own retention is shorter. On SQLite only the deletions apply.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from panopticon.store.engine import sqlstate
from panopticon.store.tables import Span, Trace, TraceSettings

__all__ = [
    "PARTITIONED",
    "MaintenanceReport",
    "create_days",
    "create_default_partitions",
    "is_partition",
    "maintain",
    "partition_names",
]

log = logging.getLogger(__name__)

PARTITIONED = {"trace": "bucket", "span": "start_time"}
_NAME = re.compile(r"^(trace|span)_(p(\d{8})|default)$")


def is_partition(name: str | None) -> bool:
    """Partitions are made by maintenance, not by the models or migrations."""
    return bool(name and _NAME.match(name))


@dataclass(frozen=True)
class MaintenanceReport:
    created: list[str]
    dropped: list[str]
    deleted_spans: int
    deleted_traces: int


def _day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def partition_names(conn: Connection, table: str) -> list[str]:
    rows = conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :t ORDER BY c.relname"
        ),
        {"t": table},
    )
    return [r[0] for r in rows]


# DDL on a partitioned table locks its parent (CREATE ... PARTITION OF and DROP TABLE take
# ACCESS EXCLUSIVE on it, and on the default partition). Two rules keep that from ever
# deadlocking or stalling the readers and writers of trace and span:
# - one statement a transaction, so maintenance never holds a lock on one table while it
#   waits for another (a read joining span and trace takes both, in its own order: holding
#   trace while asking for span is how a reader and maintenance deadlocked);
# - a short lock_timeout, so a DDL statement that waits behind a long read gives way
#   instead of queueing every later reader behind it; it is tried again a little later,
#   and what still cannot be done waits for the next maintenance (spans meanwhile go to
#   the default partition and are read as usual).
LOCK_TIMEOUT_MS = 500
_DDL_ATTEMPTS = 4


def _ddl(engine: Engine, statement: str) -> bool:
    """``statement`` in a transaction of its own under a lock timeout: True once done,
    False when it could not get its locks after a few tries. Any other error is raised."""
    for attempt in range(1, _DDL_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
                conn.exec_driver_sql(statement)
            return True
        except sa.exc.DBAPIError as exc:
            if sqlstate(exc) not in _LOCK_STATES:
                raise
            log.info(
                "partition maintenance waited too long for a lock (%s), try %d", statement, attempt
            )
            time.sleep(0.1 * attempt)
    return False


# lock_not_available (the lock timeout), deadlock_detected
_LOCK_STATES = {"55P03", "40P01"}


# Every ingest and API replica runs maintenance, so another may create or drop a table
# between this one's listing and its statement: undefined_table, duplicate_table, and
# unique_violation (two CREATE ... IF NOT EXISTS at once collide in the catalog)
_GONE, _THERE = {"42P01"}, {"42P07", "23505"}
# check_violation: CREATE found rows of its day in the default partition
_IN_DEFAULT = {"23514"}


def _drop(engine: Engine, name: str) -> bool:
    """Drop a partition: True when this call dropped it (False: it could not get its locks,
    or another server's maintenance dropped it first)."""
    try:
        return _ddl(engine, f"DROP TABLE {name}")
    except sa.exc.DBAPIError as exc:
        if sqlstate(exc) not in _GONE:
            raise
        return False


def create_default_partitions(engine: Engine) -> None:
    with engine.connect() as conn:
        missing = [t for t in PARTITIONED if f"{t}_default" not in partition_names(conn, t)]
    for table in missing:
        try:
            _ddl(engine, f"CREATE TABLE IF NOT EXISTS {table}_default PARTITION OF {table} DEFAULT")
        except sa.exc.DBAPIError as exc:
            if sqlstate(exc) not in _THERE:
                raise


def create_days(engine: Engine, first: datetime, last: datetime) -> list[str]:
    """Create the day partitions from ``first`` to ``last`` that are missing: the names
    created. A day whose rows already went to the default partition cannot be created over
    them: its rows stay in the default (still read, dropped by retention)."""
    created = []
    for table, column in PARTITIONED.items():
        with engine.connect() as conn:
            existing = set(partition_names(conn, table))
        day = _day(first)
        while day <= last:
            name = f"{table}_p{day:%Y%m%d}"
            if name not in existing:
                if f"{table}_default" in existing and _in_default(engine, table, column, day):
                    # CREATE would scan the default partition under an exclusive lock (held
                    # against ingest and readers) only to fail: asked first, with a plain read
                    log.warning(
                        "%s: spans of %s went to the default partition before its own was "
                        "made; they stay there (read as usual, dropped by retention)",
                        table,
                        f"{day:%Y-%m-%d}",
                    )
                    day += timedelta(days=1)
                    continue
                try:
                    done = _ddl(
                        engine,
                        f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM "
                        f"('{day.isoformat()}') TO ('{(day + timedelta(days=1)).isoformat()}')",
                    )
                except sa.exc.DBAPIError as exc:
                    # another replica made it first, or that day's rows reached the default
                    # partition since the check: left as it is. Anything else (a lost
                    # connection, a role that may not create tables) is raised, so that
                    # maintenance says it failed instead of skipping every day in silence
                    if sqlstate(exc) not in _THERE | _IN_DEFAULT:
                        raise
                    done = False
                if done:
                    created.append(name)
            day += timedelta(days=1)
    return created


def _in_default(engine: Engine, table: str, column: str, day: datetime) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            sa.text(
                f"SELECT 1 FROM {table}_default WHERE {column} >= :start AND {column} < :end "
                "LIMIT 1"
            ),
            {"start": day, "end": day + timedelta(days=1)},
        ).first()
    return found is not None


def maintain(
    engine: Engine,
    *,
    now: datetime,
    default_retention_days: int,
    ahead_days: int = 7,
) -> MaintenanceReport:
    """Create partitions from yesterday to ``ahead_days`` ahead, drop whole
    days past every workspace's retention, delete rows past a shorter workspace retention."""
    today = _day(now)
    with engine.connect() as conn:
        settings = list(
            conn.execute(
                sa.select(TraceSettings.c.workspace_id, TraceSettings.c.retention_days).where(
                    TraceSettings.c.retention_days.is_not(None)
                )
            )
        )
    longest = max([default_retention_days, *(r.retention_days for r in settings)])
    created: list[str] = []
    dropped: list[str] = []
    if engine.dialect.name == "postgresql":
        create_default_partitions(engine)
        # yesterday to a week ahead: what live traffic needs. Spans sent late for older
        # days land in the default partition (read as usual, deleted by retention).
        created = create_days(engine, today - timedelta(days=1), today + timedelta(days=ahead_days))
        horizon = today - timedelta(days=longest)
        for table in PARTITIONED:
            with engine.connect() as conn:
                names = partition_names(conn, table)
            for name in names:
                m = _NAME.match(name)
                if m and m.group(3):
                    day = datetime.strptime(m.group(3), "%Y%m%d").replace(tzinfo=UTC)
                    if day + timedelta(days=1) <= horizon and _drop(engine, name):
                        dropped.append(name)
    with engine.begin() as conn:
        spans, traces = _delete_past_retention(conn, settings, today, default_retention_days)
    return MaintenanceReport(created, dropped, spans, traces)


def _delete_past_retention(
    conn: Connection,
    settings: list[sa.Row[tuple[int, int]]],
    today: datetime,
    default_retention_days: int,
) -> tuple[int, int]:
    """Rows past their workspace's retention deleted: (spans, traces)."""
    deleted_spans = deleted_traces = 0
    shorter = {r.workspace_id: r.retention_days for r in settings}
    # rows older than the default for workspaces without their own setting, and older
    # than their own for those with one (what no partition drop removed)
    cutoff = today - timedelta(days=default_retention_days)
    others = sa.not_(Span.c.workspace_id.in_(list(shorter))) if shorter else sa.true()
    deleted_spans += conn.execute(
        sa.delete(Span).where(Span.c.start_time < cutoff, others)
    ).rowcount
    others_t = sa.not_(Trace.c.workspace_id.in_(list(shorter))) if shorter else sa.true()
    deleted_traces += conn.execute(
        sa.delete(Trace).where(Trace.c.bucket < cutoff - timedelta(days=1), others_t)
    ).rowcount
    for workspace_id, days in shorter.items():
        ws_cut = today - timedelta(days=days)
        deleted_spans += conn.execute(
            sa.delete(Span).where(Span.c.workspace_id == workspace_id, Span.c.start_time < ws_cut)
        ).rowcount
        deleted_traces += conn.execute(
            sa.delete(Trace).where(
                Trace.c.workspace_id == workspace_id, Trace.c.bucket < ws_cut - timedelta(days=1)
            )
        ).rowcount
    return deleted_spans, deleted_traces
