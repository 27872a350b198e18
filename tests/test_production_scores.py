"""Production scores outside the dashboard: GET /api/production/summary and /heatmap, and
`panopticon online scores` / `heatmap`, give the dashboard's numbers (the same sums, the
same interval clustered by trace, 'too few' for one trace); a score of a whole trace takes
the trace's model; a label with no value says what it is instead of a bogus 0; and
`panopticon compare RUN --prompts A,B` shows the model's production scores, unpaired.
Real traffic through the API (traces logged, an online rule judging them through the mock
LLM, scores posted), on the SQLite file or PostgreSQL of the test run."""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from panopticon.api.app import create_app
from panopticon.api.routes.production import ProductionSource
from panopticon.cli import app as cli_app
from panopticon.mockllm.server import MockServer
from panopticon.services import dashboard
from panopticon.services.compare import PROMPTS_NOTE, PROMPTS_SPLIT_NOTE, UNPAIRED_NOTE
from panopticon.services.database import workspace_id
from panopticon.services.ingest import NO_SCALE_NOTE
from panopticon.services.production import PRODUCTION_SOURCES
from panopticon.settings import Settings
from panopticon.stats.intervals import ClusterSums, bounded_interval
from tests.conftest import write
from tests.test_api import BOOT
from tests.test_api_judge import register
from tests.test_online_eval import log
from tests.test_online_views import ADMIN, judged, results, run_score, span_of
from tests.test_prompt_variants import prompts_suite

cli = CliRunner()


@pytest.fixture
def api(settings: Settings, mock: MockServer, job_worker: None) -> Iterator[TestClient]:
    """The API of test_online_views: gpt-4o, claude-3-opus-20240229, gpt-4 and a metric."""
    app = create_app(Settings(home=settings.home, database_url=settings.database_url, api_key=BOOT))
    with TestClient(app) as client:
        register(client, mock, ADMIN)
        yield client


