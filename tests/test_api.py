"""The REST API: the design's request bodies, keys and roles, workspaces kept apart, and
bad input answered with JSON that names the field."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from panopticon.api.app import create_app
from panopticon.services.access import create_key
from panopticon.services.runs import store
from panopticon.settings import Settings

BOOT = "dev_api_key_for_testing"


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    app = create_app(Settings(home=settings.home, database_url=settings.database_url, api_key=BOOT))
    with TestClient(app) as client:
        yield client


def key(settings: Settings, workspace: str, role: str) -> dict[str, str]:
    with store(settings) as engine:
        return {"X-API-Key": create_key(engine, workspace, role, "test")[1]}


ADMIN = {"X-API-Key": BOOT}
QUERY = {
    "item": "Summarize the provided article about renewable energy trends.",
    "type": "summarization",
    "metadata": {"source": "tech_crunch_article_123", "difficulty": "medium"},
}
METRIC = {
    "item": "Evaluate the summary based on conciseness (1-10) and factual accuracy "
    "compared to the original text (1-10). Respond with ONLY a single score "
    "from 1 to 10, averaging the two criteria.",
    "type": "summary_quality",
    "metadata": {"version": "1.1", "author": "eval_team"},
}


def test_root_health_services_and_docs(api: TestClient) -> None:
    assert api.get("/").json()["name"] == "Panopticon"
    health = api.get("/health").json()
    assert health["status"] == "ok" and health["database"] in ("sqlite", "postgresql")
    services = api.get("/api/services").json()
    assert "/api/queries" in services["services"]["queries"]
    assert services["roles"] == ["api", "ingest"]  # what this server serves, not a constant
    # every route group the server has, read off its routes: traces, ingestion, online...
    assert "/v1/traces" in services["services"]["ingest"]
    assert "/api/traces" in services["services"]["traces"]
    assert any(p.startswith("/api/online") for p in services["services"]["online evaluation"])
    assert api.get("/api/docs").status_code == 200
    assert "/api/queries" in api.get("/api/openapi.json").json()["paths"]


def test_the_designs_query_and_metric_workflow(api: TestClient) -> None:
    created = api.post("/api/queries", json=QUERY, headers=ADMIN)
    assert created.status_code == 201
    query = created.json()
    assert query["item"] == QUERY["item"] and query["type"] == "summarization"
    again = api.post("/api/queries", json=QUERY, headers=ADMIN).json()
    assert again["id"] == query["id"]  # the same query is stored once
    api.post("/api/queries", json={"item": "Write a haiku.", "type": "poetry"}, headers=ADMIN)
    page = api.get("/api/queries", params={"theme": "summarization"}, headers=ADMIN).json()
    assert page["total"] == 1 and page["items"][0]["id"] == query["id"]
    by_meta = api.get(
        "/api/queries",
        params={"metadata_key": "difficulty", "metadata_value": "medium"},
        headers=ADMIN,
    )
    assert [q["id"] for q in by_meta.json()["items"]] == [query["id"]]
    paged = api.get("/api/queries", params={"limit": 1, "offset": 1}, headers=ADMIN).json()
    assert paged["total"] == 2 and len(paged["items"]) == 1
    patched = api.patch(f"/api/queries/{query['id']}", json={"type": "summaries"}, headers=ADMIN)
    assert patched.status_code == 200 and patched.json()["type"] == "summaries"
    metric = api.post("/api/metrics", json=METRIC, headers=ADMIN)
    assert metric.status_code == 201
    m = metric.json()
    assert m["type"] == "summary_quality" and m["kind"] == "rubric" and m["scale"] == [1, 10]
    assert (
        api.get(f"/api/metrics/{m['id']}", headers=ADMIN).json()["metadata"]["author"]
        == "eval_team"
    )
    assert (
        api.get("/api/metrics", params={"type": "summary_quality"}, headers=ADMIN).json()["total"]
        == 1
    )
    assert api.delete(f"/api/queries/{query['id']}", headers=ADMIN).status_code == 204
    assert api.get(f"/api/queries/{query['id']}", headers=ADMIN).status_code == 404


def test_keys_and_roles(api: TestClient, settings: Settings) -> None:
    assert api.get("/api/queries").status_code == 401
    assert api.get("/api/queries").json()["error"]["field"] == "X-API-Key"
    assert api.get("/api/queries", headers={"X-API-Key": "nope"}).status_code == 401
    viewer = key(settings, "default", "viewer")
    assert api.get("/api/queries", headers=viewer).status_code == 200
    denied = api.post("/api/queries", json=QUERY, headers=viewer)
    assert denied.status_code == 403 and "member" in denied.json()["error"]["message"]
    member = key(settings, "default", "member")
    assert api.post("/api/queries", json=QUERY, headers=member).status_code == 201
    assert api.get("/api/keys", headers=member).status_code == 403
    made = api.post("/api/keys", json={"name": "ci", "role": "viewer"}, headers=ADMIN)
    assert made.status_code == 201 and made.json()["key"].startswith("pk_")
    new = {"X-API-Key": made.json()["key"]}
    assert api.get("/api/queries", headers=new).status_code == 200
    listed = api.get("/api/keys", headers=ADMIN).json()
    assert all("key" not in k for k in listed) and len(listed) == 3
    assert api.delete(f"/api/keys/{made.json()['id']}", headers=ADMIN).status_code == 204
    assert api.get("/api/queries", headers=new).status_code == 401


def test_a_key_never_sees_or_changes_another_workspace(api: TestClient, settings: Settings) -> None:
    a = key(settings, "team-a", "admin")
    b = key(settings, "team-b", "admin")
    q = api.post("/api/queries", json=QUERY, headers=a).json()
    m = api.post("/api/metrics", json=METRIC, headers=a).json()
    assert api.get("/api/queries", headers=b).json()["total"] == 0
    assert api.get("/api/metrics", headers=b).json()["total"] == 0
    for method, path, body in (
        ("get", f"/api/queries/{q['id']}", None),
        ("patch", f"/api/queries/{q['id']}", {"type": "x"}),
        ("delete", f"/api/queries/{q['id']}", None),
        ("get", f"/api/metrics/{m['id']}", None),
        ("patch", f"/api/metrics/{m['id']}", {"type": "x"}),
        ("delete", f"/api/metrics/{m['id']}", None),
    ):
        r = api.request(method, path, json=body, headers=b)
        assert r.status_code == 404, (method, path)
    a_keys = api.get("/api/keys", headers=a).json()
    assert api.delete(f"/api/keys/{a_keys[0]['id']}", headers=b).status_code == 404
    assert api.get(f"/api/queries/{q['id']}", headers=a).json()["type"] == "summarization"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"type": "x"}, "item"),
        ({"item": "", "type": "x"}, "item"),
        ({"item": "q", "metadata": "not an object"}, "metadata"),
        ({"item": "q", "colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_a_4xx_that_names_the_field(
    api: TestClient, body: dict[str, object], field: str
) -> None:
    r = api.post("/api/queries", json=body, headers=ADMIN)
    assert r.status_code == 422 and r.json()["error"]["field"] == field


def test_a_metric_with_a_bad_scale_and_a_used_query_are_refused(api: TestClient) -> None:
    r = api.post("/api/metrics", json={**METRIC, "scale": [10, 1]}, headers=ADMIN)
    assert r.status_code == 422 and "lowest < highest" in r.json()["error"]["message"]
    r = api.get("/api/queries/not-a-number", headers=ADMIN)
    assert r.status_code == 422
