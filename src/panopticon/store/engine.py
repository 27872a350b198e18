"""Engines and schema state. No engine exists at import time; callers build one."""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from panopticon.errors import MigrationRequiredError, MissingDependencyError, StoreError
from panopticon.keyfiles import private_dir
from panopticon.providers.redact import mask_secrets
from panopticon.settings import Settings
from panopticon.store.text_index import ensure_text_index

__all__ = [
    "HEAD_REVISION",
    "Engine",
    "create_engine",
    "current_revision",
    "ensure_schema",
    "json_text",
    "ping",
    "read",
    "retry_on_race",
    "sqlstate",
    "upgrade",
]

T = TypeVar("T")

# Services and interfaces hold an Engine and pass it to store queries; they name its type
# from here, so that SQLAlchemy is imported by store/ alone (an import-linter contract).

# The newest migration. A test checks it equals Alembic's head, so checking the schema at
# start-up needs one SELECT instead of importing Alembic.
HEAD_REVISION = "0021"
MIGRATIONS = Path(__file__).with_name("migrations")


def json_text(value: Any) -> str:
    """A JSON column's value as stored (orjson; the engines' serializer)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns through orjson: several times faster than the stdlib on every row written
_JSON_CODEC: dict[str, Any] = {"json_serializer": json_text, "json_deserializer": orjson.loads}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer; NORMAL: a commit survives a crashed process
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (0600; SQLite gives its -wal and
    -shm files the same mode), in a directory only they may enter when it is new (0700):
    it holds API key hashes and encrypted credentials."""
    if path.exists():
        return
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def create_engine(settings: Settings) -> Engine:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            _private_file(Path(path))
        # as many pooled connections as threads that read at once (the API's readers and
        # thread pool): past the pool's size each connection was opened and closed per use
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False},
            pool_size=20,
            max_overflow=30,
            **_JSON_CODEC,
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    from panopticon.store.tables.runs import postgresql_options

    postgresql_options()
    try:
        # no pool_pre_ping: its SELECT 1 was a round trip on every checkout. A connection
        # the server closed is found at checkout without one (_drop_closed), and a read that
        # still meets one is tried again once on a fresh connection (read()).
        engine = sa.create_engine(url, pool_size=10, max_overflow=10, **_JSON_CODEC)
    except ModuleNotFoundError as exc:
        if "psycopg" in str(exc):
            raise MissingDependencyError("psycopg", "postgres", "PostgreSQL") from None
        raise
    sa.event.listen(engine, "checkout", _drop_closed)
    return engine


def _drop_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled PostgreSQL connection the server has closed or is closing, with no
    round trip: an idle connection has nothing to read unless the server wrote to it (a
    termination notice: pg_terminate_backend, a restart) or closed it. The pool then
    discards it and opens another (SQLAlchemy's DisconnectionError contract)."""
    if dbapi_connection.closed or dbapi_connection.broken:
        raise sa.exc.DisconnectionError("the connection is closed")
    try:
        readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    except (OSError, ValueError) as exc:
        raise sa.exc.DisconnectionError(f"the connection cannot be used: {exc}") from exc
    if readable:
        raise sa.exc.DisconnectionError("the server closed the connection while it was idle")


def sqlstate(exc: sa.exc.DBAPIError) -> str | None:
    """PostgreSQL's SQLSTATE of an error (psycopg 3 ``sqlstate``, psycopg 2 ``pgcode``)."""
    return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)


def read(engine: Engine, work: Callable[[sa.Connection], T]) -> T:
    """``work(conn)`` on a connection in autocommit mode, for reads: no BEGIN and no
    ROLLBACK round trips on PostgreSQL (each statement sees committed data, as a
    READ COMMITTED transaction would statement by statement). When the connection turns out
    to have been closed by the server (a restart, pg_terminate_backend between the checkout
    and the first statement), the pool is renewed and the read tried once more. A read the
    server chose as a deadlock's victim (it took its locks in another order than some DDL
    did) is tried again too, a little later: it changed nothing."""
    for attempt in range(1, _READ_ATTEMPTS + 1):
        try:
            with engine.connect() as conn:
                if engine.dialect.name != "sqlite":
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                return work(conn)
        except sa.exc.DBAPIError as exc:
            deadlock = sqlstate(exc) == "40P01"
            if attempt == _READ_ATTEMPTS or not (
                (exc.connection_invalidated and attempt == 1) or deadlock
            ):
                raise
            if deadlock:
                time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


_READ_ATTEMPTS = 3


def ping(engine: Engine) -> str | None:
    """None when the database answers a trivial query, else what went wrong."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return str(getattr(exc, "orig", exc))
    return None


def retry_on_race(work: Callable[[], T], attempts: int = 5) -> T:
    """``work()``, tried again (up to ``attempts`` times in all, a little later each time)
    when it lost a race with another process: a unique row the other inserted first, or
    SQLite's lock held by the other's transaction. ``work`` must run its own transaction, so
    that the next try finds the winner's rows. Any other error is raised at once."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
            racing = isinstance(exc, sa.exc.IntegrityError) or "locked" in str(exc)
            if attempt == attempts or not racing:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.OperationalError as exc:
        raise StoreError(
            f"cannot open the database ({engine.url.render_as_string(hide_password=True)}): "
            f"{mask_secrets(str(exc.orig), [engine.url.password], limit=None)}; check "
            "PANOPTICON_DATABASE_URL and that the server is running"
        ) from None


def _is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return not sa.inspect(conn).get_table_names()


def _create_at_head(engine: Engine) -> None:
    """An empty database gets the models' schema and is stamped at head, as Alembic's
    cookbook advises: the same result as running every migration (a test checks that),
    without importing Alembic on a laptop's first run."""
    from panopticon.store.tables import Workspace, metadata

    # Alembic's own definition of its table, constraint name included
    version = sa.Table(
        "alembic_version",
        sa.MetaData(),
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
    )
    with engine.begin() as conn:
        # the database is empty (ensure_schema checked): no per-table existence checks
        metadata.create_all(conn, checkfirst=False)
        ensure_text_index(conn)  # not a model: a database without pg_trgm matches them too
        version.create(conn)
        conn.execute(version.insert().values(version_num=HEAD_REVISION))
        conn.execute(sa.insert(Workspace).values(name="default"))


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision``. Returns a note for the operator when something
    optional could not be set up (the text-search index without pg_trgm), else None."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        if revision != "head":
            return None
        return ensure_text_index(conn)  # retried on every upgrade: pg_trgm may come later


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> None:
    """Make sure the schema matches the code; upgrade it when allowed."""
    rev = current_revision(engine)
    if rev == HEAD_REVISION:
        return
    if auto_upgrade:
        if rev is None and _is_empty(engine):
            _create_at_head(engine)
        else:
            upgrade(engine)
        return
    if rev is None:
        raise MigrationRequiredError(
            "the database has no Panopticon tables yet: run `panopticon db upgrade`"
        )
    raise MigrationRequiredError(
        f"the database schema is at revision {rev}, this version of Panopticon needs "
        f"{HEAD_REVISION}: run `panopticon db upgrade`"
    )
