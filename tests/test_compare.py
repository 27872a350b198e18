"""compare finds a real, seeded difference between models and calls noise a tie."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.mockllm.server import MockServer
from tests.conftest import suite_yaml, write

cli = CliRunner()


def verdicts(output: str) -> dict[str, dict[str, str]]:
    return {c["b"]: {m["metric"]: m["verdict"] for m in c["metrics"]} for c in json.loads(output)}


def test_compare_finds_the_real_difference_and_calls_noise_tied(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    # "twin" is as good as "good" (only the judge's noise differs); "weak" is much worse
    mock.config.quality.update({"mock-good": 0.85, "mock-twin": 0.85, "mock-weak": 0.45})
    path = write(
        tmp_path / "s.yaml", suite_yaml(mock.url, queries=30, models=("good", "twin", "weak"))
    )
    assert cli.invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
    real = cli.invoke(app, ["compare", "1", "--models", "good,weak", "--json"])
    assert real.exit_code == 0, real.output
    assert verdicts(real.output)["weak (run 1)"]["quality"] == "A better"
    noise = cli.invoke(app, ["compare", "1", "--models", "good,twin", "--json"])
    assert verdicts(noise.output)["twin (run 1)"]["quality"] == "tied"
    table = cli.invoke(app, ["compare", "last", "--models", "weak,good"])
    assert "B better" in table.output and "wilcoxon" in table.output


def test_two_single_model_runs_are_compared_item_by_item(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    mock.config.quality.update({"mock-good": 0.9, "mock-weak": 0.3})
    for name in ("good", "weak"):
        path = write(tmp_path / f"{name}.yaml", suite_yaml(mock.url, queries=20, models=(name,)))
        assert cli.invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
    result = cli.invoke(app, ["compare", "1", "2", "--json"])
    assert result.exit_code == 0, result.output
    (comparison,) = json.loads(result.output)
    quality = next(m for m in comparison["metrics"] if m["metric"] == "quality")
    assert quality["verdict"] == "A better" and quality["n"] == 20
    assert quality["diff"] > 0.3


def test_few_items_warn_that_a_small_difference_cannot_be_seen(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=12))
    assert cli.invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
    result = cli.invoke(app, ["compare", "1", "--models", "good,weak", "--min-effect", "0.01"])
    assert "warning" in result.output and "needs about" in result.output


def test_too_few_pairs_for_any_verdict_is_said_plainly(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    """Four pairs: the smallest two-sided p is 2/2^4 = 0.125, so no verdict is possible
    (the old warning claimed small differences were detectable, or said nothing)."""
    mock.config.quality.update({"mock-good": 0.95, "mock-weak": 0.05})
    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=4))
    assert cli.invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
    result = cli.invoke(app, ["compare", "1", "--models", "good,weak", "--json"])
    (comparison,) = json.loads(result.output)
    for m in comparison["metrics"]:
        assert m["verdict"] == "too few" and m["n"] == 4
        assert m["warning"].startswith("n=4 pairs: no test can reach p<0.05 with so few pairs")
        assert m["warning"].endswith("no verdict")
    table = cli.invoke(app, ["compare", "1", "--models", "good,weak"])
    assert "too few" in table.output and "no verdict" in table.output


def test_compare_explains_bad_arguments(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=2))
    cli.invoke(app, ["run", str(path), "--no-progress"])
    result = cli.invoke(app, ["compare", "1", "--models", "good,nope"])
    assert result.exit_code == 2 and "no model 'nope'" in result.output
    assert cli.invoke(app, ["compare", "1"]).exit_code == 2


def test_runs_that_differ_by_their_system_prompt_pair_item_by_item(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    # prompt v1 against prompt v2 on one dataset: the messages differ, the items do not
    for version in ("v1", "v2"):
        text = suite_yaml(mock.url, queries=8, models=("good",))
        text = text.replace("queries:\n", f"system: 'You are assistant {version}.'\nqueries:\n")
        path = write(tmp_path / f"{version}.yaml", text)
        assert cli.invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
    result = cli.invoke(app, ["compare", "1", "2", "--json"])
    assert result.exit_code == 0, result.output
    (comparison,) = json.loads(result.output)
    assert {m["metric"]: m["n"] for m in comparison["metrics"]} == {"quality": 8, "short": 8}
    assert comparison["unpaired"] == {"quality": 0, "short": 0}


def test_runs_with_no_item_in_common_are_an_error_not_an_empty_table(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    first = write(tmp_path / "a.yaml", suite_yaml(mock.url, queries=2, models=("good",)))
    other = suite_yaml(mock.url, queries=2, models=("good",)).replace("Question", "Other")
    second = write(tmp_path / "b.yaml", other)
    for path in (first, second):
        assert cli.invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
    result = cli.invoke(app, ["compare", "1", "2"])
    assert result.exit_code == 2 and "no item in common" in result.output


def test_compare_prints_markdown_when_piped_and_csv_or_json_when_asked(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=6))
    assert cli.invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
    piped = cli.invoke(app, ["compare", "1", "--models", "good,weak"])
    assert "| metric | n |" in piped.output and "…" not in piped.output
    rows = cli.invoke(app, ["compare", "1", "--models", "good,weak", "--format", "csv"]).output
    header, *lines = rows.splitlines()
    assert header.startswith("a,b,metric,n,") and len(lines) == 2
    data = json.loads(
        cli.invoke(app, ["compare", "1", "--models", "good,weak", "-f", "json"]).output
    )
    assert {r["metric"] for r in data["comparison"]} == {"quality", "short"}
