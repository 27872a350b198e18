"""Production scores beside run scores: the results listing with a source filter and its
exports, trends and model means by source (clustered by trace), and people's labels on
traces feeding the same judge calibration. Real traffic through the API: traces logged,
a rule applied, its scores waited for; outside scores posted; labels through the trace
page's form."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from panopticon.api.app import create_app
from panopticon.api.routes.judge import SourceName
from panopticon.mockllm.server import MockServer
from panopticon.services.results import SOURCE_FILTERS
from panopticon.settings import Settings
from tests.test_api import BOOT
from tests.test_api_judge import register
from tests.test_online_eval import RULE as BASE_RULE
from tests.test_online_eval import final, log, wait_for
from tests.test_web import sign_in

ADMIN = {"X-API-Key": BOOT}
# the online rule's judged metric passes at 6 of 10, so that people's pass/fail pairs with it
RULE: dict[str, Any] = {
    **BASE_RULE,
    "metrics": [
        {**BASE_RULE["metrics"][0], "threshold": 6},
        *BASE_RULE["metrics"][1:],
    ],
}


@pytest.fixture
def api(settings: Settings, mock: MockServer, job_worker: None) -> Iterator[TestClient]:
    app = create_app(Settings(home=settings.home, database_url=settings.database_url, api_key=BOOT))
    with TestClient(app) as client:
        register(client, mock, ADMIN)  # gpt-4o, claude-3-opus-20240229, gpt-4 and a metric
        yield client


def judged(api: TestClient, prompts: list[str]) -> list[str]:
    """Log one gpt-4o trace per prompt with the online rule enabled; wait for its scores."""
    assert api.post("/api/online/rules", json=RULE, headers=ADMIN).status_code == 201
    ids = [log(api, "gpt-4o", p, f"An answer to: {p}") for p in prompts]
    for trace_id in ids:
        (entry,) = final(api, trace_id)["entries"]
        assert entry["outcome"] == "evaluated", entry
    return ids


def run_score(api: TestClient) -> None:
    """One run's score: gpt-4o's answer to a query, judged by the registered metric."""
    metrics = api.get("/api/metrics", headers=ADMIN).json()
    metric_id = (metrics["items"] if isinstance(metrics, dict) else metrics)[0]["id"]
    r = api.post(
        "/api/judge/evaluate/query",
        headers=ADMIN,
        json={
            "query": "Summarize the article about tides.",
            "model_id": "gpt-4o",
            "theme": "summarization",
            "evaluation_prompt_ids": [metric_id],
            "judge_model": "gpt-4",
        },
    )
    assert r.status_code == 200, r.text


def results(api: TestClient, **params: Any) -> dict[str, Any]:
    r = api.get("/api/judge/results", params={"limit": 100, **params}, headers=ADMIN)
    assert r.status_code == 200, r.text
    return dict(r.json())


def span_of(api: TestClient, trace_id: str) -> str:
    trace = api.get(f"/api/traces/{trace_id}", headers=ADMIN).json()
    (span,) = [s for s in trace["spans"] if s.get("model_served") or s.get("model_requested")]
    return str(span["span_id"])


def test_the_api_source_names_are_the_services_source_filters() -> None:
    assert SourceName.__args__ == SOURCE_FILTERS  # type: ignore[attr-defined]


def test_production_scores_are_listed_beside_run_scores_and_a_source_filter_picks_either(
    api: TestClient,
) -> None:
    run_score(api)
    france, italy = judged(api, ["What is the capital of France?", "Capital of Italy?"])
    r = api.post(
        "/api/scores",
        json={"trace_id": italy, "name": "thumbs", "label": "thumbs_up", "value": 1},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text

    every = results(api)
    assert every["total"] == 1 + 2 * 2 + 1  # the run's score, two online each, the client's
    assert {i["source"] for i in every["items"]} == {"run", "online", "api"}

    runs = results(api, source="run")
    assert runs["total"] == 1 and runs["items"][0]["run_id"] and runs["items"][0]["result_id"]

    production = results(api, source="production")
    assert production["total"] == 5
    online = results(api, source="online")["items"]
    assert len(online) == 4
    for item in online:
        assert item["run_id"] is None and item["result_id"] is None
        assert item["trace_id"] in (france, italy) and item["span_id"]
        assert item["model_id"] == "gpt-4o"  # the span's model
        assert item["query"].startswith(("What is the capital", "Capital of Italy"))
        assert item["response"].startswith("An answer to:")
        assert item["rule_version"] and item["metric"] in ("helpful", "no-pii")
    (client,) = results(api, source="api")["items"]
    assert client["trace_id"] == italy and client["span_id"] is None
    assert client["query"] == "Capital of Italy?" and client["label"] == "thumbs_up"

    # the other filters apply to production scores too
    assert results(api, source="production", model_id="gpt-4o")["total"] == 5
    assert results(api, source="production", model_id="claude-3-opus-20240229")["total"] == 0
    by_text = results(api, text="capital of france")
    assert {i["trace_id"] for i in by_text["items"]} == {france}
    assert by_text["total"] == 2
    assert results(api, source="online", metric="helpful")["total"] == 2
    assert results(api, theme="summarization")["total"] == 1  # no theme in production

    bad = api.get("/api/judge/results", params={"source": "both"}, headers=ADMIN)
    assert bad.status_code == 422 and "source" in bad.text


def test_exports_of_the_results_hold_production_scores_with_their_source(
    api: TestClient,
) -> None:
    run_score(api)
    (trace_id,) = judged(api, ["What is the capital of France?"])
    csv_r = api.get("/api/judge/results/export", params={"format": "csv"}, headers=ADMIN)
    assert csv_r.status_code == 200 and csv_r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_r.text)))
    assert sorted(r["source"] for r in rows) == ["online", "online", "run"]
    assert {r["trace_id"] for r in rows if r["source"] == "online"} == {trace_id}
    assert {r["model_id"] for r in rows} == {"gpt-4o"}
    as_json = api.get(
        "/api/judge/results/export",
        params={"format": "json", "source": "production"},
        headers=ADMIN,
    )
    items = orjson.loads(as_json.content)
    assert len(items) == 2 and {i["source"] for i in items} == {"online"}
    assert all(i["rule_version"] and i["span_id"] for i in items)
    lines = api.get(
        "/api/judge/results/export", params={"format": "jsonl", "source": "run"}, headers=ADMIN
    ).text.splitlines()
    assert [orjson.loads(line)["source"] for line in lines] == ["run"]


def test_the_dashboard_lists_production_scores_with_a_link_to_their_trace(
    api: TestClient,
) -> None:
    run_score(api)
    (trace_id,) = judged(api, ["What is the capital of France?"])
    assert sign_in(api, BOOT).status_code == 200
    page = api.get("/ui/results").text
    assert f'href="/ui/traces/{trace_id}"' in page and "/ui/results/" in page
    only = api.get("/ui/results", params={"source": "production"}).text
    assert f'href="/ui/traces/{trace_id}"' in only and 'data-testid="result-link"' not in only
    assert "What is the capital of France?" in only
    exported = api.get("/ui/results/export", params={"source": "online", "format": "csv"})
    assert exported.status_code == 200
    assert [r["source"] for r in csv.DictReader(io.StringIO(exported.text))] == ["online"] * 2


def test_trends_and_model_means_show_production_as_their_own_series_clustered_by_trace(
    api: TestClient,
) -> None:
    run_score(api)
    judged(api, ["What is the capital of France?"])
    assert sign_in(api, BOOT).status_code == 200
    trends = api.get("/ui/trends", params={"metric": "helpful"}).text
    # one trace so far: a mean, but too few for an interval
    assert "gpt-4o (online)" in trends and "too few" in trends
    judged_more = [
        log(api, "gpt-4o", f"Question {i}?", f"An answer to question {i}.") for i in range(3)
    ]
    for trace_id in judged_more:
        wait_for(lambda t=trace_id: final(api, t))  # type: ignore[misc]
    chart = api.get("/ui/trends", params={"metric": "helpful", "source": "production"}).text
    values = re.search(r'data-chart="trend" data-values="([^"]+)"', chart)
    assert values is not None
    data = orjson.loads(values.group(1).replace("&#34;", '"').replace("&quot;", '"'))
    (series,) = data["series"]
    assert series["label"] == "gpt-4o (online)" and series["source"] == "online"
    today = [i for i, n in enumerate(series["n"]) if n][-1]
    assert series["n"][today] == 4 and series["clusters"][today] == 4  # four traces
    assert series["low"][today] is not None and series["low"][today] <= series["mean"][today]
    runs_only = api.get("/ui/trends", params={"metric": "helpful", "source": "run"}).text
    assert "gpt-4o (online)" not in runs_only
    summary = api.get("/ui/").text
    assert "gpt-4o (online)" in summary and "source=online" in summary
    assert "pass rate [95% CI]" in summary  # pass rates with their interval, as means
    compare = api.get("/ui/compare").text
    assert 'data-testid="production-scores"' in compare and "gpt-4o (online)" in compare


def label(api: TestClient, trace_id: str, span_id: str, metric: str, **values: Any) -> None:
    page = api.get(f"/ui/traces/{trace_id}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    r = api.post(
        f"/ui/traces/{trace_id}/label",
        data={"csrf": csrf.group(1), "span_id": span_id, "metric": metric, **values},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def test_peoples_labels_on_spans_feed_judge_calibration_clustered_by_span(
    api: TestClient, mock: MockServer
) -> None:
    traces = judged(api, [f"Production question {i}?" for i in range(4)])
    assert sign_in(api, BOOT).status_code == 200
    online = {
        (i["trace_id"], i["span_id"]): i
        for i in results(api, source="online", metric="helpful")["items"]
    }
    assert len(online) == 4
    for n, trace_id in enumerate(traces):
        span_id = span_of(api, trace_id)
        judge = online[(trace_id, span_id)]
        # two people label every span: their labels are clustered by the span
        for who in ("ann", "bob"):
            label(
                api,
                trace_id,
                span_id,
                "helpful",
                value=str(judge["value"] + (n % 2)),
                passed="pass" if judge["passed"] else "fail",
                annotator=who,
            )
    # a label on a span no judge scored for that metric is not a pair
    label(api, traces[0], span_of(api, traces[0]), "tone", value="3", annotator="ann")
    # a value off the metric's scale is refused, as `panopticon annotate` refuses it
    page = api.get(f"/ui/traces/{traces[1]}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    off = api.post(
        f"/ui/traces/{traces[1]}/label",
        data={
            "csrf": csrf.group(1),
            "span_id": span_of(api, traces[1]),
            "metric": "helpful",
            "value": "42",
            "annotator": "carl",
        },
        follow_redirects=False,
    )
    assert off.status_code == 422 and "outside the scale of &#39;helpful&#39;" in off.text, off.text

    r = api.get("/api/judge/calibration", headers=ADMIN)
    assert r.status_code == 200, r.text
    (row,) = r.json()
    assert row["metric"] == "helpful" and row["source"] == "online"
    assert row["labelled"] == 8 and row["results"] == 4  # eight labels of four spans
    assert row["value_pairs"] == 8
    assert row["pass_pairs"] == 8 and row["agreement"] == 1.0
    guardrail = api.get("/api/judge/calibration", params={"source": "guardrail"}, headers=ADMIN)
    assert guardrail.json() == []
    both = api.get("/api/judge/calibration", params={"run": 1, "source": "online"}, headers=ADMIN)
    assert both.status_code == 422
    page = api.get("/ui/annotate").text
    assert 'data-testid="production-calibration"' in page and "online" in page


def test_paired_comparisons_show_production_scores_beside_them_unpaired_clustered_by_trace(
    api: TestClient, env: dict[str, str]
) -> None:
    """Two runs of one query on gpt-4o pair item by item; gpt-4o's production scores are
    no run's items, so they are not in the paired test: the API, the CLI and the compare
    page show them beside it, labelled unpaired, each with its own interval clustered by
    trace (three judged traces: three clusters)."""
    from typer.testing import CliRunner

    from panopticon.cli import app as cli_app
    from panopticon.services.compare import UNPAIRED_NOTE

    run_score(api)
    run_score(api)
    second, first = (r["id"] for r in api.get("/api/runs", headers=ADMIN).json()[:2])
    judged(api, ["What is a tide?", "Why is the sea salty?", "How deep is the ocean?"])

    r = api.get("/api/runs/compare", params={"a": first, "b": second}, headers=ADMIN)
    assert r.status_code == 200, r.text
    (c,) = r.json()
    assert [m["n"] for m in c["metrics"]] == [1]  # the paired test: the runs' one item
    assert c["production_note"] == UNPAIRED_NOTE
    by_metric = {p["metric"]: p for p in c["production"]}
    assert set(by_metric) == {"helpful", "no-pii"}
    helpful = by_metric["helpful"]
    assert (helpful["model"], helpful["source"], helpful["n"], helpful["traces"]) == (
        "gpt-4o",
        "online",
        3,
        3,
    )
    assert helpful["low"] is not None and helpful["low"] <= helpful["mean"] <= helpful["high"]

    out = CliRunner().invoke(cli_app, ["compare", str(first), str(second)])
    assert out.exit_code == 0, out.output
    assert "Production scores are unpaired" in out.output
    assert "production, unpaired: gpt-4o (online) helpful:" in out.output
    assert "n=3 scores of 3 traces" in out.output

    assert sign_in(api, BOOT).status_code == 200
    page = api.get("/ui/compare/paired", params={"run_a": first, "run_b": second}).text
    assert 'data-testid="unpaired-note"' in page and "Production scores are unpaired" in page
    assert 'data-testid="production-unpaired"' in page and "gpt-4o (online)" in page


def test_the_summary_counts_production_scores_apart_from_the_runs_totals(
    api: TestClient,
) -> None:
    """The summary's totals stay the runs' (one run score here); production scores are
    their own row per source: traces scored, scores, and their judges' tokens and cost."""
    from panopticon.services import dashboard
    from panopticon.services.database import workspace_id

    run_score(api)
    judged(api, ["What is a tide?", "Why is the sea salty?"])
    engine = api.app.state.engine  # type: ignore[attr-defined]
    data = dashboard.overview(engine, workspace_id(engine, "default"), 30)
    assert (data.totals.runs, data.totals.scores) == (1, 1)
    (online,) = data.production
    assert (online.source, online.traces, online.scores, online.score_errors) == (
        "online",
        2,
        4,  # two metrics on each trace
        0,
    )
    assert online.input_tokens > 0 and online.cost_usd > 0
    assert sign_in(api, BOOT).status_code == 200
    page = api.get("/ui/").text
    section = page.split('data-testid="production-totals"')[1].split("</section>")[0]
    assert "apart from the runs" in page and 'href="/ui/results?source=online"' in section
    assert [c.strip() for c in re.findall(r'<td class="num">([^<]*)</td>', section)][:3] == [
        "2",
        "4",
        "0",
    ]


