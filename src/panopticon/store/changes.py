"""Has anything been committed to the database since a moment? A token that says so cheaply.

:class:`ChangeWatch` reads a token that changes whenever any transaction of any process
commits to the database, from one connection of its own, in a statement that touches no
table:

- SQLite: ``PRAGMA data_version``, which changes on a connection when another connection
  (this process's or another's) has committed since it last asked.
- PostgreSQL: ``pg_current_snapshot()``, the snapshot a statement would read with now. Two
  equal snapshots see exactly the same committed rows; any transaction that writes takes a
  transaction id, which moves the snapshot (cluster-wide: a write to another database of
  the same server moves it too, which costs a recomputation, never a stale answer).

Take the token **before** reading what it guards: a commit between the token and the read
shows in the next token, so a value kept with a token is at worst recomputed, never stale.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from panopticon.store.engine import Engine

__all__ = ["ChangeWatch"]

log = logging.getLogger(__name__)


class ChangeWatch:
    """``token()``: equal to an earlier token only if nothing was committed in between;
    None when it cannot tell (an in-memory database, a connection that failed), and then
    nothing may be taken as unchanged. Thread-safe; each call is one statement on a
    connection kept for it (not the pool's)."""

    #: after a second failure in a row, seconds with no new try (each answering None)
    RETRY_S = 1.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._conn: Any = None
        self._connection_no = 0  # a new connection starts its own sequence of tokens
        self._failures = 0
        self._retry_at = 0.0
        dialect = engine.dialect.name
        self._statement = (
            "PRAGMA data_version"
            if dialect == "sqlite"
            else "SELECT pg_current_snapshot()::text"
            if dialect == "postgresql"
            else None
        )
        if dialect == "sqlite" and engine.url.database in (None, "", ":memory:"):
            self._statement = None  # each connection has a database of its own

    def token(self) -> tuple[int, object] | None:
        if self._statement is None:
            return None
        with self._lock:
            if self._failures >= 2 and time.monotonic() < self._retry_at:
                return None
            try:
                if self._conn is None:
                    self._conn = self._connect()
                    self._connection_no += 1
                cursor = self._conn.cursor()
                try:
                    cursor.execute(self._statement)
                    row = cursor.fetchone()
                finally:
                    cursor.close()
            except Exception as exc:  # a restart, a file moved: tell nothing, try anew
                log.debug("change watch: %s", exc)
                self._close()
                # the first failure (a connection the server closed) is tried again at
                # once; a second in a row (the server away or full, a statement it cannot
                # run) waits: else every request would open a connection, one at a time
                self._failures += 1
                self._retry_at = time.monotonic() + self.RETRY_S
                return None
            self._failures = 0
            return (self._connection_no, row[0])

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception as exc:
                log.debug("change watch: closing: %s", exc)
            self._conn = None

    def _connect(self) -> Any:
        dialect = self.engine.dialect
        cargs, cparams = dialect.create_connect_args(self.engine.url)
        if dialect.name == "sqlite":
            cparams["check_same_thread"] = False  # used by the reader threads, one at a time
        else:  # the token is read under a lock: never wait long for it
            cparams.setdefault("connect_timeout", 5)
            cparams.setdefault("options", "-c statement_timeout=5000")
        conn = dialect.connect(*cargs, **cparams)
        if dialect.name == "sqlite":
            conn.isolation_level = None  # no transaction left open between tokens
        else:
            conn.autocommit = True
        return conn
