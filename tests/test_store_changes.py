"""The store's change token (panopticon.store.changes.ChangeWatch): equal to an earlier one
only while nothing was committed, on both databases; and when the database cannot be
reached, it says so without opening a connection on every call."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from panopticon.store.changes import ChangeWatch
from panopticon.store.tables import Workspace


def test_the_token_moves_with_every_commit_and_only_then(engine: sa.Engine) -> None:
    watch = ChangeWatch(engine)
    try:
        first = watch.token()
        assert first is not None
        with engine.connect() as conn:  # a read commits nothing
            conn.execute(sa.select(sa.func.count()).select_from(Workspace)).scalar()
        assert watch.token() == first
        # a write in a transaction still open when the token is read: seen once committed
        with engine.connect() as writer:
            writer.execute(sa.insert(Workspace).values(name="opened-before"))
            during = watch.token()
            writer.commit()
        assert during is not None and watch.token() != during
        # a write in a savepoint only (PostgreSQL: a subtransaction's xid)
        before = watch.token()
        with engine.connect() as writer:
            with writer.begin_nested():
                writer.execute(sa.insert(Workspace).values(name="in-a-savepoint"))
            writer.commit()
        assert watch.token() != before
    finally:
        watch.close()


@pytest.fixture
def refusing_server() -> Iterator[tuple[int, list[int]]]:
    """A TCP port that accepts connections and closes them at once (a database that is
    away or full): its port and the count of connections it accepted."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted = [0]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted[0] += 1
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    stop.set()
    listener.close()
    thread.join(5)


def test_a_database_that_refuses_connections_is_not_asked_again_on_every_call(
    refusing_server: tuple[int, list[int]],
) -> None:
    """Each results request reads the token, one at a time on the watch's connection: with
    a new connection tried on every call, a database that is away or full got a connection
    attempt per request (and the requests waited in line for them)."""
    pytest.importorskip("psycopg")
    port, accepted = refusing_server
    engine = sa.create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none")
    watch = ChangeWatch(engine)
    try:
        assert [watch.token() for _ in range(50)] == [None] * 50
        # tried again at once after the first failure only (libpq may knock twice: with
        # SSL, then without)
        assert accepted[0] <= 4, accepted
        watch.RETRY_S = 0.05  # and again a little later
        tried = accepted[0]
        deadline = time.monotonic() + 30
        while accepted[0] == tried:
            assert watch.token() is None and time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        watch.close()
        engine.dispose()
