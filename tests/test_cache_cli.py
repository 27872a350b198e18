"""`panopticon cache stats|clear|expire`: retiring answers never breaks a run's record;
deleting does only what it says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.mockllm.server import MockServer
from panopticon.settings import Settings
from panopticon.store.tables import Result, Run
from tests.conftest import suite_yaml, write

cli = CliRunner()
SHORT = "  - {name: short, type: length, max: 2000}"


def run_cli(*args: str) -> tuple[int, str]:
    result = cli.invoke(app, list(args))
    return result.exit_code, result.output


def results_of(engine: sa.Engine, run_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(
                sa.select(sa.func.count()).select_from(Result).where(Result.c.run_id == run_id)
            )
            or 0
        )


def test_clear_retires_answers_so_the_next_run_pays_again_and_reports_keep_them(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=3))
    assert run_cli("run", str(path), "--no-progress")[0] == 0
    code, out = run_cli("cache", "stats")
    assert code == 0, out
    assert "6 reusable answers, 6 reusable judge answers" in out
    # paid for again (--no-cache), the same answers are still 6 reusable ones, not 12
    assert run_cli("run", str(path), "--no-progress", "--no-cache")[0] == 0
    assert "6 reusable answers, 6 reusable judge answers" in run_cli("cache", "stats")[1]
    code, out = run_cli("cache", "clear")
    assert code == 0 and "retired 12 stored answers" in out, out
    assert "0 reusable answers" in run_cli("cache", "stats")[1]
    # the finished runs' records are whole
    assert results_of(engine, 1) == 6 and results_of(engine, 2) == 6
    code, out = run_cli("show", "1")
    assert code == 0 and "completed" in out
    mock.reset()
    assert run_cli("run", str(path), "--no-progress")[0] == 0
    assert mock.stats.answered == 6 + 6  # answers and judges asked again


def test_expire_retires_only_older_answers(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=3, judge=False, metrics=SHORT))
    assert run_cli("run", str(path), "--no-progress")[0] == 0
    with engine.begin() as conn:  # two of the answers were stored ten days ago
        old = datetime.now(UTC) - timedelta(days=10)
        ids = conn.scalars(sa.select(Result.c.id).limit(2)).all()
        conn.execute(sa.update(Result).where(Result.c.id.in_(ids)).values(created_at=old))
    code, out = run_cli("cache", "expire", "--older-than", "7d")
    assert code == 0 and "retired 2 stored answers older than 7d" in out, out
    mock.reset()
    assert run_cli("run", str(path), "--no-progress")[0] == 0
    assert mock.stats.answered == 2
    assert run_cli("cache", "expire", "--older-than", "soon")[0] == 2


def test_delete_spares_completed_runs_unless_forced_and_never_touches_running_ones(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=3, judge=False, metrics=SHORT))
    assert run_cli("run", str(path), "--no-progress")[0] == 0
    assert run_cli("run", str(path), "--no-progress", "--no-cache")[0] == 0
    with engine.begin() as conn:  # run 2 stopped part-way
        conn.execute(sa.update(Run).where(Run.c.id == 2).values(status="interrupted"))
    code, out = run_cli("cache", "clear", "--force")
    assert code == 2 and "--force only makes sense with --delete" in out
    code, out = run_cli("cache", "clear", "--delete")
    assert code == 0, out
    assert "deleted 6 results" in out and "completed runs were kept whole" in out
    assert results_of(engine, 1) == 6 and results_of(engine, 2) == 0
    code, out = run_cli("cache", "clear", "--delete", "--force")
    assert code == 0 and "deleted 6 results" in out and "lost those answers" in out, out
    assert results_of(engine, 1) == 0


def test_the_api_reads_and_clears_the_cache_for_admins_only(
    tmp_path: Path, env: dict[str, str], mock: MockServer, settings: Settings
) -> None:
    from fastapi.testclient import TestClient

    from panopticon.api.app import create_app
    from panopticon.services.access import create_key
    from panopticon.services.runs import store

    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=3, judge=False, metrics=SHORT))
    assert run_cli("run", str(path), "--no-progress")[0] == 0
    with store(settings) as engine:
        _, viewer = create_key(engine, "default", "viewer", "v")
    admin = {"X-API-Key": "dev_api_key_for_testing"}
    web = Settings(
        home=settings.home, database_url=settings.database_url, api_key=admin["X-API-Key"]
    )
    with TestClient(create_app(web, env={})) as api:
        stats = api.get("/api/cache", headers={"X-API-Key": viewer})
        assert stats.status_code == 200 and stats.json()["answers"] == 6
        refused = api.post("/api/cache/clear", headers={"X-API-Key": viewer}, json={})
        assert refused.status_code == 403
        bad = api.post("/api/cache/clear", headers=admin, json={"older_than": "soon"})
        assert bad.status_code == 422 and "30m, 12h, 7d or 2w" in bad.text
        done = api.post("/api/cache/clear", headers=admin, json={"older_than": "1h"})
        assert done.status_code == 200 and done.json()["retired"] == 0
        done = api.post("/api/cache/clear", headers=admin, json={})
        assert done.json() == {
            "retired": 6,
            "deleted": 0,
            "runs_emptied": [],
            "runs_restarted": [],
            "skipped_running": [],
        }
        assert api.get("/api/cache", headers=admin).json()["retired"] == 6
