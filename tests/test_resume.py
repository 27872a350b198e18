"""Durability: killing or interrupting a run and resuming it never pays twice for an answer
beyond the calls that were in flight."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.mockllm.server import MockServer
from panopticon.services.runs import list_runs
from panopticon.store.tables import Result, Run, Score
from tests.conftest import free_port, suite_yaml, write


def start_run(path: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "panopticon", "run", str(path), "--no-progress", *extra],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def stored(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return (
            conn.scalar(
                sa.select(sa.func.count()).select_from(Result).where(Result.c.error.is_(None))
            )
            or 0
        )


def wait_for_results(engine: sa.Engine, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while stored(engine) < n:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "the run stored nothing in 30 s"
        time.sleep(0.05)


def status_of(engine: sa.Engine, run_id: int = 1) -> str:
    with engine.connect() as conn:
        return str(conn.scalar(sa.select(Run.c.status).where(Run.c.id == run_id)))


def test_after_kill_9_resume_repeats_at_most_the_calls_in_flight(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    mock.config.latency_ms = 60
    concurrency = 4
    path = write(
        tmp_path / "s.yaml",
        suite_yaml(mock.url, queries=40, models=("good",), concurrency=concurrency),
    )
    proc = start_run(path, env)
    wait_for_results(engine, 12, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert status_of(engine) == "running"  # nobody could record anything else
    # the lists show what the killed run stored and spent (its totals are written when a
    # run ends: they showed no answers and an unknown cost), in the CLI, API and dashboard
    listed = CliRunner().invoke(app, ["runs", "--format", "json"])
    (killed,) = json.loads(listed.output)["runs"]
    assert killed["status"] == "abandoned"
    assert killed["answers"] == stored(engine) and killed["cost_usd"] > 0
    with engine.connect() as conn:
        workspace = conn.scalar(sa.select(Run.c.workspace_id))
    (public,) = list_runs(engine, workspace)
    assert public["state"] == "abandoned" and public["totals"]["answers"] == stored(engine)
    assert public["totals"]["cost_usd"] > 0
    result = CliRunner().invoke(app, ["show", "1"])
    assert "abandoned" in result.output and "--resume 1" in result.output
    result = CliRunner().invoke(app, ["run", str(path), "--no-progress", "--resume", "1"])
    assert result.exit_code == 0, result.output
    assert stored(engine) == 40 and status_of(engine) == "completed"
    # each worker has at most one call (answer or judge) in flight when killed, and answers
    # received in the writer's last few milliseconds may not be stored yet: one each at most
    assert mock.stats.as_dict()["answered_duplicates"] <= 2 * concurrency


def test_ctrl_c_finishes_the_calls_in_flight_and_resume_pays_nothing_twice(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    mock.config.latency_ms = 80
    # three judged metrics an answer: a Ctrl-C mostly lands between an answer's judge calls
    metrics = "\n".join(
        f"  - {{name: {n}, type: rubric, prompt: 'Is it {n}?', scale: [1, 10]}}"
        for n in ("good", "clear", "kind")
    )
    path = write(
        tmp_path / "s.yaml",
        suite_yaml(mock.url, queries=40, models=("good",), concurrency=4, metrics=metrics),
    )
    proc = start_run(path, env)
    wait_for_results(engine, 8, proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert "Stopping" in out and f"panopticon run {path} --resume 1" in out
    assert status_of(engine) == "interrupted"
    # judge calls never sent (the run was stopping) are not failures: left to the resume
    with engine.connect() as conn:
        errors = conn.execute(sa.select(Score.c.error).where(Score.c.error.is_not(None))).all()
    assert errors == []
    before = stored(engine)
    assert 8 <= before < 40
    result = CliRunner().invoke(app, ["run", str(path), "--no-progress", "--resume", "last"])
    assert result.exit_code == 0, result.output
    assert f"{before} already stored" in result.output
    assert stored(engine) == 40
    assert mock.stats.as_dict()["answered_duplicates"] == 0
    with engine.connect() as conn:  # every answer judged once, by the run or its resume
        scores = conn.execute(
            sa.select(sa.func.count()).select_from(Score).where(Score.c.error.is_(None))
        ).scalar_one()
    assert scores == 40 * 3


def test_a_second_ctrl_c_abandons_calls_in_flight_and_records_them(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    mock.config.latency_ms = 60
    # no judge: every call in flight is an answer, whatever the moment (with a judge, the
    # calls in flight at the second Ctrl-C may all be judgements, which are not answers)
    path = write(
        tmp_path / "s.yaml",
        suite_yaml(
            mock.url,
            queries=30,
            models=("good",),
            concurrency=3,
            judge=False,
            metrics="  - {name: short, type: length, max: 2000}",
        ),
    )
    proc = start_run(path, env)
    wait_for_results(engine, 3, proc)
    before = mock.stats.requests
    mock.config.latency_ms = 5000  # calls sent from now on will not finish on their own
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()

    def until(predicate: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 30
        while not predicate():
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.01)

    until(lambda: mock.stats.requests > before)  # a slow call is in flight
    proc.send_signal(signal.SIGINT)
    until(lambda: any("Stopping" in line for line in lines))  # the first was handled
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    reader.join(timeout=10)
    proc.stdout.close()
    out = "".join(lines)
    assert proc.returncode == 130, out
    assert "Abandoning" in out
    with engine.connect() as conn:
        kinds = (
            conn.execute(sa.select(Result.c.error_kind).where(Result.c.error.is_not(None)))
            .scalars()
            .all()
        )
    assert kinds and set(kinds) == {"interrupted"}


def test_an_unreachable_endpoint_fails_clearly_and_the_run_resumes_when_it_is_back(
    tmp_path: Path, env: dict[str, str], engine: sa.Engine
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    path = write(tmp_path / "s.yaml", suite_yaml(url, queries=5, max_retries=1))
    result = CliRunner().invoke(app, ["run", str(path), "--no-progress"])
    assert result.exit_code == 1
    assert f"cannot connect to {url}/chat/completions" in result.output
    assert "(after 2 attempts)" in result.output
    assert "--resume 1" in result.output
    assert status_of(engine) == "failed"
    with MockServer(port=port) as server:
        result = CliRunner().invoke(app, ["run", str(path), "--no-progress", "--resume", "1"])
        assert result.exit_code == 0, result.output
        assert status_of(engine) == "completed"
        assert server.stats.answered == 20  # 10 answers + 10 judge calls, each once


def test_resume_refuses_a_changed_suite_and_explains_the_cache(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    path = write(
        tmp_path / "s.yaml", suite_yaml(mock.url, queries=3, extra="budget_usd: 0.00001\n")
    )
    assert CliRunner().invoke(app, ["run", str(path), "--no-progress"]).exit_code == 1
    write(path, suite_yaml(mock.url, queries=4, extra="budget_usd: 0.00001\n"))
    result = CliRunner().invoke(app, ["run", str(path), "--no-progress", "--resume", "1"])
    assert result.exit_code == 2
    assert "has changed since run 1 started" in result.output
    assert "reused from the cache" in result.output


def test_a_completed_run_cannot_be_resumed(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=2))
    assert CliRunner().invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
    result = CliRunner().invoke(app, ["run", str(path), "--resume", "1"])
    assert result.exit_code == 2 and "already completed" in result.output


def spent(engine: sa.Engine, run_id: int = 1) -> float:
    from panopticon.services.runs import read_totals

    return read_totals(engine, run_id, 0).cost_usd


def test_the_budget_holds_across_resumes_and_may_be_raised_to_resume(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    # concurrency 1: each call checks the budget before it starts, so the run overshoots it
    # by at most one answer and its judgement
    text = suite_yaml(mock.url, queries=20, concurrency=1, extra="budget_usd: 0.0004\n")
    path = write(tmp_path / "s.yaml", text)
    first = CliRunner().invoke(app, ["run", str(path), "--no-progress"])
    assert first.exit_code == 1 and status_of(engine) == "stopped", first.output
    after_first = spent(engine)
    # the same budget: the run has spent it, so a resume starts no call
    calls = mock.stats.answered
    again = CliRunner().invoke(app, ["run", str(path), "--no-progress", "--resume", "1"])
    assert again.exit_code == 1 and "budget of $0.0004 was reached" in again.output
    assert mock.stats.answered == calls and spent(engine) == after_first
    # a raised budget is no changed suite: the resume carries on within the new budget
    write(path, text.replace("budget_usd: 0.0004", "budget_usd: 0.0008"))
    raised = CliRunner().invoke(app, ["run", str(path), "--no-progress", "--resume", "1"])
    assert raised.exit_code == 1 and "has changed" not in raised.output, raised.output
    assert after_first < spent(engine) < 0.0008 + 0.0002
    write(path, text.replace("budget_usd: 0.0004", "budget_usd: 1"))
    done = CliRunner().invoke(app, ["run", str(path), "--no-progress", "--resume", "1"])
    assert done.exit_code == 0, done.output
    assert status_of(engine) == "completed"


def test_resume_reuses_the_runs_own_filter_and_limit_and_names_them_when_they_differ(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    text = suite_yaml(
        mock.url,
        queries=8,
        models=("good",),
        judge=False,
        max_retries=0,
        metrics="  - {name: short, type: length, max: 2000}",
    )
    path = write(tmp_path / "s.yaml", text)
    mock.config.update({"rate_500": 1.0})  # every answer fails: the run can be resumed
    selection = ["--filter", "theme=a", "--limit", "2"]
    first = CliRunner().invoke(app, ["run", str(path), "--no-progress", *selection])
    assert first.exit_code == 1, first.output
    mock.config.update({"rate_500": 0.0})
    other = CliRunner().invoke(
        app, ["run", str(path), "--no-progress", "--resume", "1", "--limit", "3"]
    )
    assert other.exit_code == 2
    out = " ".join(other.output.split())
    assert "run 1 was started with --filter theme=a --limit 2" in out, out
    assert "this resume gives --limit 3" in out and "has changed" not in out
    assert mock.stats.answered == 0
    again = CliRunner().invoke(app, ["run", str(path), "--no-progress", "--resume", "1"])
    assert again.exit_code == 0, again.output
    assert "Run 1 was started with --filter theme=a --limit 2: resuming with them" in " ".join(
        again.output.split()
    )
    assert status_of(engine) == "completed"
    assert mock.stats.answered == 2  # the run's own two queries, no more
