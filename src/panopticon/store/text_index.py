"""The trigram index behind the trace explorer's text search, on PostgreSQL.

The explorer's text filter reads :func:`searched_text`: a trace's ``input_text``, its
``output_text`` and its ``search_text`` (the text of its spans' inputs and outputs that
the first two do not hold: see the trace writer), one after the other, cut at
:data:`SEARCHED_CHARS`. A ``pg_trgm`` GIN index on that expression answers ``ILIKE
'%words%'`` from the index (the query and the index are made from the one SQL text here:
PostgreSQL uses an expression index only for the same expression). pg_trgm
ships with PostgreSQL (contrib) and is a trusted extension (any role that may create in the
database may add it), but a server built without contrib, or a role without that right,
cannot have it: then the index is left out, text search reads every trace of the period
(correct, slower), and :func:`ensure_text_index` says why and how to fix it. The index is
not among the models (a database without pg_trgm still matches them); the migration, a new
database and every ``panopticon db upgrade`` call :func:`ensure_text_index`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["SEARCHED_CHARS", "TEXT_INDEX", "ensure_text_index", "has_text_index", "searched_text"]

TEXT_INDEX = "ix_trace_search_trgm"
SEARCHED_CHARS = 32_768  # characters of a trace's texts that text search reads


def _searched_sql(newline: str) -> str:
    return (
        f"substr(coalesce(input_text, '') || {newline} || coalesce(output_text, '') || "
        f"{newline} || coalesce(search_text, ''), 1, {SEARCHED_CHARS})"
    )


_SEARCHED = {"postgresql": _searched_sql("chr(10)"), "sqlite": _searched_sql("char(10)")}


def searched_text(dialect: str) -> sa.ColumnElement[str]:
    """The text a trace's text filter reads (of the ``trace`` table, unaliased)."""
    return sa.literal_column(_SEARCHED[dialect], sa.Text)


MISSING = (
    "the trace explorer's text search has no trigram index ({reason}); it still works, "
    "reading every trace of the period. Fix: install PostgreSQL's contrib package "
    "(pg_trgm), or have a superuser run CREATE EXTENSION pg_trgm in this database, then "
    "run `panopticon db upgrade` again"
)


def has_text_index(conn: Connection) -> bool:
    return bool(
        conn.execute(
            sa.text("SELECT 1 FROM pg_class WHERE relname = :name AND relkind IN ('i', 'I')"),
            {"name": TEXT_INDEX},
        ).first()
    )


def ensure_text_index(conn: Connection) -> str | None:
    """Add pg_trgm and the index if they are missing (PostgreSQL only; idempotent).
    Returns None when the index is in place (or on SQLite), else what to do about it."""
    if conn.dialect.name != "postgresql" or has_text_index(conn):
        return None
    try:
        with conn.begin_nested():  # a failure leaves the caller's transaction usable
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return MISSING.format(reason=f"CREATE EXTENSION pg_trgm failed: {reason}")
    # on the partitioned parent: every partition, present and future, gets its own
    conn.execute(
        sa.text(
            f"CREATE INDEX IF NOT EXISTS {TEXT_INDEX} ON trace "
            f"USING gin (({_SEARCHED['postgresql']}) gin_trgm_ops)"
        )
    )
    return None
