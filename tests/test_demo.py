"""The README's main job: `panopticon demo` runs the bundled suite against the mock server."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.store.tables import Result, Run, Score


def test_the_demo_stores_every_result_and_score(env: dict[str, str], engine: sa.Engine) -> None:
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "run 1 completed" in result.output
    with engine.connect() as conn:
        assert conn.scalar(sa.select(Run.c.status)) == "completed"
        answers = conn.scalar(
            sa.select(sa.func.count()).select_from(Result).where(Result.c.error.is_(None))
        )
        scores = conn.scalar(
            sa.select(sa.func.count()).select_from(Score).where(Score.c.error.is_(None))
        )
    assert answers == 16 * 3  # 16 queries x 3 models
    assert scores == 16 * 3 * 4  # 4 metrics each
    # the demo's models differ in quality, and the summary shows it
    assert "frontier" in result.output and "tiny" in result.output


def test_the_demo_suite_can_be_copied_to_edit(tmp_path: Path, env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["demo", "--copy-to", str(tmp_path / "mine")])
    assert result.exit_code == 0
    assert (tmp_path / "mine" / "suite.yaml").is_file()
    assert (tmp_path / "mine" / "queries.jsonl").read_text().count("\n") == 16
