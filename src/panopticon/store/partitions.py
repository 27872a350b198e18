"""Time partitions of ``trace`` and ``span`` on PostgreSQL, and retention on both databases.

Each table is range-partitioned by day (``span_p20261202`` holds spans that started on
2 December 2026, UTC) with a ``_default`` partition that catches anything outside the
created range, so an insert never fails for want of a partition. :func:`maintain` creates
yesterday's partition and a week ahead, drops partitions older than the longest
retention of any workspace (a ``DROP TABLE``: instant, no vacuum), and deletes the rows of
workspaces whose own retention is shorter. On SQLite only the deletions apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.store.tables import Span, Trace, TraceSettings

__all__ = ["PARTITIONED", "MaintenanceReport", "is_partition", "maintain", "partition_names"]

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


def create_default_partitions(conn: Connection) -> None:
    for table in PARTITIONED:
        conn.execute(
            sa.text(f"CREATE TABLE IF NOT EXISTS {table}_default PARTITION OF {table} DEFAULT")
        )


def _create_days(conn: Connection, first: datetime, last: datetime) -> list[str]:
    created = []
    for table in PARTITIONED:
        existing = set(partition_names(conn, table))
        day = first
        while day <= last:
            name = f"{table}_p{day:%Y%m%d}"
            if name not in existing:
                # a day whose rows went to the default partition cannot be created over
                # them; such rows stay in the default (still read, dropped by retention)
                try:
                    with conn.begin_nested():
                        conn.execute(
                            sa.text(
                                f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM "
                                f"('{day.isoformat()}') TO "
                                f"('{(day + timedelta(days=1)).isoformat()}')"
                            )
                        )
                    created.append(name)
                except sa.exc.DBAPIError:
                    pass
            day += timedelta(days=1)
    return created


def maintain(
    conn: Connection,
    *,
    now: datetime,
    default_retention_days: int,
    ahead_days: int = 7,
) -> MaintenanceReport:
    """Create partitions from yesterday to ``ahead_days`` ahead, drop whole
    days past every workspace's retention, delete rows past a shorter workspace retention."""
    today = _day(now)
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
    if conn.dialect.name == "postgresql":
        create_default_partitions(conn)
        # yesterday to a week ahead: what live traffic needs. Spans sent late for older
        # days land in the default partition (read as usual, deleted by retention).
        created = _create_days(conn, today - timedelta(days=1), today + timedelta(days=ahead_days))
        horizon = today - timedelta(days=longest)
        for table in PARTITIONED:
            for name in partition_names(conn, table):
                m = _NAME.match(name)
                if m and m.group(3):
                    day = datetime.strptime(m.group(3), "%Y%m%d").replace(tzinfo=UTC)
                    if day + timedelta(days=1) <= horizon:
                        conn.execute(sa.text(f"DROP TABLE {name}"))
                        dropped.append(name)
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
    return MaintenanceReport(created, dropped, deleted_spans, deleted_traces)
