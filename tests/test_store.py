"""Migrations are code: from empty to head on each database, matching the models."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.settings import Settings
from panopticon.store.engine import (
    HEAD_REVISION,
    MIGRATIONS,
    create_engine,
    current_revision,
    upgrade,
)
from panopticon.store.partitions import is_partition
from panopticon.store.tables import Trace, metadata
from panopticon.store.tables.traces import POSTGRES_ONLY_INDEXES
from panopticon.store.text_index import TEXT_INDEX, has_text_index
from tests.conftest import PG_URL, _admin_url, new_pg_database


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
            # trace and span partitions are made by maintenance, not modelled
            ctx = MigrationContext.configure(
                conn,
                opts={
                    "include_name": lambda name, kind, _p: (
                        not (kind == "table" and is_partition(name))
                    ),
                    # GIN indexes exist on PostgreSQL only; the trigram index when pg_trgm
                    # could be added, so it is not a model
                    "include_object": lambda _o, name, kind, _r, _c: (
                        not (
                            kind == "index"
                            and name in POSTGRES_ONLY_INDEXES
                            and conn.dialect.name != "postgresql"
                        )
                        and not (kind == "index" and name == TEXT_INDEX)
                    ),
                },
            )
            diff = compare_metadata(ctx, metadata)
            assert diff == [], f"models and migrations differ: {diff}"
            assert conn.execute(sa.text("SELECT name FROM workspace")).scalars().all() == [
                "default"
            ]
        upgrade(engine)  # idempotent
    finally:
        engine.dispose()
        if drop:
            drop()


def test_scores_stored_before_0007_get_their_workspace_model_and_query(
    settings: Settings,
) -> None:
    """Migration 0007 copies each score's workspace, model and query from its run and
    result; without it the dashboard would not count older scores."""
    import uuid
    from datetime import UTC, datetime

    from panopticon.store.tables import Metric, Model, Provider, Query, Result, Run, Score

    drop = None
    if PG_URL:
        url, drop = new_pg_database(None)
        settings = Settings(home=settings.home, database_url=url)
    engine = create_engine(settings)
    now = datetime.now(UTC)
    try:
        upgrade(engine, "0006")
        with engine.begin() as conn:
            pid = conn.execute(
                sa.insert(Provider)
                .values(workspace_id=1, name="p", kind="openai", options={}, created_at=now)
                .returning(Provider.c.id)
            ).scalar_one()
            mid = conn.execute(
                sa.insert(Model)
                .values(
                    workspace_id=1,
                    provider_id=pid,
                    name="m",
                    provider_model="m",
                    settings={},
                    created_at=now,
                    updated_at=now,
                )
                .returning(Model.c.id)
            ).scalar_one()
            qid = conn.execute(
                sa.insert(Query)
                .values(
                    workspace_id=1,
                    text="q",
                    messages=[],
                    theme="t",
                    metadata={},
                    content_hash="h",
                    created_at=now,
                )
                .returning(Query.c.id)
            ).scalar_one()
            metric = conn.execute(
                sa.insert(Metric)
                .values(
                    workspace_id=1,
                    name="x",
                    type="rubric",
                    definition={},
                    version="1",
                    created_at=now,
                )
                .returning(Metric.c.id)
            ).scalar_one()
            run = conn.execute(
                sa.insert(Run)
                .values(
                    workspace_id=1,
                    name="r",
                    status="completed",
                    suite={},
                    suite_fingerprint="f",
                    planned=1,
                    totals={},
                    created_at=now,
                )
                .returning(Run.c.id)
            ).scalar_one()
            rid = uuid.uuid4()
            conn.execute(
                sa.insert(Result).values(
                    id=rid,
                    run_id=run,
                    query_id=qid,
                    model_id=mid,
                    repeat=0,
                    cache_key="k",
                    request={},
                    cached=False,
                    attempts=1,
                    created_at=now,
                )
            )
            conn.execute(
                sa.insert(Score).values(
                    id=uuid.uuid4(),
                    run_id=run,
                    result_id=rid,
                    metric_id=metric,
                    value=1.0,
                    judge_cached=False,
                    created_at=now,
                )
            )
        upgrade(engine)
        with engine.connect() as conn:
            row = conn.execute(sa.select(Score.c.workspace_id, Score.c.model_id, Score.c.query_id))
            assert row.one() == (1, mid, qid)
    finally:
        engine.dispose()
        if drop:
            drop()


@pytest.mark.postgres_only
def test_without_pg_trgm_upgrade_says_how_to_get_the_text_index_and_adds_it_later() -> None:
    """A role that may not add extensions: the schema is made, text search works unindexed,
    `db upgrade` says what to do; once the extension exists, the next upgrade adds the index."""
    assert PG_URL
    url, drop = new_pg_database(None)
    role = f"panopticon_noext_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(sa.text(f"GRANT CREATE ON SCHEMA public TO {role}"))
    limited = url.replace("://postgres@", f"://{role}@")
    env = {"PANOPTICON_DATABASE_URL": limited}
    try:
        first = CliRunner().invoke(app, ["db", "upgrade"], env=env)
        assert first.exit_code == 0, first.output
        assert "note: the trace explorer's text search has no trigram index" in first.output
        assert "CREATE EXTENSION pg_trgm" in first.output and "db upgrade" in first.output
        engine = create_engine(Settings(database_url=limited))
        with engine.connect() as conn:
            assert current_revision(engine) == HEAD_REVISION and not has_text_index(conn)
            found = conn.execute(
                sa.select(Trace.c.id).where(Trace.c.search_text.ilike("%words%"))
            ).all()
            assert found == []  # answered, unindexed
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE EXTENSION pg_trgm"))
        again = CliRunner().invoke(app, ["db", "upgrade"], env=env)
        assert again.exit_code == 0 and "note:" not in again.output, again.output
        with engine.connect() as conn:
            assert has_text_index(conn)
        engine.dispose()
    finally:
        admin.dispose()
        drop()
        cleanup = sa.create_engine(
            _admin_url(url).replace("postgresql://", "postgresql+psycopg://"),
            isolation_level="AUTOCOMMIT",
        )
        with cleanup.connect() as conn:
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
        cleanup.dispose()


def test_work_that_lost_a_race_for_a_unique_row_is_tried_again_and_finds_the_winners_row(
    engine: sa.Engine,
) -> None:
    from panopticon.store.engine import retry_on_race
    from panopticon.store.tables import Workspace

    with engine.begin() as conn:  # the other process registered it first
        winner = conn.execute(sa.insert(Workspace).values(name="raced")).inserted_primary_key[0]
    tries: list[int] = []

    def register() -> int:
        tries.append(1)
        with engine.begin() as conn:
            if len(tries) > 1:  # a later try looks again and finds it
                found = conn.execute(sa.select(Workspace.c.id).where(Workspace.c.name == "raced"))
                return int(found.scalar_one())
            inserted = conn.execute(sa.insert(Workspace).values(name="raced"))
            return int(inserted.inserted_primary_key[0])

    assert retry_on_race(register) == winner
    assert len(tries) == 2


def test_an_error_that_is_not_a_race_is_raised_at_once(engine: sa.Engine) -> None:
    from panopticon.store.engine import retry_on_race

    tries: list[int] = []

    def broken() -> None:
        tries.append(1)
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT * FROM no_such_table"))

    with pytest.raises(sa.exc.DBAPIError):
        retry_on_race(broken)
    assert len(tries) == 1
