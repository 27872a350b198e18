"""The design's evaluation workflow over the API: register models, store queries and
metrics, evaluate a query, read results with filters; workspaces kept apart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from panopticon.api.app import create_app
from panopticon.mockllm.server import MockServer
from panopticon.services.access import create_key
from panopticon.services.runs import store
from panopticon.settings import Settings
from tests.conftest import suite_yaml, write

BOOT = {"X-API-Key": "dev_api_key_for_testing"}


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    app = create_app(
        Settings(home=settings.home, database_url=settings.database_url, api_key=BOOT["X-API-Key"]),
        env={},
    )
    with TestClient(app) as client:
        yield client


def register(api: TestClient, mock: MockServer, headers: dict[str, str]) -> int:
    for name in ("gpt-4o", "claude-3-opus-20240229", "gpt-4"):
        r = api.post(
            "/api/models",
            json={
                "id": name,
                "model": f"mock-{name}",
                "base_url": mock.url,
                "price": {"input": 1, "output": 2},
            },
            headers=headers,
        )
        assert r.status_code == 201, r.text
    metric = api.post(
        "/api/metrics",
        headers=headers,
        json={
            "item": "Evaluate the summary for conciseness. Respond with ONLY a single score "
            "from 1 to 10.",
            "type": "summary_quality",
            "threshold": 6,
        },
    )
    return int(metric.json()["id"])


def test_evaluate_a_query_and_read_the_results(api: TestClient, mock: MockServer) -> None:
    mock.config.quality.update({"mock-gpt-4o": 0.9, "mock-claude-3-opus-20240229": 0.3})
    metric_id = register(api, mock, BOOT)
    assert {m["id"] for m in api.get("/api/models", headers=BOOT).json()} == {
        "gpt-4o",
        "claude-3-opus-20240229",
        "gpt-4",
    }
    assert api.get("/api/models/gpt-4o", headers=BOOT).json()["price"] == {
        "input": 1.0,
        "output": 2.0,
    }
    for model in ("gpt-4o", "claude-3-opus-20240229"):
        r = api.post(
            "/api/judge/evaluate/query",
            headers=BOOT,
            json={
                "query": "Summarize the provided article about renewable energy trends.",
                "model_id": model,
                "theme": "summarization",
                "evaluation_prompt_ids": [metric_id],
                "judge_model": "gpt-4",
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "completed" and body["response"].startswith(f"[mock-{model}]")
        (score,) = body["scores"]
        assert score["judge_model"] == "gpt-4" and score["error"] is None
    good = api.get(
        "/api/judge/results",
        headers=BOOT,
        params={"theme": "summarization", "model_id": "gpt-4o", "limit": 10},
    ).json()
    assert good["total"] == 1 and good["items"][0]["value"] >= 8
    passed = api.get("/api/judge/results", headers=BOOT, params={"passed": "true"}).json()
    assert [r["model_id"] for r in passed["items"]] == ["gpt-4o"]
    low = api.get("/api/judge/results", headers=BOOT, params={"max_score": 5}).json()
    assert [r["model_id"] for r in low["items"]] == ["claude-3-opus-20240229"]
    assert (
        api.get("/api/judge/results", headers=BOOT, params={"metric": "nope"}).json()["total"] == 0
    )
    # the same request again is answered from the store: nothing is paid twice
    before = mock.stats.answered
    again = api.post(
        "/api/judge/evaluate/query",
        headers=BOOT,
        json={
            "query": "Summarize the provided article about renewable energy trends.",
            "model_id": "gpt-4o",
            "theme": "summarization",
            "evaluation_prompt_ids": [metric_id],
            "judge_model": "gpt-4",
        },
    ).json()
    assert again["cached"] is True and mock.stats.answered == before


def test_unknown_models_and_metrics_are_named(api: TestClient, mock: MockServer) -> None:
    metric_id = register(api, mock, BOOT)
    r = api.post(
        "/api/judge/evaluate/query",
        headers=BOOT,
        json={
            "query": "q",
            "model_id": "gpt-5",
            "evaluation_prompt_ids": [metric_id],
            "judge_model": "gpt-4",
        },
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "model_id"
    assert "register it with POST /api/models" in r.json()["error"]["hint"]
    r = api.post(
        "/api/judge/evaluate/query",
        headers=BOOT,
        json={"query": "q", "model_id": "gpt-4o", "evaluation_prompt_ids": [999]},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "evaluation_prompt_ids"
    r = api.post("/api/models", headers=BOOT, json={"id": "x", "provider": "nope"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "provider"


def test_models_and_results_stay_in_their_workspace(
    api: TestClient, mock: MockServer, settings: Settings
) -> None:
    metric_id = register(api, mock, BOOT)
    api.post(
        "/api/judge/evaluate/query",
        headers=BOOT,
        json={
            "query": "q?",
            "model_id": "gpt-4o",
            "evaluation_prompt_ids": [metric_id],
            "judge_model": "gpt-4",
        },
    )
    with store(settings) as engine:
        other = {"X-API-Key": create_key(engine, "other", "admin", "t")[1]}
        viewer = {"X-API-Key": create_key(engine, "default", "viewer", "t")[1]}
    assert api.get("/api/models", headers=other).json() == []
    assert api.get("/api/models/gpt-4o", headers=other).status_code == 404
    assert api.get("/api/judge/results", headers=other).json()["total"] == 0
    r = api.post(
        "/api/judge/evaluate/query",
        headers=other,
        json={"query": "q?", "model_id": "gpt-4o", "evaluation_prompt_ids": [metric_id]},
    )
    assert r.status_code == 422  # neither the model nor the metric exists there
    assert api.post("/api/models", headers=viewer, json={"id": "m"}).status_code == 403
    assert api.get("/api/judge/results", headers=viewer).json()["total"] == 1


def wait_for_job(api: TestClient, job_id: int, headers: dict[str, str]) -> dict[str, object]:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = api.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("completed", "failed"):
            return dict(job)
        time.sleep(0.05)
    raise AssertionError("the job did not finish in 30 s")


def test_a_theme_evaluation_runs_as_a_job(
    api: TestClient, mock: MockServer, job_worker: None
) -> None:
    metric_id = register(api, mock, BOOT)
    for i in range(12):
        api.post(
            "/api/queries",
            headers=BOOT,
            json={"item": f"Summarize article {i}.", "type": "summarization"},
        )
    api.post("/api/queries", headers=BOOT, json={"item": "A haiku?", "type": "poetry"})
    r = api.post(
        "/api/judge/evaluate/theme",
        headers=BOOT,
        json={
            "theme": "summarization",
            "model_id": "claude-3-opus-20240229",
            "evaluation_prompt_ids": [metric_id],
            "judge_model": "gpt-4",
            "limit": 10,
        },
    )
    assert r.status_code == 202, r.text
    job = wait_for_job(api, r.json()["id"], BOOT)
    assert job["status"] == "completed" and (job["done"], job["total"]) == (10, 10)
    # what the job cost: its run's priced answers and judgements (it said null)
    run = api.get(f"/api/runs/{job['run_id']}", headers=BOOT).json()
    assert job["cost_usd"] is not None and job["cost_usd"] > 0 and job["unknown_cost"] == 0
    assert job["cost_usd"] == run["totals"]["cost_usd"]
    # the status, progress and cost come from one connection (each checkout is a round
    # trip on PostgreSQL: pool_pre_ping)
    from panopticon.services.database import workspace_id
    from panopticon.services.jobs import job_status

    with store(api.app.state.settings) as engine:
        ws = workspace_id(engine, "default")
        checkouts: list[object] = []
        sa.event.listen(engine, "checkout", lambda *args: checkouts.append(args))
        status = job_status(engine, ws, job["id"])
    assert len(checkouts) == 1 and status.cost_usd == job["cost_usd"]
    results = api.get(
        "/api/judge/results", headers=BOOT, params={"run": job["run_id"], "limit": 100}
    ).json()
    assert results["total"] == 10
    assert {x["theme"] for x in results["items"]} == {"summarization"}
    empty = api.post(
        "/api/judge/evaluate/theme",
        headers=BOOT,
        json={"theme": "nothing-here", "model_id": "gpt-4o", "evaluation_prompt_ids": [metric_id]},
    )
    assert empty.status_code == 422 and empty.json()["error"]["field"] == "theme"


@pytest.mark.sqlite_only  # on PostgreSQL the job waits in the shared queue for a worker
def test_a_job_left_queued_is_taken_up_when_the_server_starts(
    settings: Settings, mock: MockServer
) -> None:
    from panopticon.services.jobs import create_theme_job
    from panopticon.services.registry import ModelRegistry
    from panopticon.services.runs import open_store

    boot = Settings(
        home=settings.home, database_url=settings.database_url, api_key=BOOT["X-API-Key"]
    )
    with TestClient(create_app(boot, env={})) as first:
        metric_id = register(first, mock, BOOT)
        for i in range(3):
            first.post("/api/queries", headers=BOOT, json={"item": f"Q {i}?", "type": "t"})
    engine = open_store(boot)
    assert ModelRegistry(engine, 1, boot).get("gpt-4o")["id"] == "gpt-4o"
    job_id = create_theme_job(
        engine,
        1,
        boot,
        {},
        {  # recorded, never submitted: as after a crash
            "theme": "t",
            "model_id": "gpt-4o",
            "evaluation_prompt_ids": [metric_id],
            "judge_model": "gpt-4",
            "limit": None,
        },
    )
    engine.dispose()
    with TestClient(create_app(boot, env={})) as second:
        job = wait_for_job(second, job_id, BOOT)
        assert job["status"] == "completed" and job["done"] == 3


def test_a_broad_filter_counts_up_to_the_cap_then_says_at_least(
    tmp_path: Path, env: dict[str, str], mock: MockServer, engine: sa.Engine
) -> None:
    """Counting a million matches would cost more than the page: past the cap (10,000 by
    default) the total is a lower bound and says so; below it, it is exact."""
    from typer.testing import CliRunner

    from panopticon.cli import app
    from panopticon.store.queries.results import ResultFilters, search_scores

    path = write(tmp_path / "s.yaml", suite_yaml(mock.url, queries=6))
    assert CliRunner().invoke(app, ["run", str(path), "--no-progress"]).exit_code == 0
    with engine.connect() as conn:  # 6 queries x 2 models x 2 metrics
        rows, total, exact = search_scores(conn, 1, ResultFilters(), 3, 0, count_cap=100)
        assert (total, exact, len(rows)) == (24, True, 3)
        rows, total, exact = search_scores(conn, 1, ResultFilters(), 3, 0, count_cap=5)
        assert (total, exact, len(rows)) == (5, False, 3)
        # a page past the cap still counts to its own end
        rows, total, exact = search_scores(conn, 1, ResultFilters(), 3, 9, count_cap=5)
        assert (total, exact, len(rows)) == (12, False, 3)
        rows, total, exact = search_scores(
            conn, 1, ResultFilters(model="good", metric="short"), 50, 0, count_cap=5
        )
        assert (total, exact) == (6, True)  # the page (50) is past the cap: counted to it
        assert {r["model_id"] for r in rows} == {"good"} and len(rows) == 6