def get(api: TestClient, path: str, **params: Any) -> dict[str, Any]:
    r = api.get(f"/api/production/{path}", params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    return dict(r.json())


def score(api: TestClient, trace_id: str, name: str, source: str = "human", **body: Any) -> None:
    r = api.post(
        "/api/scores",
        json={"trace_id": trace_id, "name": name, "source": source, **body},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text


def ws(api: TestClient) -> tuple[Any, int]:
    engine = api.app.state.engine  # type: ignore[attr-defined]
    return engine, workspace_id(engine, "default")


def test_the_api_source_names_are_the_production_sources() -> None:
    assert ProductionSource.__args__ == ("production", *PRODUCTION_SOURCES)  # type: ignore[attr-defined]


def test_the_api_and_the_cli_give_the_dashboards_production_numbers_and_intervals(
    api: TestClient, env: dict[str, str]
) -> None:
    """Three judged gpt-4o traces (two metrics each) and a run's score: the production
    rows of the API and the CLI are the dashboard's (summary, themes heatmap, compare
    panel), and the interval is the one the stats give the scores clustered by trace."""
    run_score(api)
    traces = judged(api, ["What is a tide?", "Why is the sea salty?", "How deep is the sea?"])
    engine, workspace = ws(api)

    summary = get(api, "summary", days=30)
    overview = dashboard.overview(engine, workspace, 30)
    board = {m.label: m for m in overview.models if m.source != "run"}
    assert set(board) == {"gpt-4o (online)"}
    (row,) = summary["models"]
    cell = board["gpt-4o (online)"]
    assert (row["label"], row["model"], row["source"], row["metric"]) == (
        "gpt-4o (online)",
        "gpt-4o",
        "online",
        None,
    )
    for mine, theirs in (
        ("n", "n"),
        ("traces", "clusters"),
        ("mean", "mean"),
        ("low", "low"),
        ("high", "high"),
        ("pass_rate", "pass_rate"),
        ("pass_low", "pass_low"),
        ("pass_high", "pass_high"),
        ("errors", "errors"),
    ):
        assert row[mine] == getattr(cell, theirs), mine
    assert (row["n"], row["traces"], row["verdict"], row["message"]) == (6, 3, "ok", None)
    # the totals are the summary's production panel
    (totals,) = summary["totals"]
    (online,) = overview.production
    assert totals == {
        "source": "online",
        "traces": online.traces,
        "scores": online.scores,
        "score_errors": online.score_errors,
        "input_tokens": online.input_tokens,
        "output_tokens": online.output_tokens,
        "cost_usd": online.cost_usd,
    }
    assert (totals["traces"], totals["scores"]) == (3, 6)

    # per metric: the compare page's production panel; the interval is the stats' own for
    # the scores clustered by trace
    panel = dashboard.model_metrics(engine, workspace, None, "production")
    helpful = next(s for s in summary["scores"] if s["metric"] == "helpful")
    assert helpful["mean"] == panel.cells[("gpt-4o (online)", "helpful")].mean
    assert helpful["low"] == panel.cells[("gpt-4o (online)", "helpful")].low
    values: dict[str, list[float]] = defaultdict(list)
    for item in results(api, source="online", metric="helpful")["items"]:
        values[item["trace_id"]].append(item["normalized"])
    assert set(values) == set(traces)
    expected = bounded_interval(ClusterSums.of(values.values()))
    assert helpful["mean"] == pytest.approx(expected.estimate)
    assert (helpful["low"], helpful["high"]) == (
        pytest.approx(expected.low),
        pytest.approx(expected.high),
    )
    assert helpful["low"] <= helpful["mean"] <= helpful["high"]

    # the heatmap: the themes heatmap's production cell per row, the compare panel's cells
    heat = get(api, "heatmap")
    themes = dashboard.heatmap(engine, workspace, None, None)
    (hrow,) = heat["rows"]
    assert heat["metrics"] == ["helpful", "no-pii"]
    overall = themes.cells[("gpt-4o (online)", dashboard.PRODUCTION_THEME)]
    assert (hrow["overall"]["mean"], hrow["overall"]["low"], hrow["overall"]["n"]) == (
        overall.mean,
        overall.low,
        overall.n,
    )
    for metric in heat["metrics"]:
        theirs = panel.cells[("gpt-4o (online)", metric)]
        mine = hrow["cells"][metric]
        assert (mine["mean"], mine["low"], mine["high"], mine["n"], mine["traces"]) == (
            theirs.mean,
            theirs.low,
            theirs.high,
            theirs.n,
            theirs.clusters,
        )
    # one metric, as the themes heatmap's metric filter
    one = get(api, "heatmap", metric="helpful")
    (only,) = one["rows"]
    assert list(only["cells"]) == ["helpful"]
    assert (
        only["overall"]["n"]
        == dashboard.heatmap(engine, workspace, None, "helpful")
        .cells[("gpt-4o (online)", dashboard.PRODUCTION_THEME)]
        .n
    )

    # the CLI: the same JSON, and tables with each interval
    out = cli.invoke(cli_app, ["online", "scores", "--days", "30", "--json"])
    assert out.exit_code == 0, out.output
    assert orjson.loads(out.output)["models"] == summary["models"]
    out = cli.invoke(cli_app, ["online", "scores", "--format", "md"])
    assert out.exit_code == 0, out.output
    assert "| gpt-4o (online) | every quality metric |" in out.output
    assert f"{row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}]" in out.output
    out = cli.invoke(cli_app, ["online", "heatmap", "--format", "md"])
    assert out.exit_code == 0, out.output
    assert "| model (source) | every quality metric | helpful | no-pii |" in out.output
    h = hrow["cells"]["helpful"]
    assert f"{h['mean']:.2f} [{h['low']:.3f}, {h['high']:.3f}] n=3" in out.output
    out = cli.invoke(cli_app, ["online", "heatmap", "--json"])
    assert orjson.loads(out.output)["rows"][0]["cells"]["helpful"]["low"] == h["low"]


def test_one_trace_is_too_few_and_filters_narrow_the_rows(
    api: TestClient, env: dict[str, str]
) -> None:
    """One judged trace: a mean, but 'too few' for an interval, with a message. The
    filters narrow by model, metric, source and time."""
    judged(api, ["What is a tide?"])
    (row,) = get(api, "summary")["models"]
    assert row["verdict"] == "too few" and row["low"] is None and row["high"] is None
    assert row["mean"] is not None and row["traces"] == 1
    assert "too few for a 95% interval" in row["message"] and "one trace" in row["message"]
    out = cli.invoke(cli_app, ["online", "heatmap", "--format", "md"])
    assert out.exit_code == 0, out.output
    assert "too few n=1" in out.output

    assert get(api, "summary", model="gpt-4o")["models"] == [row]
    assert get(api, "summary", model="claude")["models"] == []
    assert get(api, "summary", source="guardrail") == {
        "filters": {"since": None, "model": None, "metric": None, "source": "guardrail"},
        "totals": [],
        "models": [],
        "scores": [],
    }
    assert get(api, "summary", source="production")["models"] == [row]
    assert get(api, "summary", since="2999-01-01T00:00:00Z")["models"] == []
    assert [s["metric"] for s in get(api, "summary", metric="no-pii")["scores"]] == ["no-pii"]
    out = cli.invoke(cli_app, ["online", "scores", "--source", "human"])
    assert out.exit_code == 0 and "no production scores for these filters" in out.output


def test_bad_filters_are_refused_with_the_field_and_how_to_fix_it(api: TestClient) -> None:
    for params, field, words in (
        ({"source": "run"}, "source", "Input should be"),
        ({"source": "people"}, "source", "Input should be"),
        ({"days": 0}, "days", "greater than or equal to 1"),
        ({"days": 100_000}, "days", "less than or equal to"),
        ({"days": 7, "since": "2025-01-01T00:00:00Z"}, "since", "days or since, not both"),
        ({"since": "yesterday"}, "since", "ISO 8601"),
        ({"since": "2025-01-01T00:00:00"}, "since", ""),  # without its zone
        ({"metric": "nope"}, "metric", "no metric 'nope'"),
        ({"model": "m" * 201}, "model", "at most 200"),
        # times at the ends of Python's years: no UTC for them (they were a 500)
        ({"since": "9999-12-31T23:59:59-14:00"}, "since", "must be between 1900-01-01"),
        ({"since": "0001-01-01T00:00:00+14:00"}, "since", "must be between 1900-01-01"),
    ):
        for path in ("summary", "heatmap"):
            r = api.get(f"/api/production/{path}", params=params, headers=ADMIN)
            assert r.status_code == 422, (params, r.text)
            error = r.json()["error"]
            assert error["field"] == field and words in error["message"], (params, error)
    assert api.get("/api/production/summary").status_code == 401
    out = cli.invoke(cli_app, ["online", "scores", "--source", "run"])
    assert out.exit_code == 2 and "unknown production source 'run'" in out.output
    out = cli.invoke(cli_app, ["online", "scores", "--since", "soon"])
    assert out.exit_code == 2 and "'soon' is not a time" in out.output
    out = cli.invoke(cli_app, ["online", "scores", "--since", "0001-01-01T00:00:00+14:00"])
    assert out.exit_code == 2 and "must be between 1900-01-01" in out.output
    # every filter naming a time is the same type: the trace list's since too
    r = api.get("/api/traces", params={"since": "9999-12-31T23:59:59-14:00"}, headers=ADMIN)
    assert r.status_code == 422 and r.json()["error"]["field"] == "since", r.text


def test_a_label_without_a_value_says_what_it_is_under_the_traces_model(
    api: TestClient, env: dict[str, str]
) -> None:
    """People's feedback on whole traces: a trace's score takes the trace's model (not
    '(no model)'); 'pass'/'fail' labels are a pass rate; labels that map to nothing give no
    mean and say what they are (never a 0); a trace not (yet) logged is 'model unknown'."""
    first = log(api, "gpt-4o", "What is a tide?", "The sea rising and falling.")
    second = log(api, "gpt-4o", "Why is the sea salty?", "Rivers carry salt to it.")
    score(api, first, "thumbs", label="thumbs_up")
    score(api, second, "thumbs", label="thumbs_up")
    score(api, second, "thumbs", label="thumbs_down")
    score(api, first, "verdict", label="pass")
    score(api, second, "verdict", label="fail")
    score(api, "f" * 32, "verdict", label="pass")  # its trace never arrived

    summary = get(api, "summary")
    by = {(s["label"], s["metric"]): s for s in summary["scores"]}
    thumbs = by[("gpt-4o (human)", "thumbs")]
    assert (thumbs["n"], thumbs["mean"], thumbs["pass_rate"]) == (0, None, None)
    assert thumbs["unscored"] == 3 and thumbs["labels"] == {"thumbs_up": 2, "thumbs_down": 1}
    assert thumbs["verdict"] == "no values"
    assert thumbs["message"] == (
        "no mean: 3 labels without a value or pass/fail: thumbs_up 2, thumbs_down 1"
    )
    verdict = by[("gpt-4o (human)", "verdict")]
    assert (verdict["n"], verdict["traces"], verdict["pass_rate"], verdict["verdict"]) == (
        2,
        2,
        0.5,
        "ok",
    )
    assert verdict["pass_low"] is not None
    unknown = by[("(model unknown) (human)", "verdict")]
    assert (unknown["model"], unknown["n"], unknown["verdict"]) == ("(model unknown)", 1, "too few")
    # the trace's model (two of its models: 'several models')
    both = log(api, "gpt-4o", "Hi", "Hello")
    api.post(
        "/api/traces",
        json={
            "traces": [
                {
                    "id": "a" * 32,
                    "spans": [
                        {"name": "one", "model": "gpt-4o", "input": "a", "output": "b"},
                        {"name": "two", "model": "claude-3", "input": "c", "output": "d"},
                    ],
                }
            ]
        },
        headers=ADMIN,
    ).raise_for_status()
    del both
    score(api, "a" * 32, "verdict", label="pass")
    # a gateway call through an alias (asked for 'fast', served by 'gpt-4o'): one model
    api.post(
        "/api/traces",
        json={
            "traces": [
                {
                    "id": "b" * 32,
                    "spans": [
                        {"name": "call", "model": "fast", "model_served": "gpt-4o",
                         "input": "e", "output": "f"}
                    ],
                }
            ]
        },
        headers=ADMIN,
    ).raise_for_status()  # fmt: skip
    score(api, "b" * 32, "verdict", label="pass")
    rows = {s["model"]: s for s in get(api, "summary", metric="verdict")["scores"]}
    assert set(rows) == {"gpt-4o", "(model unknown)", "(several models)"}
    assert rows["gpt-4o"]["n"] == 3  # the two before, and the alias's call

    # the dashboard says the same: no '(no model)' row, no bogus 0
    engine, workspace = ws(api)
    rows = {m.label: m for m in dashboard.overview(engine, workspace, 30).models}
    assert "(no model) (human)" not in rows
    assert rows["gpt-4o (human)"].unscored == 3
    run_score(api)  # the summary's model table shows once there is a run
    from tests.test_web import sign_in

    assert sign_in(api, ADMIN["X-API-Key"]).status_code == 200
    page = api.get("/ui/").text
    assert "gpt-4o (human)" in page and "(no model)" not in page
    assert "3 labels without a value or pass/fail: thumbs_up 2, thumbs_down 1" in page


def test_compare_prompts_shows_the_models_production_scores_unpaired(
    api: TestClient, env: dict[str, str], tmp_path: Path, mock: MockServer
) -> None:
    """Two prompts of one run on the models good and weak: with production scores of good,
    the CLI and the API show them beside the paired test, unpaired and saying that they
    are the model's whichever prompt served; with none, nothing extra."""
    path = write(tmp_path / "s.yaml", prompts_suite(mock.url))
    out = cli.invoke(cli_app, ["run", str(path), "--no-progress"])
    assert out.exit_code == 0, out.output
    run_id = api.get("/api/runs", headers=ADMIN).json()[0]["id"]

    out = cli.invoke(cli_app, ["compare", str(run_id), "--prompts", "terse,chatty"])
    assert out.exit_code == 0, out.output
    assert "unpaired" not in out.output  # no production scores yet: nothing extra

    traces = [log(api, "good", f"Question {i}?", f"Answer {i}.") for i in range(3)]
    for i, trace_id in enumerate(traces):
        score(api, trace_id, "short", label="pass" if i else "fail")
    out = cli.invoke(cli_app, ["compare", str(run_id), "--prompts", "terse,chatty"])
    assert out.exit_code == 0, out.output
    assert UNPAIRED_NOTE in out.output and PROMPTS_NOTE in out.output
    assert "production, unpaired: good (human) short:" in out.output
    assert "n=3 scores of 3 traces" in out.output
    assert "weak (human)" not in out.output

    r = api.get(
        f"/api/runs/{run_id}/compare-prompts", params={"prompts": "terse,chatty"}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    good, weak = sorted(r.json(), key=lambda c: c["a"])
    assert good["production_note"] == f"{UNPAIRED_NOTE} {PROMPTS_NOTE}"
    (p,) = good["production"]
    assert (p["model"], p["source"], p["metric"], p["n"], p["traces"]) == (
        "good",
        "human",
        "short",
        3,
        3,
    )
    assert p["mean"] == pytest.approx(2 / 3) and p["low"] < p["mean"] < p["high"]
    assert weak["production"] == [] and weak["production_note"] is None


def post_score(api: TestClient, **body: Any) -> Any:
    return api.post("/api/scores", json={"source": "api", **body}, headers=ADMIN)


def test_a_posted_value_on_a_metric_with_a_scale_is_normalised_as_a_run_score_is(
    api: TestClient, env: dict[str, str]
) -> None:
    """A client's value on a registered metric (summary_quality: 1 to 10, passes at 6) is
    stored normalised and passed by the threshold, the same as a run's score of that value
    on that metric: it averages with nothing missing, and is no 'value on no 0..1 scale'."""
    run_score(api)
    (run,) = results(api, source="run")["items"]
    assert run["metric"] == "summary_quality" and run["normalized"] is not None
    first = log(api, "gpt-4o", "What is a tide?", "The sea rising and falling.")
    second = log(api, "gpt-4o", "Why is the sea salty?", "Rivers carry salt to it.")

    same = post_score(api, trace_id=first, name="summary_quality", value=run["value"])
    assert same.status_code == 201, same.text
    assert (same.json()["normalized"], same.json()["passed"], same.json()["note"]) == (
        run["normalized"],
        run["passed"],
        None,
    )
    for trace_id, value, normalized, passed in (
        (first, 10, 1.0, True),
        (second, 1, 0.0, False),
        (second, 6, 5 / 9, True),
        (second, 5.5, 4.5 / 9, False),
    ):
        r = post_score(api, trace_id=trace_id, name="summary_quality", value=value)
        assert r.status_code == 201, r.text
        assert r.json()["normalized"] == pytest.approx(normalized), value
        assert r.json()["passed"] is passed, value
    # a 'pass' label beside a value does not overrule the metric's threshold
    r = post_score(api, trace_id=first, name="summary_quality", value=2, label="pass")
    assert (r.json()["normalized"], r.json()["passed"]) == (pytest.approx(1 / 9), False)

    (row,) = get(api, "summary", metric="summary_quality", source="api")["scores"]
    values = [run["normalized"], 1.0, 0.0, 5 / 9, 4.5 / 9, 1 / 9]
    assert (row["n"], row["traces"], row["unscored"], row["message"]) == (6, 2, 0, None)
    assert row["mean"] == pytest.approx(sum(values) / 6)
    assert row["pass_rate"] == pytest.approx([run["passed"], 1, 0, 1, 0, 0].count(True) / 6)
    # the trace shows the normalised value beside the one posted
    scores = api.get(f"/api/traces/{second}", headers=ADMIN).json()["scores"]
    assert sorted((s["value"], s["normalized"]) for s in scores) == [
        (1.0, 0.0),
        (5.5, pytest.approx(4.5 / 9)),
        (6.0, pytest.approx(5 / 9)),
    ]
    # the dashboard's summary row is the API's
    engine, workspace = ws(api)
    panel = dashboard.model_metrics(engine, workspace, None, "production")
    assert panel.cells[("gpt-4o (api)", "summary_quality")].mean == row["mean"]


def test_a_value_off_the_metrics_scale_is_refused_naming_the_field_and_the_range(
    api: TestClient,
) -> None:
    trace_id = log(api, "gpt-4o", "What is a tide?", "The sea rising and falling.")
    for value in (11, 0, -3.5, 10.01):
        r = post_score(api, trace_id=trace_id, name="summary_quality", value=value)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["field"] == "value"
        assert error["message"] == (
            f"{value:g} is outside the scale of 'summary_quality' (1 to 10)"
        )
        assert error["hint"] == "give a value from 1 to 10"
    assert api.get(f"/api/traces/{trace_id}", headers=ADMIN).json()["scores"] == []
    assert get(api, "summary", metric="summary_quality")["scores"] == []
    # a label alone is not a value: kept, as before
    r = post_score(api, trace_id=trace_id, name="summary_quality", label="thumbs_up")
    assert r.status_code == 201 and r.json()["note"] is None


def test_a_score_with_text_no_database_stores_is_refused_naming_the_field(
    api: TestClient,
) -> None:
    """A NUL character in a posted score's name, label or comment: a 422 naming the field
    on either database (PostgreSQL refused the insert: a 500), and nothing stored."""
    trace_id = log(api, "gpt-4o", "What is a tide?", "The sea rising and falling.")
    for field, body in (
        ("name", {"name": "nul\x00name", "value": 1.0}),
        ("label", {"name": "feedback", "label": "thumbs\x00up"}),
        ("comment", {"name": "feedback", "label": "thumbs_up", "comment": "ok\x00"}),
    ):
        r = post_score(api, trace_id=trace_id, **body)
        assert r.status_code == 422, (field, r.text)
        error = r.json()["error"]
        assert error["field"] == field and "NUL" in error["message"], error
    assert api.get(f"/api/traces/{trace_id}", headers=ADMIN).json()["scores"] == []
    assert get(api, "summary")["scores"] == []


def test_a_value_on_a_metric_with_no_scale_is_kept_as_given_and_the_answer_says_why(
    api: TestClient,
) -> None:
    """A metric the workspace does not have (made for outside scores): the value is kept
    as before, on no 0..1 scale, and the answer says so and how to give it one; once the
    metric is registered with a scale, new values are normalised."""
    trace_id = log(api, "gpt-4o", "What is a tide?", "The sea rising and falling.")
    r = post_score(api, trace_id=trace_id, name="stars", value=4)
    assert r.status_code == 201, r.text
    assert (r.json()["normalized"], r.json()["passed"]) == (None, None)
    assert r.json()["note"] == NO_SCALE_NOTE.format(metric="stars")
    assert "POST /api/metrics" in r.json()["note"]
    (row,) = get(api, "summary", metric="stars")["scores"]
    assert (row["n"], row["unscored"], row["verdict"]) == (0, 1, "no values")
    assert row["message"] == "no mean: 1 value on no 0..1 scale (the metric has none)"

    created = api.post(
        "/api/metrics",
        json={"name": "stars", "type": "stars", "item": "Rate it.", "scale": [1, 5]},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    r = post_score(api, trace_id=trace_id, name="stars", value=4)
    assert (r.json()["normalized"], r.json()["passed"], r.json()["note"]) == (0.75, None, None)
    r = post_score(api, trace_id=trace_id, name="stars", value=6)
    assert r.status_code == 422 and r.json()["error"]["field"] == "value"


def test_otlp_evaluation_events_are_normalised_and_off_scale_ones_not_kept_with_a_warning(
    api: TestClient,
) -> None:
    """Scores in OTLP evaluation events follow the same rule; one off its scale is left
    out and the export's partial success says which and why, its span still kept."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    start = time.time_ns() - 10**9

    def event(name: str, value: float) -> dict[str, Any]:
        return {
            "name": "gen_ai.evaluation.result",
            "timeUnixNano": str(start + 10**8),
            "attributes": [
                {"key": "gen_ai.evaluation.name", "value": {"stringValue": name}},
                {"key": "gen_ai.evaluation.score.value", "value": {"doubleValue": value}},
            ],
        }

    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 5 * 10**8),
        "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}],
        "events": [event("summary_quality", 8), event("summary_quality", 42), event("stars", 9)],
    }
    doc = {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "t"}, "spans": [span]}]}]}
    r = api.post("/v1/traces", json=doc, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "partialSuccess": {
            "rejectedSpans": 0,
            "errorMessage": f"1 score(s) not kept: summary_quality on {trace_id}/{span_id}: "
            "42 is outside the scale of 'summary_quality' (1 to 10)",
        }
    }
    scores = api.get(f"/api/traces/{trace_id}", headers=ADMIN).json()["scores"]
    assert sorted((s["name"], s["value"], s["normalized"], s["passed"]) for s in scores) == [
        ("stars", 9.0, None, None),
        ("summary_quality", 8.0, pytest.approx(7 / 9), True),
    ]


def test_a_values_reading_follows_each_metric_types_own_rule() -> None:
    """What a run's score of each kind of metric would be for a value from outside."""
    from panopticon.judges.base import OffScale, stored_metric

    def metric(**definition: Any) -> Any:
        found = stored_metric(str(definition["type"]), {"name": "m", **definition})
        assert found is not None
        return found

    exact = metric(type="exact")
    assert exact.read_value(1) == (1.0, True) and exact.read_value(0) == (0.0, False)
    with pytest.raises(OffScale, match=r"0\.5 is outside the scale of 'm' \(0 \(fail\) or 1"):
        exact.read_value(0.5)
    length = metric(type="length", min=10, max=20)
    assert length.read_value(15) == (1.0, True) and length.read_value(25) == (0.0, False)
    assert metric(type="latency", max_ms=500).read_value(800) == (0.0, False)
    rubric = metric(type="rubric", prompt="Is it kind?", scale=[1, 5], threshold=4)
    assert rubric.read_value(4) == (0.75, True) and rubric.read_value(3) == (0.5, False)
    assert metric(type="rubric", prompt="Is it kind?", scale=[1, 5]).read_value(2) == (0.25, None)
    assert stored_metric("feedback", {"name": "thumbs", "type": "feedback"}) is None


def test_compare_prompts_splits_production_scores_by_the_prompt_version_their_spans_carry(
    api: TestClient, env: dict[str, str], tmp_path: Path, mock: MockServer
) -> None:
    """Traffic of the model good tagged with the prompt version that served it (a trace's
    metadata, or a span's attributes, as online rules read it): `compare --prompts
    terse,chatty` shows the production scores per prompt, each unpaired with its own
    interval clustered by trace; scores under another version or none are left out and
    counted in the note."""
    path = write(tmp_path / "s.yaml", prompts_suite(mock.url))
    out = cli.invoke(cli_app, ["run", str(path), "--no-progress"])
    assert out.exit_code == 0, out.output
    run_id = api.get("/api/runs", headers=ADMIN).json()[0]["id"]

    # terse: the version in the trace's metadata, scores of the whole trace
    terse = [
        log(api, "good", f"Question {i}?", "Yes.", metadata={"prompt.version": "terse"})
        for i in range(3)
    ]
    for trace_id, label in zip(terse, ("pass", "pass", "fail"), strict=True):
        score(api, trace_id, "short", label=label)
    score(api, terse[0], "short", label="pass")  # a second score of one trace: one cluster
    # chatty: the version in the span's attributes, scores of the span
    for _ in range(2):
        trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
        span = {"id": span_id, "name": "chat", "model": "good", "input": "q", "output": "a"}
        span["attributes"] = {"prompt_version": "chatty"}
        body = {"traces": [{"id": trace_id, "spans": [span]}]}
        api.post("/api/traces", json=body, headers=ADMIN).raise_for_status()
        score(api, trace_id, "short", label="fail", span_id=span_id)
    # neither: another version, and none
    score(
        api, log(api, "good", "Q?", "A.", metadata={"prompt.version": "v9"}), "short", label="pass"
    )
    score(api, log(api, "good", "Q?", "A."), "short", label="pass")

    r = api.get(
        f"/api/runs/{run_id}/compare-prompts", params={"prompts": "terse,chatty"}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    good = next(c for c in r.json() if c["a"].startswith("good@"))
    assert good["production_note"] == (
        f"{UNPAIRED_NOTE} " + PROMPTS_SPLIT_NOTE.format(a="terse", b="chatty", other=2)
    )
    a, b = good["production"]
    assert (a["prompt"], a["model"], a["source"], a["metric"], a["n"], a["traces"]) == (
        "terse",
        "good",
        "human",
        "short",
        4,
        3,
    )
    expected = bounded_interval(ClusterSums.of([[1.0, 1.0], [1.0], [0.0]]))
    assert a["mean"] == pytest.approx(0.75) == pytest.approx(expected.estimate)
    assert (a["low"], a["high"]) == (pytest.approx(expected.low), pytest.approx(expected.high))
    assert (b["prompt"], b["n"], b["traces"], b["mean"]) == ("chatty", 2, 2, 0.0)

    out = cli.invoke(cli_app, ["compare", str(run_id), "--prompts", "terse,chatty"])
    assert out.exit_code == 0, out.output
    assert "production, unpaired: good@terse (human) short: 0.750" in out.output
    assert "n=4 scores of 3 traces" in out.output
    assert "production, unpaired: good@chatty (human) short: 0.000" in out.output
    assert PROMPTS_NOTE not in out.output and "2 other production score(s)" in out.output

    # A first, as asked
    out = cli.invoke(cli_app, ["compare", str(run_id), "--prompts", "chatty,terse"])
    assert out.output.index("good@chatty (human)") < out.output.index("good@terse (human)")

    # prompt versions the traffic never carried: the model's scores, whichever prompt served
    from panopticon.services.compare import compare_prompts, with_production

    engine, workspace = ws(api)
    asked = [
        replace(c, prompts=("v1", "v2")) for c in compare_prompts(engine, run_id, "terse", "chatty")
    ]
    (unsplit,) = [c for c in with_production(engine, workspace, asked) if c.models[0] == "good"]
    assert unsplit.production_note == f"{UNPAIRED_NOTE} {PROMPTS_NOTE}"
    (whole,) = unsplit.production
    assert (whole.prompt, whole.n, whole.traces) == (None, 8, 7)


def test_the_summarys_links_to_production_results_select_the_rows_scores(
    api: TestClient, env: dict[str, str]
) -> None:
    """Each production row of the Summary links to the Results page filtered by its model
    and source, and that page counts the row's scores: a score of a whole trace is found
    under the trace's model, '(several models)' or '(model unknown)' as the row has it,
    not under any model one of its spans names."""
    import html
    import re

    from tests.test_web import sign_in

    one = log(api, "gpt-4o", "What is a tide?", "The sea rising and falling.")
    score(api, one, "verdict", label="pass")
    two = log(api, "gpt-4o", "Hi", "Hello")
    score(api, two, "verdict", label="fail")
    body = {
        "traces": [
            {
                "id": "a" * 32,
                "spans": [
                    {"name": "one", "model": "gpt-4o", "input": "a", "output": "b"},
                    {"name": "two", "model": "claude-3", "input": "c", "output": "d"},
                ],
            }
        ]
    }
    api.post("/api/traces", json=body, headers=ADMIN).raise_for_status()
    score(api, "a" * 32, "verdict", label="pass")  # under '(several models)'
    score(api, "f" * 32, "verdict", label="fail")  # its trace never arrived
    score(api, one, "verdict", label="pass", span_id=span_of(api, one))  # the span's own
    run_score(api)  # the summary's model table shows once there is a run

    traces = {"gpt-4o": {one, two}, "(several models)": {"a" * 32}, "(model unknown)": {"f" * 32}}
    rows = {r["label"]: r for r in get(api, "summary")["models"]}
    assert {label: r["n"] for label, r in rows.items()} == {
        "gpt-4o (human)": 3,
        "(several models) (human)": 1,
        "(model unknown) (human)": 1,
    }
    assert sign_in(api, ADMIN["X-API-Key"]).status_code == 200
    page = api.get("/ui/").text
    links = {
        html.unescape(label): html.unescape(href)
        for href, label in re.findall(r'<a href="(/ui/results\?model=[^"]*)">([^<]*)</a>', page)
    }
    assert set(rows) <= set(links)
    for label, row in rows.items():
        results_page = api.get(links[label])
        assert results_page.status_code == 200, results_page.text
        total = re.search(r'data-testid="results-total">([\d,]+) score', results_page.text)
        assert total is not None, label
        assert int(total.group(1)) == row["n"] + row["unscored"], label
        # the JSON API, with the same filter, says the same
        model = label.removesuffix(" (human)")
        listed = results(api, model_id=model, source="human")
        assert listed["total"] == row["n"], label
        assert {i["trace_id"] for i in listed["items"]} == traces[model], label
        assert f"<option selected>{html.escape(model)}</option>" in results_page.text
