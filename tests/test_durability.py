"""Durability: records kept in the spool while the database was unreachable are stored
when it can be reached again (at the next run or resume, or by the writer itself), once, and
are never paid for again."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.mockllm.server import MockServer
from panopticon.settings import Settings
from panopticon.store.sink import StoreSink
from panopticon.store.spool import replay
from panopticon.store.tables import Result, Score
from tests.conftest import suite_yaml, write


def count(engine: sa.Engine, table: sa.Table, run_id: int | None = None) -> int:
    q = sa.select(sa.func.count()).select_from(table)
    if run_id is not None:
        q = q.where(table.c.run_id == run_id)
    with engine.connect() as conn:
        return int(conn.scalar(q) or 0)


def rows(conn: sa.Connection, table: sa.Table) -> list[dict[str, object]]:
    return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(sa.select(table))]


def suite(tmp_path: Path, url: str, queries: int) -> Path:
    return write(
        tmp_path / "s.yaml",
        suite_yaml(
            url,
            queries=queries,
            models=("good",),
            judge=False,
            concurrency=4,
            metrics="  - {name: short, type: length, max: 2000}",
        ),
    )


def test_spooled_records_are_stored_once_at_the_next_run_and_not_paid_again(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine, settings: Settings
) -> None:
    path = suite(tmp_path, mock.url, 6)
    assert CliRunner().invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
    with engine.begin() as conn:  # as if the last writes had failed: rows only in the spool
        results = [
            {str(k): v for k, v in r._mapping.items()} for r in conn.execute(sa.select(Result))
        ]
        scores = [
            {str(k): v for k, v in r._mapping.items()} for r in conn.execute(sa.select(Score))
        ]
        conn.execute(sa.delete(Score))
        conn.execute(sa.delete(Result))
    spool = settings.home / "spool"
    for _ in range(2):  # the same records spooled twice are stored once
        sink = StoreSink(engine, 1, spool_dir=spool)
        sink._spool(results, scores, [])
        sink.close()
    asked = mock.stats.requests
    result = CliRunner().invoke(app, ["run", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (count(engine, Result, 1), count(engine, Score, 1)) == (6, 6)  # back in run 1
    assert mock.stats.requests == asked  # the new run found them cached: nothing paid
    assert list(spool.iterdir()) == []
    assert replay(engine, spool).files == 0


@pytest.mark.postgres_only
def test_a_run_that_loses_its_database_loses_nothing_and_pays_nothing_twice(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine, settings: Settings
) -> None:
    """The database refuses connections under a running run: the answers in flight go to
    the spool and the run stops; when the database is back, the resume stores them first
    and asks only for the rest."""
    mock.config.latency_ms = 100
    path = suite(tmp_path, mock.url, 24)
    proc = subprocess.Popen(
        [sys.executable, "-m", "panopticon", "run", str(path), "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while count(engine, Result) < 4:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    name = (settings.database_url or "").rsplit("/", 1)[1]
    admin = sa.create_engine(
        (settings.database_url or "")
        .rsplit("/", 1)[0]
        .replace("postgresql://", "postgresql+psycopg://")
        + "/postgres",
        isolation_level="AUTOCOMMIT",
    )
    engine.dispose()
    try:
        with admin.connect() as conn:  # the database goes away under the run
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode != 0, out
        spooled = list((settings.home / "spool").glob("*.jsonl"))
        assert spooled and any(p.stat().st_size for p in spooled), out
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    answered = mock.stats.answered
    result = CliRunner().invoke(app, ["run", str(path), "--no-progress", "--resume", "1"])
    assert result.exit_code == 0, result.output
    assert count(engine, Result, 1) == 24 and count(engine, Score, 1) == 24
    stats = mock.stats.as_dict()
    assert stats["answered_duplicates"] == 0, stats  # nothing asked twice
    assert stats["answered"] == 24 and answered < 24
    assert list((settings.home / "spool").glob("*.jsonl")) == []
