"""People's labels: imported with clear errors, and judge calibration computed correctly."""

from __future__ import annotations

import json
from pathlib import Path

from scipy import stats
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.mockllm.server import MockServer
from tests.conftest import suite_yaml, write

cli = CliRunner()


def run_and_export(tmp_path: Path, mock: MockServer) -> list[dict[str, object]]:
    mock.config.quality.update({"mock-good": 0.8, "mock-weak": 0.4})
    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=8))
    assert cli.invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
    out = cli.invoke(app, ["export", "1", "--format", "jsonl"]).output
    return [json.loads(line) for line in out.splitlines()]


def test_calibration_matches_a_hand_computation(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    results = run_and_export(tmp_path, mock)
    judge = [
        (
            r["result_id"],
            r["scores"]["quality"]["passed"],  # type: ignore[index]
            r["scores"]["quality"]["value"],
        )
        for r in results
    ]  # type: ignore[index]
    # people agree with the judge on the first 10 results and disagree on the last 6;
    # their scores are the judge's, except two swapped
    labels = []
    for i, (rid, passed, value) in enumerate(judge):
        human_passed = passed if i < 10 else not passed
        human_value = value if i not in (0, 1) else judge[1 - i][2]
        labels.append(
            {"result_id": rid, "metric": "quality", "passed": human_passed, "value": human_value}
        )
    write(tmp_path / "labels.jsonl", "\n".join(json.dumps(x) for x in labels) + "\n")
    result = cli.invoke(app, ["annotate", str(tmp_path / "labels.jsonl"), "--annotator", "ana"])
    assert result.exit_code == 0 and "stored 16 new labels" in result.output
    (cal,) = json.loads(cli.invoke(app, ["calibration", "1", "--json"]).output)

    j = [bool(p) for _, p, _ in judge]
    h = [bool(x["passed"]) for x in labels]
    n = len(j)
    po = sum(a == b for a, b in zip(j, h, strict=True)) / n
    pj, ph = sum(j) / n, sum(h) / n
    pe = pj * ph + (1 - pj) * (1 - ph)
    assert cal["labelled"] == 16 and cal["pass_pairs"] == 16
    assert cal["agreement"] == po == 10 / 16
    # its interval, Wilson-like for a proportion (one label per answer: 16 clusters)
    assert 0.3 < cal["agreement_low"] < po < cal["agreement_high"] < 0.9
    assert abs(cal["kappa"] - (po - pe) / (1 - pe)) < 1e-12
    assert cal["kappa_low"] <= cal["kappa"] <= cal["kappa_high"]
    rho = stats.spearmanr([v for _, _, v in judge], [x["value"] for x in labels]).statistic
    assert abs(cal["spearman"] - rho) < 1e-12
    # labelling again replaces, never duplicates
    result = cli.invoke(app, ["annotate", str(tmp_path / "labels.jsonl"), "--annotator", "ana"])
    assert "stored 0 new labels, replaced 16" in result.output


def test_bad_labels_are_rejected_with_their_line_and_nothing_is_stored(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    results = run_and_export(tmp_path, mock)
    rid = results[0]["result_id"]
    write(
        tmp_path / "labels.csv",
        "result_id,metric,passed,comment\n"
        f"{rid},quality,yes,fine\n"
        f"{rid},qualty,no,\n"
        "not-an-id,quality,no,\n"
        f"{rid},quality,maybe,\n",
    )
    result = cli.invoke(app, ["annotate", str(tmp_path / "labels.csv")])
    assert result.exit_code == 2
    assert "labels.csv:4: result_id" in result.output  # not-an-id
    assert "labels.csv:5: passed" in result.output  # maybe
    write(tmp_path / "labels.csv", f"result_id,metric,passed\n{rid},quality,yes\n{rid},qualty,no\n")
    result = cli.invoke(app, ["annotate", str(tmp_path / "labels.csv")])
    assert result.exit_code == 2 and "has no metric 'qualty'" in result.output
    assert "its metrics: quality, short" in result.output
    cal = cli.invoke(app, ["calibration", "1"])
    assert "has no labels yet" in cal.output


def test_a_second_annotator_with_the_same_labels_adds_no_certainty(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    """The same labels imported twice (as two annotators) are two labels of each answer,
    not twice the answers: the kappa interval stays as wide (it used to narrow)."""
    labels = []
    for i, r in enumerate(run_and_export(tmp_path, mock)):
        judged = bool(r["scores"]["quality"]["passed"])  # type: ignore[index]
        # people agree with the judge on two answers in three
        agree = i % 3 != 0
        labels.append({"result_id": r["result_id"], "metric": "quality", "passed": judged == agree})
    file = str(write(tmp_path / "labels.jsonl", "\n".join(json.dumps(x) for x in labels) + "\n"))
    assert cli.invoke(app, ["annotate", file, "--annotator", "ana"]).exit_code == 0
    (once,) = json.loads(cli.invoke(app, ["calibration", "1", "--json"]).output)
    assert cli.invoke(app, ["annotate", file, "--annotator", "bo"]).exit_code == 0
    (twice,) = json.loads(cli.invoke(app, ["calibration", "1", "--json"]).output)
    assert twice["labelled"] == 2 * once["labelled"] and twice["results"] == once["results"] == 16
    assert twice["kappa"] == once["kappa"]
    assert (twice["kappa_low"], twice["kappa_high"]) == (once["kappa_low"], once["kappa_high"])


def test_a_label_off_the_metrics_scale_is_refused(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    (first, *_) = run_and_export(tmp_path, mock)
    labels = [
        {"result_id": first["result_id"], "metric": "quality", "value": 42},
        {"result_id": first["result_id"], "metric": "quality", "value": 7},
    ]
    write(tmp_path / "labels.jsonl", "\n".join(json.dumps(x) for x in labels) + "\n")
    result = cli.invoke(app, ["annotate", str(tmp_path / "labels.jsonl"), "--annotator", "ana"])
    assert result.exit_code == 2, result.output
    assert "labels.jsonl:1" in result.output and "42 is outside the scale" in result.output
    assert "labels.jsonl:2" not in result.output
    # every problem of a row at once: a bad 'passed' hid the value off its scale until the
    # first was fixed
    labels[0]["passed"] = "maybe"
    write(tmp_path / "labels.jsonl", "\n".join(json.dumps(x) for x in labels) + "\n")
    result = cli.invoke(app, ["annotate", str(tmp_path / "labels.jsonl"), "--annotator", "ana"])
    assert result.exit_code == 2, result.output
    assert "'passed' must be true or false" in result.output
    assert "42 is outside the scale" in result.output
