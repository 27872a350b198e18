"""The store's side of the engine's sink: a writer thread with group commit.

``save_*`` only enqueues (microseconds, on the event loop). The writer thread takes the
first record, gathers whatever else arrives within ``window_s`` (5 ms), writes it all in one
transaction on its own connection and commits. So each record is durable within a few
milliseconds of existing, and a run of 1,000 calls a second costs a few hundred small
transactions a second instead of thousands (each holds the GIL the event loop needs). What
a ``kill -9`` can lose is what was queued and not yet committed: calls still in flight.

Rows are upserted on their natural keys, so a resumed run that retries a failed answer
replaces the failure instead of adding a second row.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from panopticon.errors import StoreError
from panopticon.evaluation.records import PairwiseRecord, ResultRecord, ScoreRecord
from panopticon.store.tables import Pairwise, Result, Run, Score

__all__ = ["StoreSink"]

log = logging.getLogger(__name__)
_RESULT_KEY = ("run_id", "query_id", "model_id", "repeat")
_SCORE_KEY = ("result_id", "metric_id")
_PAIR_KEY = ("run_id", "metric_id", "query_id", "repeat", "model_a_id", "model_b_id")
_RECORDS = (ResultRecord, ScoreRecord, PairwiseRecord)


def _upsert(engine: Engine, table: sa.Table, keys: tuple[str, ...]) -> Any:
    stmt: Any
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)
    update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=update)


class StoreSink:
    """Durable sink for one run. Use as a context manager, or call :meth:`close`."""

    HEARTBEAT_S = 5.0

    def __init__(
        self,
        engine: Engine,
        run_id: int,
        *,
        spool_dir: Path,
        max_batch: int = 5000,
        window_s: float = 0.005,
    ) -> None:
        self.engine = engine
        self.run_id = run_id
        self.spool_dir = spool_dir
        self.max_batch = max_batch
        self.window_s = window_s
        self._conn: sa.Connection | None = None
        self.failure: str | None = None
        self.on_failure: Any = None  # callable(message), called once
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._result_stmt = _upsert(engine, Result, _RESULT_KEY)
        self._score_stmt = _upsert(engine, Score, _SCORE_KEY)
        self._pair_stmt = _upsert(engine, Pairwise, _PAIR_KEY)
        with engine.connect() as conn:  # copied onto each score
            self.workspace_id = conn.scalar(sa.select(Run.c.workspace_id).where(Run.c.id == run_id))
        self._thread = threading.Thread(
            target=self._loop, name=f"panopticon-writer-{run_id}", daemon=True
        )
        self._closed = False
        self._thread.start()

    # --- engine side (event loop) ---------------------------------------------------------
    def save_result(self, record: ResultRecord) -> None:
        self._queue.put(record)

    def save_score(self, record: ScoreRecord) -> None:
        self._queue.put(record)

    def save_pairwise(self, record: PairwiseRecord) -> None:
        self._queue.put(record)

    def flush(self) -> None:
        done = threading.Event()
        self._queue.put(done)
        while not done.wait(1.0):
            if not self._thread.is_alive():
                raise StoreError("the database writer stopped unexpectedly")
        if self.failure:
            raise StoreError(self.failure)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(60)
            if self.failure:
                raise StoreError(self.failure)

    def __enter__(self) -> StoreSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writer thread ---------------------------------------------------------------------
    def _loop(self) -> None:
        last_beat = 0.0
        try:
            while True:
                items = self._gather()
                records = [i for i in items if isinstance(i, _RECORDS)]
                now = time.monotonic()
                beat = now - last_beat >= self.HEARTBEAT_S
                if records or beat:
                    self._write(records, beat)
                    if beat:
                        last_beat = now
                for item in items:
                    if isinstance(item, threading.Event):
                        item.set()
                if any(i is None for i in items):
                    return
        finally:
            if self._conn is not None:
                self._conn.close()

    def _gather(self) -> list[Any]:
        """The next batch: the first item, then what arrived within the window. A flush or
        close marker ends the batch at once.

        The thread sleeps through the window and then takes what is queued, rather than
        waiting on the queue: a wait wakes the thread (and takes the GIL from the event
        loop) for every record, a sleep once per batch."""
        try:
            items = [self._queue.get(timeout=self.HEARTBEAT_S)]
        except queue.Empty:
            return []
        if not isinstance(items[0], _RECORDS):
            return items
        time.sleep(self.window_s)
        while len(items) < self.max_batch and isinstance(items[-1], _RECORDS):
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _write(
        self, records: list[ResultRecord | ScoreRecord | PairwiseRecord], heartbeat: bool
    ) -> None:
        results = [dict(r.__dict__) for r in records if isinstance(r, ResultRecord)]
        scores = [
            {**r.__dict__, "workspace_id": self.workspace_id}
            for r in records
            if isinstance(r, ScoreRecord)
        ]
        pairs = [dict(r.__dict__) for r in records if isinstance(r, PairwiseRecord)]
        if self.failure:
            self._spool(results, scores, pairs)
            return
        delay = 0.25
        for attempt in range(6):
            try:
                if self._conn is None:
                    self._conn = self.engine.connect()
                conn = self._conn
                with conn.begin():
                    if results:
                        conn.execute(self._result_stmt, results)
                    if scores:
                        conn.execute(self._score_stmt, scores)
                    if pairs:
                        conn.execute(self._pair_stmt, pairs)
                    if heartbeat:
                        conn.execute(
                            sa.update(Run)
                            .where(Run.c.id == self.run_id)
                            .values(heartbeat_at=datetime.now(UTC))
                        )
                return
            except sa.exc.SQLAlchemyError as exc:
                message = (
                    f"cannot write results to the database: {exc.__class__.__name__}: "
                    f"{getattr(exc, 'orig', exc)}"
                )
                log.warning("%s (attempt %d)", message, attempt + 1)
                self._reset_connection()
                if attempt == 0 and self.on_failure is not None:
                    self.on_failure(message)  # stop new calls while we retry
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
        path = self._spool(results, scores, pairs)
        self.failure = (
            f"{message}. Nothing was lost: the unsaved records are in {path}; the "
            "answers that were saved can be resumed."
        )

    def _reset_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self._conn.close()
            self._conn = None

    def _spool(
        self,
        results: list[dict[str, Any]],
        scores: list[dict[str, Any]],
        pairs: list[dict[str, Any]],
    ) -> Path:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        path = self.spool_dir / f"run-{self.run_id}-unsaved.jsonl"
        with path.open("ab") as fh:
            for kind, rows in (("result", results), ("score", scores), ("pairwise", pairs)):
                for row in rows:
                    fh.write(orjson.dumps({"kind": kind, **row}, default=str) + b"\n")
        return path
