"""Alembic environment: runs on the connection Panopticon passes in, or on sqlalchemy.url."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from panopticon.store.tables import metadata
from panopticon.store.tables.runs import postgresql_options

config = context.config


def _run(connection: sa.Connection) -> None:
    if connection.dialect.name == "postgresql":
        postgresql_options()
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _run(conn)
