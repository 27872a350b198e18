"""`panopticon run` for CI: --dry-run, --limit/--filter, per-metric gates, --baseline
--fail-on-regression, --junit; `compare --fail-on-worse`. Exit codes as documented."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.mockllm.server import MockServer
from panopticon.store.tables import Result, Run
from tests.conftest import suite_yaml, write

cli = CliRunner()


def run_cli(*args: str) -> tuple[int, str]:
    result = cli.invoke(app, list(args))
    return result.exit_code, result.output


def test_dry_run_counts_answers_and_judge_calls_and_sends_nothing(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=6, extra="repeats: 2\n"))
    code, out = run_cli("run", str(path), "--dry-run")
    assert code == 0, out
    # 6 queries x 2 models x 2 repeats = 24 answers, and one rubric judge call on each
    assert "24 answers = 6 queries x 2 models x 1 prompts x 2 repeats" in out
    assert "48 calls in all, 24 of them to judges" in out
    assert "Estimated cost: $" in out
    assert mock.stats.requests == 0
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Run)) == 0
    # after a run, the same suite's answers are stored: a run would reuse them unpaid
    assert run_cli("run", str(path), "--no-progress")[0] == 0
    mock.reset()
    code, out = run_cli("run", str(path), "--dry-run")
    assert code == 0 and "of which 24 are stored already" in out, out
    assert "0 calls in all" in out
    assert "48 calls in all" in run_cli("run", str(path), "--dry-run", "--no-cache")[1]
    assert mock.stats.requests == 0


def test_dry_run_says_an_unknown_price_is_unknown(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    text = (
        suite_yaml(mock.url, queries=2)
        .replace("price: {input: 0.5, output: 1.0}, ", "")
        .replace("model: mock-judge", "model: mock-judge-unpriced")
    )
    path = write(tmp_path / "s.yaml", text)
    code, out = run_cli("run", str(path), "--dry-run")
    assert code == 0, out
    assert "Estimated cost: unknown" in out and "no price for judge" in out
    assert mock.stats.requests == 0


def test_limit_and_filter_choose_the_queries_that_run(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    path = write(
        tmp_path / "s.yaml",
        suite_yaml(
            mock.url, queries=8, judge=False, metrics=("  - {name: short, type: length, max: 2000}")
        ),
    )
    code, out = run_cli("run", str(path), "--no-progress", "--filter", "theme=a", "--limit", "3")
    assert code == 0, out
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Result)) == 3 * 2
    code, out = run_cli(
        "run", str(path), "--no-progress", "--filter", r"text=number [57]\?", "--dry-run"
    )
    assert code == 0 and "4 answers = 2 queries" in out, out
    code, out = run_cli("run", str(path), "--filter", "colour=red", "--filter", "text=(")
    assert code == 2
    assert "cannot read --filter 'colour=red'" in out and "not a valid regular" in out
    code, out = run_cli("run", str(path), "--filter", "theme=nope")
    assert code == 2 and "no query of the suite's 8 matches" in out


def test_per_metric_thresholds_gate_the_exit_code(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    mock.config.quality.update({"mock-good": 0.95, "mock-weak": 0.2})
    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=6))
    code, out = run_cli("run", str(path), "--no-progress", "--threshold", "nope=0.5")
    assert code == 2 and "'nope', which is not a metric" in out
    assert mock.stats.requests == 0  # refused before anything was paid for
    code, out = run_cli("run", str(path), "--no-progress", "--threshold", "quality=0.8")
    assert code == 3, out
    assert "gate failed: quality pass rate on weak" in out
    assert "gate passed: quality pass rate on good" in out
    # each value with its interval clustered by query; six queries cannot settle a gate at
    # 80%, and the line says so rather than claim more than the data hold
    good_line = next(line for line in out.splitlines() if "pass rate on good" in line)
    assert re.search(r": [\d.]+% \(95% CI [\d.]+% to [\d.]+%, 6 queries; gate 80\.0%\)", good_line)
    assert "not settled: the interval reaches the gate" in good_line, good_line
    # the suite's gates: block, with the command line over it
    gated = write(tmp_path / "g.yaml", path.read_text() + "gates: {quality: 0.8}\n")
    assert run_cli("run", str(gated), "--no-progress")[0] == 3
    code, out = run_cli("run", str(gated), "--no-progress", "--threshold", "quality=0.0")
    assert code == 0, out


def test_fail_on_regression_compares_with_the_baseline_by_the_paired_test(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    mock.config.quality.update({"mock-good": 0.95, "mock-weak": 0.1})
    good = write(tmp_path / "good.yaml", suite_yaml(mock.url, queries=12, models=("good",)))
    weak = write(tmp_path / "weak.yaml", suite_yaml(mock.url, queries=12, models=("weak",)))
    assert run_cli("run", str(good), "--no-progress")[0] == 0
    code, out = run_cli(
        "run", str(good), "--no-progress", "--baseline", "1", "--fail-on-regression"
    )
    assert code == 0 and "no metric is significantly worse than baseline run 1" in out, out
    code, out = run_cli(
        "run", str(weak), "--no-progress", "--baseline", "1", "--fail-on-regression"
    )
    assert code == 4, out
    assert "regression: quality: weak (run 3) is worse than good (run 1)" in out
    code, out = run_cli("run", str(weak), "--no-progress", "--fail-on-regression")
    assert code == 2 and "--fail-on-regression needs --baseline" in out
    code, out = run_cli("compare", "1", "3", "--fail-on-worse")
    assert code == 4 and "worse:" in out
    code, out = run_cli("compare", "3", "1", "--fail-on-worse")
    assert code == 0, out


def test_a_baseline_or_junit_file_that_cannot_serve_is_refused_before_any_call(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    """A --baseline run that shares no model with the suite, or a --junit file in a folder
    that does not exist, was found only after the run had been paid for (exit 2 then)."""
    first = write(tmp_path / "first.yaml", suite_yaml(mock.url, queries=3))
    assert run_cli("run", str(first), "--no-progress")[0] == 0
    renamed = write(
        tmp_path / "renamed.yaml",
        suite_yaml(mock.url, queries=3, models=("good", "weak"))
        .replace("{id: good,", "{id: good-v2,")
        .replace("{id: weak,", "{id: weak-v2,"),
    )
    mock.reset()
    code, out = run_cli("run", str(renamed), "--no-progress", "--baseline", "1")
    assert code == 2, out
    assert "--baseline: baseline run 1 shares no model with this suite" in out
    assert "(good, weak against good-v2, weak-v2)" in out
    code, out = run_cli("run", str(first), "--no-progress", "--junit", str(tmp_path / "no/j.xml"))
    assert code == 2, out
    assert f"--junit: the folder {tmp_path / 'no'} does not exist" in out
    assert mock.stats.requests == 0
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(Run)) == 1
    # a baseline that shares a model is compared as before
    code, out = run_cli("run", str(first), "--no-progress", "--baseline", "1")
    assert code == 0 and "no metric is significantly worse than baseline run 1" in out, out


def test_junit_has_one_case_per_query_and_model_with_failures_explained(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    mock.config.quality.update({"mock-good": 0.95, "mock-weak": 0.1})
    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=5))
    report = tmp_path / "junit.xml"
    code, out = run_cli("run", str(path), "--no-progress", "--junit", str(report))
    assert code == 0, out
    root = ET.fromstring(report.read_bytes())
    cases = root.findall("testcase")
    assert len(cases) == 5 * 2 and root.get("tests") == "10"
    failed = [c for c in cases if c.find("failure") is not None]
    assert failed and all(c.get("classname") == "weak" for c in failed)
    text = failed[0].find("failure").text or ""  # type: ignore[union-attr]
    assert "quality" in text and "did not pass" in text
    assert root.get("failures") == str(len(failed))
    # named by the file and line the query was read from, never by its database id
    assert str(cases[0].get("name")).endswith("s.yaml:7: Question number 0?")


def test_a_filtered_run_leaves_the_datasets_whole(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    from panopticon.store.tables import DatasetItem

    write(tmp_path / "qs.jsonl", "".join(f'{{"text": "q{i}?"}}\n' for i in range(5)))
    path = write(
        tmp_path / "s.yaml",
        f"models: [{{id: m, base_url: '{mock.url}'}}]\nqueries: [{{file: qs.jsonl}}]\n",
    )
    assert run_cli("run", str(path), "--no-progress")[0] == 0
    assert run_cli("run", str(path), "--no-progress", "--limit", "2")[0] == 0
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(DatasetItem)) == 5


def test_a_gates_verdict_is_settled_only_when_its_interval_lies_on_one_side() -> None:
    from panopticon.services.gates import GateResult

    def gate(value: float, low: float | None, high: float | None) -> GateResult:
        return GateResult("m", "quality", "pass rate", value, 0.8, low, high, 30)

    assert gate(0.9, 0.85, 0.95).passed and gate(0.9, 0.85, 0.95).settled
    assert gate(0.9, 0.7, 0.99).passed and not gate(0.9, 0.7, 0.99).settled
    assert not gate(0.5, 0.3, 0.7).passed and gate(0.5, 0.3, 0.7).settled
    assert not gate(0.75, 0.6, 0.85).settled
    assert not gate(0.9, None, None).settled  # one query: no interval, nothing settled
    assert gate(0.9, 0.85, 0.95).as_dict()["settled"] is True