def test_the_themes_heatmap_has_production_rows_apart_from_the_runs(api: TestClient) -> None:
    """Production scores are a row per source and model ("gpt-4o (online)") in a column of
    their own: a production trace has no query theme, and its scores never join a run's
    row."""
    from panopticon.services import dashboard
    from panopticon.services.database import workspace_id

    run_score(api)  # gpt-4o, theme "summarization"
    judged(api, ["What is a tide?", "Why is the sea salty?"])
    engine = api.app.state.engine  # type: ignore[attr-defined]
    ws = workspace_id(engine, "default")
    data = dashboard.heatmap(engine, ws, None, None)
    assert data.production == {"gpt-4o (online)": ("gpt-4o", "online")}
    assert data.models == ["gpt-4o", "gpt-4o (online)"]  # the runs' rows first
    assert data.cells[("gpt-4o", "summarization")].n == 1
    assert data.cells[("gpt-4o (online)", dashboard.PRODUCTION_THEME)].n == 4  # 2 metrics x 2
    assert ("gpt-4o", dashboard.PRODUCTION_THEME) not in data.cells
    one = dashboard.heatmap(engine, ws, None, "helpful")
    assert one.cells[("gpt-4o (online)", dashboard.PRODUCTION_THEME)].n == 2
    assert sign_in(api, BOOT).status_code == 200
    page = api.get("/ui/themes").text
    row = page.split('data-testid="production-row"')[1].split("</tr>")[0]
    assert "gpt-4o (online)" in row and "/ui/results?source=online&amp;model=gpt-4o" in row
    # each cell with its interval, clustered by trace (or says one trace is too few)
    assert "95% CI" in row or "too few for an interval" in row
    assert "traces)" in row
    assert "not part of this run" in page
