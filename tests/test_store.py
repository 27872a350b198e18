"""Migrations are code: from empty to head on each database, matching the models."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from panopticon.settings import Settings
from panopticon.store.engine import HEAD_REVISION, MIGRATIONS, create_engine, upgrade
from panopticon.store.tables import metadata
from tests.conftest import PG_URL, new_pg_database


def test_head_revision_constant_matches_alembic() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION


def test_upgrading_an_empty_database_gives_exactly_the_models(settings: Settings) -> None:
    drop = None
    if PG_URL:
        url, drop = new_pg_database(None)  # empty, not from the migrated template
        settings = Settings(home=settings.home, database_url=url)
    engine = create_engine(settings)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            assert diff == [], f"models and migrations differ: {diff}"
            assert conn.execute(sa.text("SELECT name FROM workspace")).scalars().all() == [
                "default"
            ]
        upgrade(engine)  # idempotent
    finally:
        engine.dispose()
        if drop:
            drop()
