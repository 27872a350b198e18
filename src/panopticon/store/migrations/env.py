"""Alembic environment: runs on the connection Panopticon passes in, or on sqlalchemy.url."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from panopticon.store.partitions import is_partition
from panopticon.store.tables import metadata
from panopticon.store.tables.runs import postgresql_options
from panopticon.store.tables.traces import POSTGRES_ONLY_INDEXES
from panopticon.store.text_index import TEXT_INDEX

config = context.config


def _run(connection: sa.Connection) -> None:
    if connection.dialect.name == "postgresql":
        postgresql_options()
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # the daily partitions of trace and span are made by maintenance, not modelled
        include_name=lambda name, kind, _parent: not (kind == "table" and is_partition(name)),
        include_object=lambda _obj, name, kind, _reflected, _other: (
            not (
                kind == "index"
                and name in POSTGRES_ONLY_INDEXES
                and connection.dialect.name != "postgresql"
            )
            # made when pg_trgm can be had (store.text_index), so not a model
            and not (kind == "index" and name == TEXT_INDEX)
        ),
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
