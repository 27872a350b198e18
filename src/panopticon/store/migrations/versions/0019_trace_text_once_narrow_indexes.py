"""A trace's text stored once; indexes narrowed to the rows their queries read

Writing a gateway call (a trace of one span) cost its span row and its trace row with all
their indexes (issue 12: logging's cost). Here:

- ``trace.search_text`` holds only the text its ``input_text`` and ``output_text`` do not
  (None for a one-turn call, which repeated both); text search reads the three
  (store.text_index.searched_text) and the pg_trgm index is on that expression. Rows
  written before whose search text is exactly their input and output lose the copy.
- ``ix_trace_workspace_session`` and ``ix_trace_workspace_user`` leave out traces without a
  session (user): their filters are equalities; ``ix_trace_tags_gin`` (PostgreSQL) leaves
  out traces without tags: tag containment implies tags.
- ``ix_span_workspace_model_start`` is dropped: no query reads it (a span's model is read
  by the span's key, and as "served or requested", which that index cannot answer).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 10:30:00
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from panopticon.store.text_index import TEXT_INDEX, ensure_text_index

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# what 0018 and the writer until now made of a trace's input and output alone
_BOTH = (
    "CASE WHEN output_text IS NULL THEN input_text WHEN input_text IS NULL THEN output_text "
    "ELSE input_text || :newline || output_text END"
)


def _narrow(name: str, column: str, where: str | None) -> None:
    op.drop_index(name, table_name="trace")
    clause = None if where is None else sa.text(where)
    op.create_index(
        name,
        "trace",
        ["workspace_id", column, "start_time"],
        sqlite_where=clause,
        postgresql_where=clause,
    )


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.drop_index("ix_span_workspace_model_start", table_name="span")
    _narrow("ix_trace_workspace_session", "session_id", "session_id IS NOT NULL")
    _narrow("ix_trace_workspace_user", "user_id", "user_id IS NOT NULL")
    if postgresql:
        op.drop_index("ix_trace_tags_gin", table_name="trace")
        op.create_index(
            "ix_trace_tags_gin",
            "trace",
            ["tags"],
            postgresql_using="gin",
            postgresql_where=sa.text("tags IS NOT NULL"),
        )
    op.execute(f"DROP INDEX IF EXISTS {TEXT_INDEX}")
    op.execute(
        sa.text(f"UPDATE trace SET search_text = NULL WHERE search_text = {_BOTH}").bindparams(
            newline="\n"
        )
    )
    problem = ensure_text_index(op.get_bind())
    if problem:  # text search still works, unindexed; `panopticon db upgrade` says so too
        logging.getLogger("alembic.runtime.migration").warning("%s", problem)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.execute(f"DROP INDEX IF EXISTS {TEXT_INDEX}")
    op.execute(
        sa.text(
            f"UPDATE trace SET search_text = CASE WHEN search_text IS NULL THEN {_BOTH} "
            f"ELSE {_BOTH} || :newline || search_text END "
            "WHERE input_text IS NOT NULL OR output_text IS NOT NULL"
        ).bindparams(newline="\n")
    )
    if postgresql:
        trgm = op.get_bind().execute(
            sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        )
        if trgm.first():
            op.execute(f"CREATE INDEX {TEXT_INDEX} ON trace USING gin (search_text gin_trgm_ops)")
        op.drop_index("ix_trace_tags_gin", table_name="trace")
        op.create_index("ix_trace_tags_gin", "trace", ["tags"], postgresql_using="gin")
    _narrow("ix_trace_workspace_user", "user_id", None)
    _narrow("ix_trace_workspace_session", "session_id", None)
    op.create_index(
        "ix_span_workspace_model_start", "span", ["workspace_id", "model_served", "start_time"]
    )
