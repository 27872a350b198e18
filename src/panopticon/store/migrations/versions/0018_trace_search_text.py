"""trace.search_text: the text of a trace's inputs and outputs, for the explorer's text
search (a pg_trgm GIN index on PostgreSQL when the extension can be added)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from panopticon.store.text_index import ensure_text_index

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trace", schema=None) as batch_op:
        batch_op.add_column(sa.Column("search_text", sa.Text(), nullable=True))
    # traces stored before: searched by their input and output (the writer adds every
    # span's text from now on)
    op.execute(
        sa.text(
            "UPDATE trace SET search_text = CASE WHEN output_text IS NULL THEN input_text "
            "WHEN input_text IS NULL THEN output_text "
            "ELSE input_text || :newline || output_text END "
            "WHERE input_text IS NOT NULL OR output_text IS NOT NULL"
        ).bindparams(newline="\n")
    )
    problem = ensure_text_index(op.get_bind())
    if problem:  # text search still works, unindexed; `panopticon db upgrade` says so too
        logging.getLogger("alembic.runtime.migration").warning("%s", problem)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_trace_search_trgm")
    with op.batch_alter_table("trace", schema=None) as batch_op:
        batch_op.drop_column("search_text")
