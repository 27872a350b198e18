"""Migrations are code: from empty to head on each database, matching the models."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

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
    ensure_schema,
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


def _plain(value: Any) -> Any:
    """A reflected value made comparable: SQL expressions and types by their text."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, sa.types.TypeEngine):
        return repr(value)  # VARCHAR(32), TIMESTAMP(timezone=True): arguments included
    if isinstance(value, sa.sql.ClauseElement):
        return str(value)
    return value


def _if_reflected(read: Any, table: str) -> Any:
    """What the dialect reflects, or None where it reflects nothing of the kind."""
    try:
        return read(table)
    except NotImplementedError:
        return None


def reflected_schema(conn: sa.Connection) -> dict[str, Any]:
    """Everything the database says about its schema: per table, the columns (type,
    nullability, default, identity), keys, foreign keys, indexes (expressions, partial
    conditions and access methods included), unique and check constraints, comments and
    options; on SQLite every index, trigger and view as stored; on PostgreSQL partition
    keys, triggers, functions, sequences and extensions. Partitions made by maintenance
    are left out (neither way of creating a database makes them)."""
    insp = sa.inspect(conn)
    tables: dict[str, Any] = {}
    for name in sorted(n for n in insp.get_table_names() if not is_partition(n)):
        tables[name] = _plain(
            {
                "columns": sorted(insp.get_columns(name), key=lambda c: str(c["name"])),
                "primary_key": insp.get_pk_constraint(name),
                "foreign_keys": sorted(insp.get_foreign_keys(name), key=repr),
                "indexes": sorted(insp.get_indexes(name), key=lambda i: str(i["name"])),
                "unique": sorted(insp.get_unique_constraints(name), key=repr),
                "checks": sorted(insp.get_check_constraints(name), key=repr),
                "comment": _if_reflected(insp.get_table_comment, name),
                "options": _if_reflected(insp.get_table_options, name),
            }
        )
    schema: dict[str, Any] = {"tables": tables, "views": sorted(insp.get_view_names())}
    if conn.dialect.name == "sqlite":
        # autoindexes are named by creation order, not by content: their columns are
        # compared above, as unique constraints and primary keys
        schema["sqlite_master"] = conn.execute(
            sa.text(
                "SELECT type, name, tbl_name, sql FROM sqlite_master "
                "WHERE type IN ('index', 'trigger', 'view') AND name NOT LIKE 'sqlite_%' "
                "ORDER BY type, name"
            )
        ).all()
    else:
        for key, sql in {
            "partition_keys": "SELECT c.relname, pg_get_partkeydef(c.oid) FROM "
            "pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid ORDER BY 1",
            "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) "
            "FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2",
            "functions": "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' "
            "AND p.prokind = 'f' AND NOT EXISTS (SELECT 1 FROM pg_depend d "
            "WHERE d.objid = p.oid AND d.deptype = 'e') ORDER BY 1",
            "sequences": "SELECT sequence_name, data_type, increment FROM "
            "information_schema.sequences WHERE sequence_schema = 'public' ORDER BY 1",
            "extensions": "SELECT extname FROM pg_extension ORDER BY 1",
        }.items():
            schema[key] = [tuple(row) for row in conn.execute(sa.text(sql))]
    schema["rows"] = {
        "alembic_version": conn.execute(sa.text("SELECT version_num FROM alembic_version")).all(),
        "workspace": conn.execute(sa.text("SELECT id, name FROM workspace ORDER BY id")).all(),
    }
    return schema


def test_a_new_database_created_from_the_models_has_exactly_the_migrated_schema(
    tmp_path: Path,
) -> None:
    """A new database is created from the models and stamped at head (no Alembic import on
    a laptop's first run, see ensure_schema); the result must be the database that replaying
    every migration gives: tables, columns, keys, indexes, constraints, all of it."""
    drops = []
    schemas = {}
    try:
        for way in ("migrated", "created"):
            if PG_URL:
                url, drop = new_pg_database(None)  # empty, not the migrated template
                drops.append(drop)
                settings = Settings(home=tmp_path / way, database_url=url)
            else:
                settings = Settings(home=tmp_path / way)
            engine = create_engine(settings)
            try:
                if way == "migrated":
                    upgrade(engine)
                else:
                    ensure_schema(engine, auto_upgrade=True)  # the way `panopticon run` does
                with engine.connect() as conn:
                    schemas[way] = reflected_schema(conn)
            finally:
                engine.dispose()
    finally:
        for drop in drops:
            drop()
    migrated, created = schemas["migrated"], schemas["created"]
    assert migrated["rows"]["alembic_version"] == [(HEAD_REVISION,)]
    assert set(created["tables"]) == set(migrated["tables"])
    for table in migrated["tables"]:
        assert created["tables"][table] == migrated["tables"][table], table
    assert created == migrated


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
