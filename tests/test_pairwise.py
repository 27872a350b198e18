"""The pairwise judge: every pair of answers judged in both orders, position bias measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.mockllm.server import MockServer
from panopticon.store.tables import Pairwise, Result
from tests.conftest import suite_yaml, write

cli = CliRunner()
PAIRWISE = """  - {name: preference, type: pairwise}
  - {name: quality, type: rubric, prompt: 'Good?', scale: [1, 10], threshold: 6}"""


def run_suite(tmp_path: Path, mock: MockServer, queries: int = 10) -> Path:
    path = write(
        tmp_path / "s.yaml",
        suite_yaml(mock.url, queries=queries, models=("good", "mid", "weak"), metrics=PAIRWISE),
    )
    result = cli.invoke(app, ["run", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    return path


def test_every_pair_is_judged_in_both_orders_and_agreement_decides(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    mock.config.quality.update({"mock-good": 0.9, "mock-mid": 0.6, "mock-weak": 0.3})
    run_suite(tmp_path, mock)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Pairwise)).all()
    assert len(rows) == 10 * 3  # 10 queries x 3 pairs
    assert all(r.verdict_ab is not None and r.verdict_ba is not None for r in rows)
    assert all(r.final == "a" for r in rows)  # the better model is always a, in suite order
    out = tmp_path / "rep"
    assert cli.invoke(app, ["report", "1", "-o", str(out), "-f", "json"]).exit_code == 0
    (pw,) = json.loads((out / "run-1.json").read_text())["pairwise"]
    assert pw["order_disagreement_rate"] == 0.0 and pw["pairs"] == 30
    assert pw["position_preference"] == 0.0
    assert [r["model"] for r in pw["ranking"]] == ["good", "mid", "weak"]
    good_vs_weak = next(w for w in pw["win_rates"] if (w["a"], w["b"]) == ("good", "weak"))
    assert good_vs_weak["win_rate"] == 1.0 and good_vs_weak["low"] > 0.6


def test_a_judge_that_always_picks_the_first_answer_produces_ties_and_is_reported(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    mock.config.quality.update({"mock-good": 0.9, "mock-mid": 0.6, "mock-weak": 0.3})
    mock.config.position_bias = 1.0
    run_suite(tmp_path, mock, queries=12)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Pairwise)).all()
    # shown first each time: a wins in order ab, b wins in order ba; no agreement, a tie
    assert {(r.verdict_ab, r.verdict_ba, r.final) for r in rows} == {("a", "b", "tie")}
    out = tmp_path / "rep"
    cli.invoke(app, ["report", "1", "-o", str(out), "-f", "json"])
    (pw,) = json.loads((out / "run-1.json").read_text())["pairwise"]
    # every judgement picked the first shown: the preference is +1, and said so
    assert pw["order_disagreement_rate"] == 1.0 and pw["position_preference"] == 1.0
    # 36 pairs of 12 queries (the interval's clusters: a query's pairs share it), all one
    # way: clearly not 0
    assert pw["position_preference_low"] > 0.3
    md = tmp_path / "md"
    cli.invoke(app, ["report", "1", "-o", str(md), "-f", "md"])
    text = (md / "run-1.md").read_text()
    assert "P(first shown wins) - P(second shown wins): +1.00" in text
    show = cli.invoke(app, ["show", "1", "--format", "json"])
    (position,) = json.loads(show.output)["position"]
    assert position["preference"] == 1.0 and position["orders_disagreed"] == 1.0
    assert position["low"] > 0.3 and position["pairs"] == 36
    table = cli.invoke(app, ["show", "1", "--format", "md"]).output
    assert "P(first shown wins) - P(second shown wins)" in table and "| +1.00 |" in table


def test_a_resumed_run_does_not_judge_pairs_twice(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    path = write(
        tmp_path / "s.yaml",
        suite_yaml(
            mock.url,
            queries=6,
            models=("good", "mid", "weak"),
            metrics=PAIRWISE,
            extra="budget_usd: 0.004\n",
            concurrency=1,
        ),
    )
    assert cli.invoke(app, ["run", str(path), "--no-progress"]).exit_code == 1  # budget
    write(path, path.read_text().replace("budget_usd: 0.004", "budget_usd: 5"))
    # a changed budget is a changed suite: the stored answers come back from the cache
    result = cli.invoke(app, ["run", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    before = mock.stats.answered
    with engine.connect() as conn:
        assert (
            conn.scalar(
                sa.select(sa.func.count()).select_from(Pairwise).where(Pairwise.c.run_id == 2)
            )
            == 18
        )
    assert cli.invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
    assert mock.stats.answered == before  # answers, scores and pairs all from the cache


def test_resume_judges_only_the_pairs_that_were_lost(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    from panopticon.store.tables import Run

    path = run_suite(tmp_path, mock, queries=4)
    with engine.begin() as conn:  # as if the process died before these pairs were stored
        lost = conn.execute(sa.select(Pairwise.c.id).limit(5)).scalars().all()
        conn.execute(sa.delete(Pairwise).where(Pairwise.c.id.in_(lost)))
        conn.execute(sa.update(Run).values(status="interrupted"))
    before = mock.stats.answered
    result = cli.invoke(app, ["run", str(path), "--no-progress", "--resume", "1", "--no-cache"])
    assert result.exit_code == 0, result.output
    assert mock.stats.answered - before == 5 * 2  # both orders of each lost pair, no more
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Pairwise)) == 12


def test_failed_pairwise_judgements_are_counted_shown_exported_and_retried(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    from panopticon.services.runs import read_totals

    mock.config.judge_nonsense_rate = 1.0  # the judge answers, and is paid, but says nothing
    path = write(
        tmp_path / "s.yaml",
        suite_yaml(
            mock.url,
            queries=3,
            models=("good", "weak"),
            metrics="  - {name: preference, type: pairwise}",
        ),
    )
    run = cli.invoke(app, ["run", str(path), "--no-progress"])
    # no valid judgement: no success, and the run says so
    assert run.exit_code == 1, run.output
    assert "0 pairwise judgements, 3 failed" in run.output
    assert "metric 'preference' has no valid score" in run.output
    with engine.connect() as conn:
        answers_cost = float(
            conn.scalar(sa.select(sa.func.sum(Result.c.cost_usd)).where(Result.c.run_id == 1)) or 0
        )
    totals = read_totals(engine, 1, 6)
    assert totals.pair_errors == 3 and totals.cost_usd > answers_cost  # the judge's spend
    shown = cli.invoke(app, ["show", "1", "--errors"])
    assert "3 score errors" in shown.output and "preference on good vs weak" in shown.output
    listed = cli.invoke(app, ["runs", "--format", "json"])
    (listed_run,) = json.loads(listed.output)["runs"]
    assert listed_run["cost_usd"] == pytest.approx(totals.cost_usd)
    exporting = cli.invoke(app, ["export", "1", "--format", "json"])
    assert exporting.exit_code == 0, exporting.output
    exported = json.loads(exporting.output)
    assert len(exported["pairwise"]) == 3 and all(p["error"] for p in exported["pairwise"])
    # a resume retries the failed judgements, and only those
    mock.config.judge_nonsense_rate = 0.0
    before = mock.stats.answered
    resumed = cli.invoke(app, ["run", str(path), "--no-progress", "--resume", "1"])
    assert resumed.exit_code == 0, resumed.output
    assert mock.stats.answered - before == 3 * 2
    assert "3 pairwise judgements, 0 failed" in resumed.output
    assert read_totals(engine, 1, 6).cost_usd > totals.cost_usd  # the failed ones stay paid
    shown = cli.invoke(app, ["show", "1", "--format", "json"])
    pairwise = json.loads(shown.output)["pairwise"]
    assert {(p["model"], p["against"], p["n"]) for p in pairwise} >= {("good", "weak", 3)}


def test_a_cached_pairwise_judgement_is_not_spent_again(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    from panopticon.services.runs import read_totals

    path = run_suite(tmp_path, mock, queries=2)
    assert cli.invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
    first, second = read_totals(engine, 1, 12), read_totals(engine, 2, 12)
    assert first.pairs == second.pairs == 6
    assert first.cost_usd > 0 and second.cost_usd == 0  # all from the cache


def test_compare_of_two_models_shows_the_pairwise_judges_verdicts(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    mock.config.quality.update({"mock-good": 0.9, "mock-mid": 0.6, "mock-weak": 0.3})
    run_suite(tmp_path, mock, queries=5)
    (c,) = json.loads(cli.invoke(app, ["compare", "1", "--models", "weak,good", "--json"]).output)
    assert c["pairwise"] == [
        {"metric": "preference", "a_wins": 0, "b_wins": 5, "ties": 0, "errors": 0}
    ]
    shown = cli.invoke(app, ["compare", "1", "--models", "good,weak"]).output
    assert "pairwise 'preference': A preferred 5 times, B 0, tied 0" in shown
