"""The spool: records the writer could not store (the database was unreachable), kept on
disk, and replayed into the database when it can be reached again.

A run's writer appends to ``<spool>/run-<id>-unsaved.jsonl`` only after its retries failed.
:func:`replay` stores those records, idempotently, and deletes the file: at the start of
every run or resume (before planning, so a spooled answer counts as done and is never asked
again) and by the writer itself once the database answers again. A file is claimed by
renaming it first, so two processes never replay the same file at once.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from panopticon.store.tables import Pairwise, Result, Score

__all__ = ["SpoolReplay", "replay", "spool_path"]

log = logging.getLogger(__name__)
_UUIDS = ("id", "result_id", "result_a_id", "result_b_id")


def spool_path(spool_dir: Path, run_id: int) -> Path:
    return spool_dir / f"run-{run_id}-unsaved.jsonl"


@dataclass(frozen=True)
class SpoolReplay:
    files: int = 0
    results: int = 0
    scores: int = 0
    pairs: int = 0

    def __add__(self, other: SpoolReplay) -> SpoolReplay:
        return SpoolReplay(
            self.files + other.files,
            self.results + other.results,
            self.scores + other.scores,
            self.pairs + other.pairs,
        )


def _decode(line: bytes) -> tuple[str, dict[str, Any]]:
    row = orjson.loads(line)
    kind = row.pop("kind")
    for key in _UUIDS:
        if isinstance(row.get(key), str):
            row[key] = uuid.UUID(row[key])
    if isinstance(row.get("created_at"), str):
        row["created_at"] = datetime.fromisoformat(row["created_at"])
    return kind, row


def _insert(conn: Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _store(conn: Connection, rows: dict[str, list[dict[str, Any]]]) -> SpoolReplay:
    """Results first (a stored answer is kept; a stored failure is replaced by a spooled
    answer), then the scores and pairwise verdicts whose answers are stored."""
    results = rows["result"]
    if results:
        stmt = _insert(conn, Result)
        update = {c.name: stmt.excluded[c.name] for c in Result.columns if c.name != "id"}
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["run_id", "query_id", "model_id", "repeat"],
                set_=update,
                where=Result.c.error.is_not(None) & stmt.excluded.error.is_(None),
            ),
            results,
        )
    wanted = {r["result_id"] for r in rows["score"]} | {
        i for p in rows["pairwise"] for i in (p["result_a_id"], p["result_b_id"])
    }
    present: set[uuid.UUID] = set()
    ids = list(wanted)
    for i in range(0, len(ids), 500):
        present |= set(
            conn.execute(sa.select(Result.c.id).where(Result.c.id.in_(ids[i : i + 500]))).scalars()
        )
    scores = [s for s in rows["score"] if s["result_id"] in present]
    if scores:
        conn.execute(
            _insert(conn, Score).on_conflict_do_nothing(index_elements=["result_id", "metric_id"]),
            scores,
        )
    pairs = [
        p for p in rows["pairwise"] if p["result_a_id"] in present and p["result_b_id"] in present
    ]
    if pairs:
        conn.execute(
            _insert(conn, Pairwise).on_conflict_do_nothing(
                index_elements=[
                    "run_id",
                    "metric_id",
                    "query_id",
                    "repeat",
                    "model_a_id",
                    "model_b_id",
                ]
            ),
            pairs,
        )
    return SpoolReplay(1, len(results), len(scores), len(pairs))


def _give_back(claimed: Path, path: Path) -> None:
    """Put a claimed file back, after records spooled meanwhile if there are any."""
    if path.exists():
        with path.open("ab") as out:
            out.write(claimed.read_bytes())
        claimed.unlink()
    else:
        claimed.rename(path)


def replay(engine: Engine, spool_dir: Path, run_id: int | None = None) -> SpoolReplay:
    """Store the spooled records (of every run, or of ``run_id``) and delete their files.
    A file that cannot be stored now stays for the next attempt."""
    if not spool_dir.is_dir():
        return SpoolReplay()
    pattern = f"run-{run_id}-unsaved.jsonl" if run_id is not None else "run-*-unsaved.jsonl"
    total = SpoolReplay()
    for path in sorted(spool_dir.glob(pattern)):
        claimed = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.replaying")
        try:
            path.rename(claimed)
        except FileNotFoundError:  # another process took it
            continue
        try:
            rows: dict[str, list[dict[str, Any]]] = {"result": [], "score": [], "pairwise": []}
            for line in claimed.read_bytes().splitlines():
                if line.strip():
                    kind, row = _decode(line)
                    rows[kind].append(row)
            with engine.begin() as conn:
                done = _store(conn, rows)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            log.warning("could not replay %s yet: %s", path, exc)
            _give_back(claimed, path)
            continue
        except Exception:
            _give_back(claimed, path)
            raise
        claimed.unlink()
        log.info(
            "replayed %s: %d answers, %d scores, %d pairwise verdicts",
            path.name,
            done.results,
            done.scores,
            done.pairs,
        )
        total += done
    return total
