"""Every endpoint, tried with another workspace's admin key: nothing of workspace A is seen
or changed from workspace B. The routes with an id are enumerated from the app, so a new
one is covered (or this test fails until its id is mapped); the lists and summaries
without one are tried by name below."""

from __future__ import annotations

import re
import time

from fastapi.testclient import TestClient

from panopticon.api.app import create_app
from panopticon.mockllm.server import MockServer
from panopticon.services.access import create_key
from panopticon.services.runs import store
from panopticon.settings import Settings


def test_every_endpoint_keeps_workspaces_apart(
    settings: Settings, job_worker: None, mock: MockServer
) -> None:
    app = create_app(Settings(home=settings.home, database_url=settings.database_url), env={})
    with store(settings) as engine:
        a = {"X-API-Key": create_key(engine, "team-a", "admin", "a")[1]}
        b = {"X-API-Key": create_key(engine, "team-b", "admin", "b")[1]}
    with TestClient(app) as api:
        model = {"id": "m", "model": "mock-m", "base_url": mock.url}
        assert api.post("/api/models", headers=a, json=model).status_code == 201
        query = api.post("/api/queries", headers=a, json={"item": "q?", "type": "t"}).json()
        metric = api.post("/api/metrics", headers=a, json={"item": "1 to 10"}).json()
        provider = api.post(
            "/api/providers",
            headers=a,
            json={"name": "extra", "kind": "openai", "base_url": mock.url},
        ).json()
        job = api.post(
            "/api/judge/evaluate/theme",
            headers=a,
            json={
                "theme": "t",
                "model_id": "m",
                "evaluation_prompt_ids": [metric["id"]],
                "judge_model": "m",
            },
        ).json()
        for _ in range(600):
            job = api.get(f"/api/jobs/{job['id']}", headers=a).json()
            if job["status"] in ("completed", "failed"):
                break
            time.sleep(0.05)
        assert job["status"] == "completed", job
        rule = {"name": "r1", "metrics": [{"name": "pii", "type": "pii"}]}
        assert api.post("/api/online/rules", headers=a, json=rule).status_code == 201
        key_a = api.get("/api/keys", headers=a).json()[0]
        cred = {"name": "cred-a", "secret": "sk-team-a-secret"}
        assert api.post("/api/credentials", headers=a, json=cred).status_code == 201
        logged = api.post(
            "/api/logs",
            headers=a,
            json={"prompt": "q?", "response": "a", "model": "m", "session_id": "sess-a"},
        ).json()
        span = api.get(f"/api/traces/{logged['trace_ids'][0]}", headers=a).json()["spans"][0]
        feedback = {"trace_id": logged["trace_ids"][0], "name": "thumbs", "label": "pass"}
        assert api.post("/api/scores", headers=a, json=feedback).status_code == 201
        ids = {
            "trace_id": logged["trace_ids"][0],
            "span_id": span["span_id"],
            "session_id": "sess-a",
            "name": "cred-a",
            "query_id": query["id"],
            "metric_id": metric["id"],
            "model_id": "m",
            "provider_id": provider["id"],
            "job_id": job["id"],
            "run_id": job["run_id"],
            "key_id": key_a["id"],
            "rule_name": "r1",
        }
        bodies = {"PATCH": {}, "POST": None}
        checked = 0
        for template, operations in app.openapi()["paths"].items():
            if "{" not in template:
                continue
            path = template
            for name in re.findall(r"{(\w+)}", template):
                assert name in ids, f"map the id '{name}' of {template} in this test"
                path = path.replace("{" + name + "}", str(ids[name]))
            params = {
                "/compare": {"models": "m,m"},
                "/compare-prompts": {"prompts": "a,b"},
            }.get("/" + path.rsplit("/", 1)[-1])
            for method in operations:
                r = api.request(
                    method.upper(), path, headers=b, params=params, json=bodies.get(method.upper())
                )
                assert r.status_code == 404, (method, template, r.status_code, r.text)
                checked += 1
        assert checked >= 12
        # lists and searches from B hold nothing of A
        for path in ("/api/queries", "/api/metrics", "/api/judge/results", "/api/traces"):
            assert api.get(path, headers=b).json()["total"] == 0, path
        for path in ("/api/models", "/api/runs"):
            assert api.get(path, headers=b).json() == [], path
        assert [p["name"] for p in api.get("/api/providers", headers=b).json()] == []
        assert api.get("/api/queries/search", headers=b, params={"q": "q"}).json()["items"] == []
        # production scores: B sees none of A's, and A's metric is no metric of B's
        summary = api.get("/api/production/summary", headers=b).json()
        assert (summary["totals"], summary["models"], summary["scores"]) == ([], [], [])
        assert api.get("/api/production/heatmap", headers=b).json()["rows"] == []
        for path in ("/api/production/summary", "/api/production/heatmap"):
            r = api.get(path, headers=b, params={"metric": "thumbs"})
            assert r.status_code == 422 and "no metric 'thumbs'" in r.text, r.text
        assert len(api.get("/api/keys", headers=b).json()) == 1  # only B's own key
        assert (
            api.get(
                "/api/runs/compare", headers=b, params={"a": job["run_id"], "b": job["run_id"]}
            ).status_code
            == 404
        )
        # and A still has everything
        assert api.get(f"/api/queries/{query['id']}", headers=a).status_code == 200
        assert api.get(f"/api/runs/{job['run_id']}", headers=a).status_code == 200
        # (the rule r1 may have scored the trace too, by now: its rows are A's as well)
        mine = api.get("/api/production/summary", headers=a).json()["models"]
        assert ("m", "api", 1) in [(m["model"], m["source"], m["n"]) for m in mine]
        assert "thumbs" in api.get("/api/production/heatmap", headers=a).json()["metrics"]


def test_completion_and_providers(settings: Settings, mock: MockServer) -> None:
    app = create_app(
        Settings(
            home=settings.home,
            database_url=settings.database_url,
            api_key="dev_api_key_for_testing",
        ),
        env={},
    )
    key = {"X-API-Key": "dev_api_key_for_testing"}
    with TestClient(app) as api:
        api.post(
            "/api/models",
            headers=key,
            json={
                "id": "m",
                "model": "mock-m",
                "base_url": mock.url,
                "price": {"input": 1, "output": 1},
            },
        )
        r = api.post("/api/completion", headers=key, json={"model_id": "m", "prompt": "Hi?"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["text"].startswith("[mock-m] Hi?") and body["cost_usd"] > 0
        assert api.post("/api/completion", headers=key, json={"model_id": "m"}).status_code == 422
        p = api.post(
            "/api/providers",
            headers=key,
            json={"name": "vllm", "kind": "openai", "base_url": mock.url},
        )
        assert p.status_code == 201
        assert (
            api.post(
                "/api/providers", headers=key, json={"name": "vllm", "kind": "openai"}
            ).status_code
            == 409
        )
        assert (
            api.post("/api/providers", headers=key, json={"name": "x", "kind": "nope"}).status_code
            == 422
        )
        assert (
            api.post(
                "/api/credentials", headers=key, json={"name": "vllm-key", "secret": "s3cret-value"}
            ).status_code
            == 201
        )
        patched = api.patch(
            f"/api/providers/{p.json()['id']}", headers=key, json={"credential": "vllm-key"}
        ).json()
        assert patched["credential"] == "vllm-key"
        assert api.delete(f"/api/providers/{p.json()['id']}", headers=key).status_code == 204
