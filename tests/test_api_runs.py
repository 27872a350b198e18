"""Runs over the API, mirroring the CLI: start a suite, list, detail, export, compare."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from panopticon.api.app import create_app
from panopticon.mockllm.server import MockServer
from panopticon.services.access import create_key
from panopticon.services.runs import store
from panopticon.settings import Settings

KEY = {"X-API-Key": "dev_api_key_for_testing"}


@pytest.fixture
def api(settings: Settings, job_worker: None, mock: MockServer) -> Iterator[TestClient]:
    """The API, with the mock registered by an admin as the provider 'mock' (a suite sent
    to the API names providers; it cannot bring its own endpoint)."""
    app = create_app(
        Settings(home=settings.home, database_url=settings.database_url, api_key=KEY["X-API-Key"]),
        env={},
    )
    with TestClient(app) as client:
        r = client.post(
            "/api/providers",
            headers=KEY,
            json={"name": "mock", "kind": "openai", "base_url": mock.url},
        )
        assert r.status_code == 201, r.text
        yield client


def suite(url: str, models: tuple[str, ...] = ("good", "weak"), n: int = 12) -> dict[str, Any]:
    return {
        "name": "api-suite",
        "models": [
            {"id": m, "model": f"mock-{m}", "provider": "mock", "price": {"input": 1, "output": 1}}
            for m in models
        ],
        "judge": {"id": "judge", "model": "mock-judge", "provider": "mock"},
        "queries": [{"text": f"Question {i}?", "theme": "t"} for i in range(n)],
        "metrics": [{"name": "quality", "type": "rubric", "prompt": "Good?", "threshold": 6}],
    }


def run_to_completion(api: TestClient, body: dict[str, Any]) -> int:
    r = api.post("/api/runs", headers=KEY, json={"suite": body})
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = api.get(f"/api/jobs/{r.json()['id']}", headers=KEY).json()
        if job["status"] in ("completed", "failed"):
            assert job["status"] == "completed", job
            return int(job["run_id"])
        time.sleep(0.05)
    raise AssertionError("run did not finish")


def test_start_a_suite_then_read_export_and_compare_it(api: TestClient, mock: MockServer) -> None:
    mock.config.quality.update({"mock-good": 0.9, "mock-weak": 0.3})
    run_id = run_to_completion(api, suite(mock.url))
    (listed,) = api.get("/api/runs", headers=KEY).json()
    assert listed["id"] == run_id and listed["state"] == "completed"
    detail = api.get(f"/api/runs/{run_id}", headers=KEY).json()
    means = {m["model"]: m["mean"] for m in detail["summary"]["metrics"]}
    assert means["good"] > means["weak"] and detail["suite"]["name"] == "api-suite"
    rows = list(
        csv.DictReader(
            io.StringIO(
                api.get(f"/api/runs/{run_id}/export", headers=KEY, params={"format": "csv"}).text
            )
        )
    )
    assert len(rows) == 24 and "quality.value" in rows[0]
    lines = api.get(
        f"/api/runs/{run_id}/export", headers=KEY, params={"format": "jsonl"}
    ).text.splitlines()
    assert len(lines) == 24
    c = api.get(f"/api/runs/{run_id}/compare", headers=KEY, params={"models": "good,weak"})
    assert c.status_code == 200
    assert c.json()["metrics"][0]["verdict"] == "A better"
    second = run_to_completion(api, suite(mock.url, models=("weak",)))
    first_only_good = run_to_completion(api, suite(mock.url, models=("good",)))
    runs = api.get(
        "/api/runs/compare", headers=KEY, params={"a": first_only_good, "b": second}
    ).json()
    assert runs[0]["metrics"][0]["verdict"] == "A better"
    assert runs[0]["tests"] == len(runs[0]["metrics"])  # Holm's family, said


def test_a_suite_over_the_api_cannot_read_server_files(api: TestClient, mock: MockServer) -> None:
    body = suite(mock.url)
    body["queries"] = [{"file": "/etc/passwd"}]
    r = api.post("/api/runs", headers=KEY, json={"suite": body})
    assert r.status_code == 422 and r.json()["error"]["field"] == "suite.queries[0].file"
    bad = suite(mock.url)
    bad["models"][0]["temprature"] = 1
    r = api.post("/api/runs", headers=KEY, json={"suite": bad})
    assert r.status_code == 422 and "unknown key 'temprature'" in r.json()["error"]["message"]


def test_comparing_a_model_the_run_does_not_have_names_the_models_parameter(
    api: TestClient, mock: MockServer
) -> None:
    """The API's error named the CLI's option, '--models'."""
    run_id = run_to_completion(api, suite(mock.url, n=2))
    r = api.get(f"/api/runs/{run_id}/compare", params={"models": "good,nope"}, headers=KEY)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["field"] == "models" and error["message"] == f"run {run_id} has no model 'nope'"


def test_runs_stay_in_their_workspace(
    api: TestClient, mock: MockServer, settings: Settings
) -> None:
    run_id = run_to_completion(api, suite(mock.url, n=2))
    with store(settings) as engine:
        other = {"X-API-Key": create_key(engine, "other", "admin", "t")[1]}
    assert api.get("/api/runs", headers=other).json() == []
    for path in (
        f"/api/runs/{run_id}",
        f"/api/runs/{run_id}/export",
        f"/api/runs/{run_id}/compare?models=good,weak",
    ):
        assert api.get(path, headers=other).status_code == 404, path
    assert (
        api.get("/api/runs/compare", headers=other, params={"a": run_id, "b": run_id}).status_code
        == 404
    )
