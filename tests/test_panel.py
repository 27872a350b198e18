"""The panel judge: several judges, aggregated, with their agreement measured."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.mockllm.server import MockServer
from panopticon.store.tables import Score
from tests.conftest import write

cli = CliRunner()


def panel_suite(tmp_path: Path, url: str, extra: str = "") -> Path:
    judges = "\n".join(
        f"  - {{id: {j}, model: mock-{j}, base_url: '{url}', price: {{input: 1, output: 1}}}}"
        for j in ("j1", "j2", "j3")
    )
    return write(
        tmp_path / "s.yaml",
        f"""
models:
  - {{id: good, model: mock-good, base_url: '{url}', price: {{input: 1, output: 1}}}}
  - {{id: weak, model: mock-weak, base_url: '{url}', price: {{input: 1, output: 1}}}}
judges:
{judges}
queries: [{{text: 'q1?'}}, {{text: 'q2?'}}, {{text: 'q3?'}}, {{text: 'q4?'}}, {{text: 'q5?'}}]
metrics:
  - {{name: panel, type: panel, judges: [j1, j2, j3], prompt: 'Good?', threshold: 6{extra}}}
""",
    )


def test_a_panel_aggregates_three_judges_and_keeps_every_vote(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    mock.config.quality.update({"mock-good": 0.85, "mock-weak": 0.3})
    path = panel_suite(tmp_path, mock.url)
    result = cli.invoke(app, ["run", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert mock.stats.by_model["mock-j1"] == 10 and mock.stats.by_model["mock-j3"] == 10
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Score.c.value, Score.c.details)).all()
    assert len(rows) == 10
    for value, details in rows:
        votes = [v["value"] for v in details["votes"]]
        assert len(votes) == 3 and value == sum(votes) / 3
    out = tmp_path / "rep"
    assert cli.invoke(app, ["report", "1", "-o", str(out), "-f", "json,html"]).exit_code == 0
    (panel,) = json.loads((out / "run-1.json").read_text())["panels"]
    assert panel["judges"] == ["j1", "j2", "j3"] and panel["items"] == 10
    # the judges share the same signal (model quality) with small noise: high agreement
    assert panel["alpha"] > 0.8
    assert 'data-chart="panel-0"' in (out / "run-1.html").read_text()


def test_a_debate_adds_a_second_round_per_judge(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    path = panel_suite(tmp_path, mock.url, ", debate: true, aggregate: majority")
    result = cli.invoke(app, ["run", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        details = conn.execute(sa.select(Score.c.details)).scalars().all()
    for d in details:
        rounds = [v["round"] for v in d["votes"]]
        assert rounds.count(1) == 3 and rounds.count(2) == 3
        assert d["aggregate"] == "majority" and d["debate"] is True


def test_a_panel_judge_must_be_a_known_model(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    path = panel_suite(tmp_path, mock.url)
    write(path, path.read_text().replace("judges: [j1, j2, j3]", "judges: [j1, j9]"))
    result = cli.invoke(app, ["run", str(path), "--no-progress"])
    assert result.exit_code == 2 and "panel judge 'j9' is not a model" in result.output


def test_a_panels_cost_counts_the_votes_paid_even_when_one_failed() -> None:
    from panopticon.judges.base import JudgeReply
    from panopticon.judges.panel import _combine

    paid = JudgeReply("7", "a", 10, 2, 0.001)
    failed = JudgeReply(None, "b", error="connection refused")
    cached = JudgeReply("8", "c", 10, 2, 0.002, cached=True)
    combined = _combine([paid, failed, cached])
    assert combined.cost_usd == 0.001 and not combined.cached  # the cached vote cost nothing now
    all_cached = _combine([cached, JudgeReply("6", "d", 10, 2, 0.003, cached=True)])
    assert all_cached.cached and all_cached.cost_usd == 0.005
