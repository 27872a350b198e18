"""Answers side by side (`show --answers`, GET /api/runs/{id}/answers, the dashboard's
answers page) and `panopticon view` (the local dashboard, signed in by a one-time link)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from panopticon.api.app import create_app
from panopticon.cli import app
from panopticon.mockllm.server import MockServer
from panopticon.settings import Settings
from tests.conftest import free_port, write
from tests.test_api_runs import KEY, run_to_completion
from tests.test_prompt_variants import prompts_suite
from tests.test_web import CHROMIUM, Watched, browser  # noqa: F401  (a fixture)

cli = CliRunner()

LONG = "word " * 400  # longer than any terminal: must come out whole


@pytest.fixture
def prompts_run(tmp_path: Path, env: dict[str, str], mock: MockServer) -> int:
    text = (
        prompts_suite(mock.url).replace(
            "  - {id: q0, text: 'Question 0?', theme: t}",
            f"  - {{id: q0, text: 'Question 0? {LONG}', theme: t}}",
        )
        + "gates: {short: 0.5}\n"
    )
    result = cli.invoke(app, ["run", str(write(tmp_path / "s.yaml", text)), "--no-progress"])
    assert result.exit_code == 0, result.output
    return 1


def test_show_answers_prints_every_model_and_prompt_in_full(prompts_run: int) -> None:
    result = cli.invoke(app, ["show", "1", "--answers", "--query", "q0"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.count("=" * 78) == 1  # one query chosen by its dataset id
    assert re.search(r"query id q0 \(\S*s\.yaml:\d+\), theme t", out) and LONG.strip() in out
    for arm in ("good@chatty", "good@terse", "weak@chatty", "weak@terse"):
        assert f"--- {arm}" in out
    assert "short 1 pass" in out or "short" in out
    everything = cli.invoke(app, ["show", "1", "--answers"]).output
    assert everything.count("=" * 78) == 3
    missing = cli.invoke(app, ["show", "1", "--answers", "--query", "nope"])
    assert missing.exit_code == 2 and "no query 'nope'" in missing.output


def test_the_api_gives_answers_side_by_side_and_takes_prompt_variants(
    settings: Settings, job_worker: None, mock: MockServer
) -> None:
    web = Settings(home=settings.home, database_url=settings.database_url, api_key=KEY["X-API-Key"])
    body = {
        "name": "api-prompts",
        "models": [{"id": "good", "model": "mock-good", "provider": "mock"}],
        "prompts": [{"id": "a", "system": "Be brief."}, {"id": "b", "template": "Q: {text}"}],
        "queries": [
            {
                "id": "x",
                "text": "First?",
                "metrics": [{"type": "length", "name": "tiny", "max": 3}],
            },
            {"id": "y", "text": "Second?"},
            {"id": "z", "text": "Third?", "metrics": ["tiny"]},
        ],
        "metrics": [{"name": "short", "type": "length", "max": 2000}],
        "gates": {"short": 0.5},
    }
    with TestClient(create_app(web, env={})) as api:
        # a suite sent to the API names a provider an admin registered (README: Security)
        provider = {"name": "mock", "kind": "openai", "base_url": mock.url}
        assert api.post("/api/providers", headers=KEY, json=provider).status_code == 201
        run_id = run_to_completion(api, body)
        r = api.get(f"/api/runs/{run_id}/answers", headers=KEY)
        assert r.status_code == 200, r.text
        data = r.json()
        assert [q["external_id"] for q in data] == ["x", "y", "z"]
        assert [a["model"] for a in data[0]["answers"]] == ["good@a", "good@b"]
        assert [a["prompt"] for a in data[0]["answers"]] == ["a", "b"]
        assert {s["metric"] for s in data[0]["answers"][0]["scores"]} == {"short", "tiny"}
        assert {s["metric"] for s in data[1]["answers"][0]["scores"]} == {"short"}
        gates = api.get(f"/api/runs/{run_id}", headers=KEY).json()["gates"]
        assert [(g["model"], g["metric"], g["passed"]) for g in gates] == [
            ("good@a", "short", True),
            ("good@b", "short", True),
        ]
        c = api.get(f"/api/runs/{run_id}/compare-prompts", headers=KEY, params={"prompts": "a,b"})
        assert c.status_code == 200 and [(x["a"], x["b"]) for x in c.json()] == [
            (f"good@a (run {run_id})", f"good@b (run {run_id})")
        ]
        one = api.get(f"/api/runs/{run_id}/answers", headers=KEY, params={"query": "y"})
        assert [q["external_id"] for q in one.json()] == ["y"]
        paged = api.get(
            f"/api/runs/{run_id}/answers", headers=KEY, params={"limit": 1, "offset": 2}
        )
        assert [q["external_id"] for q in paged.json()] == ["z"]
        bad = api.post(
            "/api/runs",
            headers=KEY,
            json={"suite": {**body, "prompts": [{"id": "a"}, {"id": "a"}]}},
        )
        assert bad.status_code == 422 and "two prompts have the id 'a'" in bad.text


@pytest.fixture
def viewer(env: dict[str, str], prompts_run: int) -> Iterator[tuple[str, str]]:
    """`panopticon view` in its own process: (base url, the one-time link it printed)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "panopticon", "view", "--port", str(port), "--no-browser"],
        env={**env, "COLUMNS": "300"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        link = None
        deadline = time.monotonic() + 60
        while link is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "panopticon view exited"
            found = re.search(r"http://127\.0\.0\.1:\d+/ui/link/\S+", line)
            link = found.group(0) if found else None
        assert link is not None, "no link printed"
        yield f"http://127.0.0.1:{port}", link
    finally:
        proc.terminate()
        proc.communicate(timeout=30)  # drains and closes its output


def test_view_signs_in_once_by_its_link_and_serves_the_local_database(
    viewer: tuple[str, str],
) -> None:
    base, link = viewer
    assert httpx.get(base + "/ui/runs", follow_redirects=False).status_code == 303  # no key
    first = httpx.get(link, follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/ui/"
    cookies = first.cookies
    page = httpx.get(base + "/ui/runs/1/answers", cookies=cookies)
    assert page.status_code == 200 and "good@terse" in page.text
    run = httpx.get(base + "/ui/runs/1", cookies=cookies).text  # the suite's gates
    assert 'data-testid="gates"' in run and run.count(">passed<") == 4
    # each model@prompt is a model of its own on the comparison page
    compare = httpx.get(base + "/ui/compare", params={"run": "1"}, cookies=cookies)
    assert compare.status_code == 200
    assert all(arm in compare.text for arm in ("good@terse", "good@chatty", "weak@chatty"))
    again = httpx.get(link, follow_redirects=False)
    assert again.status_code == 403 and "used already or has expired" in again.text
    forged = httpx.get(base + "/ui/link/not-a-token", follow_redirects=False)
    assert forged.status_code == 403


def test_view_refuses_to_listen_beyond_this_machine(env: dict[str, str]) -> None:
    result = cli.invoke(app, ["view", "--host", "0.0.0.0", "--no-browser"])
    assert result.exit_code == 2 and "listens on this machine only" in result.output


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Chromium is not installed")
def test_the_answers_page_in_chromium_after_the_view_link(
    viewer: tuple[str, str],
    browser: Any,  # noqa: F811
) -> None:
    base, link = viewer
    w = Watched(browser, base)
    w.page.goto(link)
    w.page.wait_for_url(re.compile(r".*/ui/$"))
    page = w.open("/ui/runs/1", "run-with-answers-link")
    page.click("[data-testid=answers-link]")
    page.wait_for_url(re.compile(r".*/ui/runs/1/answers$"))
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=query-answers]").count() == 3
    first = page.locator("[data-testid=query-answers]").first
    models = [a.get_attribute("data-model") for a in first.locator("[data-testid=answer]").all()]
    assert models == ["good@chatty", "good@terse", "weak@chatty", "weak@terse"]
    assert LONG.strip() in first.inner_text()
    # from one answer's page to every model's answer to that query
    first.locator("[data-testid=answer] a").first.click()
    page.wait_for_url(re.compile(r".*/ui/results/.*"))
    page.click("[data-testid=answers-link]")
    page.wait_for_url(re.compile(r".*/ui/runs/1/answers\?query=1$"))
    assert page.locator("[data-testid=query-answers]").count() == 1
    page.screenshot(path=str(Path("test-artifacts") / "web-answers.png"), full_page=True)
    assert w.problems == [], w.problems


def test_view_checks_its_port_first(env: dict[str, str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli.invoke(app, ["view", "--port", str(port), "--no-browser"])
    assert result.exit_code == 2 and f"port {port} on 127.0.0.1 is in use" in result.output


def test_serve_checks_its_port_before_it_starts(env: dict[str, str]) -> None:
    """A second `panopticon serve` on a busy port is refused at once, exit 2, naming the
    port: it printed its address as if serving, ran the app's start-up (which takes up the
    jobs of the store, those of the server already on that port too), then ended with
    uvicorn's bind error and exit 3."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "panopticon", "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert f"port {port} on 127.0.0.1 is in use" in output
    assert "Panopticon on" not in output and "startup" not in output


def test_a_view_link_expires(settings: Settings) -> None:
    from panopticon.web.view import issue_link_token

    app_ = create_app(
        Settings(home=settings.home, database_url=settings.database_url, api_key="k" * 24),
        env={},
    )
    with TestClient(app_) as client:
        stale = issue_link_token(app_, ttl_s=-1.0)  # already past its time
        fresh = issue_link_token(app_)
        assert client.get(f"/ui/link/{stale}", follow_redirects=False).status_code == 403
        assert client.get(f"/ui/link/{fresh}", follow_redirects=False).status_code == 303


def test_serve_has_no_link_sign_in(settings: Settings) -> None:
    app_ = create_app(
        Settings(home=settings.home, database_url=settings.database_url, api_key="k" * 24),
        env={},
    )
    with TestClient(app_) as client:
        assert client.get("/ui/link/anything", follow_redirects=False).status_code == 404
