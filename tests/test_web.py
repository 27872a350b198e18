"""The web UI in a real browser (Debian's Chromium through Playwright), on a real run.

The demo suite runs against the mock server; `panopticon serve`'s app runs under uvicorn;
a person signs in, opens every page, filters, drills down, labels answers and watches
the calibration update. Any console error, page error or request to another host fails
the test. A screenshot of each page goes to test-artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from panopticon.api.app import create_app
from panopticon.cli import app as cli_app
from panopticon.services.access import create_key
from panopticon.services.runs import store
from panopticon.settings import Settings
from tests.conftest import free_port

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
KEY = "dev_api_key_for_testing"

pytestmark = pytest.mark.skipif(
    not shutil.which(CHROMIUM) and not os.environ.get("PANOPTICON_REQUIRE_BROWSER"),
    reason="Chromium is not installed (.ci/run installs it)",
)


@pytest.fixture
def server(settings: Settings, env: dict[str, str]) -> Iterator[str]:
    """The demo's run stored, and the server on a free port."""
    import uvicorn

    result = CliRunner().invoke(cli_app, ["demo", "--no-serve"])
    assert result.exit_code == 0, result.output
    port = free_port()
    web = Settings(home=settings.home, database_url=settings.database_url, api_key=KEY)
    config = uvicorn.Config(
        create_app(web, env={}), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=20)


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


class Watched:
    """A page whose console errors, page errors and foreign requests are collected."""

    def __init__(self, browser: Any, base: str) -> None:
        self.base = base
        self.page = browser.new_page(viewport={"width": 1360, "height": 900}, accept_downloads=True)
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda m: self.problems.append(f"console: {m.text}") if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith(base) or r.url.startswith("data:")
                else self.problems.append(f"request to {r.url}")
            ),
        )

    def open(self, path: str, shot: str | None = None) -> Any:
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == 200, (path, response and response.status)
        self.page.wait_for_load_state("networkidle")
        if shot:
            ARTIFACTS.mkdir(exist_ok=True)
            self.page.screenshot(path=str(ARTIFACTS / f"web-{shot}.png"), full_page=True)
        assert self.problems == [], self.problems
        return self.page

    def refused(self, status: int) -> None:
        """The last action was meant to be refused with ``status``: Chromium logs that."""
        expected = f"the server responded with a status of {status}"
        assert any(expected in p for p in self.problems), self.problems
        self.problems = [p for p in self.problems if expected not in p]

    def sign_in(self, key: str = KEY) -> None:
        page = self.open("/ui/login", "login")
        page.fill("input[name=key]", key)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/ui/$"))


def charts_drawn(page: Any) -> int:
    """Canvases that Chart.js drew into (a drawn canvas has non-blank pixels)."""
    return int(
        page.evaluate(
            """() => Array.from(document.querySelectorAll('canvas[data-chart]')).filter(c => {
                 const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true;
                 return false; }).length"""
        )
    )


def test_every_page_shows_the_runs_results_in_chromium(server: str, browser: Any) -> None:
    w = Watched(browser, server)
    page = w.open("/ui/", None)
    assert "/ui/login" in page.url  # not signed in: the sign-in page
    page.fill("input[name=key]", "not_a_key_at_all_123")
    page.click("button[type=submit]")
    assert "invalid or revoked API key" in page.inner_text(".error")
    w.refused(401)
    w.sign_in()

    page = w.open("/ui/", "summary")
    assert page.inner_text("[data-testid=total-runs]") == "1"
    assert page.inner_text("[data-testid=total-answers]") == "48"  # 16 queries x 3 models
    assert charts_drawn(page) == 2
    for model in ("frontier", "balanced", "tiny"):
        assert model in page.inner_text("main")

    page = w.open("/ui/compare", "compare")
    assert charts_drawn(page) == 5  # one bar chart per metric (4) and the radar
    page.select_option("[data-testid=compare-models] select[name=a]", "frontier")
    page.select_option("[data-testid=compare-models] select[name=b]", "tiny")
    page.click("[data-testid=compare-models] button")
    page.wait_for_load_state("networkidle")
    table = page.inner_text("[data-testid=comparison]")
    assert "helpfulness" in table and re.search(r"A better|B better|tied", table)
    page.screenshot(path=str(ARTIFACTS / "web-compare-paired.png"), full_page=True)

    # theme analysis: a heatmap cell drills down to exactly its results
    page = w.open("/ui/themes", "themes")
    cell = page.locator("[data-testid=heatmap] td.cell a").first
    href = cell.get_attribute("href") or ""
    cell.click()
    page.wait_for_load_state("networkidle")
    assert "/ui/results" in page.url
    model = re.search(r"model=([^&]+)", href).group(1)  # type: ignore[union-attr]
    models = page.locator("table.results tbody tr td:nth-child(3)").all_inner_texts()
    assert models and set(models) == {model}

    # results: filters update the table in place; a row opens the item
    page = w.open("/ui/results", "results")
    page.select_option("select[name=model]", "tiny")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('table.results tbody tr td:nth-child(3)'))"
        ".every(td => td.textContent === 'tiny')"
    )
    assert "model=tiny" in page.url  # the filter is in the address (shareable, back works)
    page.select_option("select[name=passed]", "false")
    page.wait_for_url(re.compile(r".*passed=false"))
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('table.results tbody tr td:nth-child(8)'))"
        ".every(td => td.textContent === 'fail')"
    )
    assert set(page.locator("table.results tbody tr td:nth-child(3)").all_inner_texts()) == {"tiny"}
    page.locator("[data-testid=result-link]").first.click()
    page.wait_for_load_state("networkidle")
    assert "Answer of tiny" in page.inner_text("h1")
    assert page.inner_text("[data-testid=response]").startswith("[mock-tiny]")
    assert "Scores" in page.inner_text("main") and "judge" in page.inner_text("main")
    page.screenshot(path=str(ARTIFACTS / "web-result.png"), full_page=True)
    assert w.problems == [], w.problems

    # runs: list, detail with the report's charts, export
    page = w.open("/ui/runs", "runs")
    assert "completed" in page.inner_text("table")
    page = w.open("/ui/runs/1", "run")
    assert page.inner_text("[data-testid=progress]") == "48 / 48"
    assert page.locator(".report-chart svg").count() >= 6
    with page.expect_download() as download:
        page.click("[data-testid=export-csv]")
    lines = Path(download.value.path()).read_text().splitlines()
    assert len(lines) == 49 and lines[0].startswith("result_id")

    page = w.open("/ui/trends", "trends")
    assert charts_drawn(page) == 1

    page = w.open("/ui/queries", "queries")
    assert "Question" in page.inner_text("table") or page.locator("table tbody tr").count() > 0
    page = w.open("/ui/metrics", "metrics")
    assert "helpfulness" in page.inner_text("table")
    page = w.open("/ui/models", "models")
    assert "frontier" in page.inner_text("[data-testid=models]")
    assert w.problems == [], w.problems


def test_annotation_saves_and_the_calibration_updates(server: str, browser: Any) -> None:
    w = Watched(browser, server)
    w.sign_in()
    page = w.open("/ui/annotate?metric=helpfulness", "annotate")
    assert page.locator("[data-testid=calibration-empty]").count() == 1
    forms = page.locator("[data-testid=label-form]")
    for i in range(4):
        form = forms.nth(i)
        form.locator("input[name=value]").fill(str(8 - i))
        form.locator("select[name=passed]").select_option("true" if i < 2 else "false")
        form.locator("input[name=annotator]").fill("ada")
        form.locator("button").click()
        form.locator(".outcome .saved").wait_for()
    # the calibration table refreshes after each save: it ends at four labels
    page.wait_for_function(
        "() => document.querySelector('[data-testid=labelled-helpfulness]')?.textContent === '4'"
    )
    page.screenshot(path=str(ARTIFACTS / "web-annotate-calibrated.png"), full_page=True)
    # a bad label is refused with the reason, and nothing is stored for it
    form = forms.nth(5)
    form.locator("button").click()
    form.locator(".outcome .error").wait_for()
    assert "a label needs a score or a pass/fail" in form.locator(".outcome").inner_text()
    page.reload()
    assert page.inner_text("[data-testid=labelled-helpfulness]") == "4"
    assert w.problems == [], w.problems


def test_catalog_forms_create_edit_and_show_errors(
    server: str, browser: Any, settings: Settings
) -> None:
    w = Watched(browser, server)
    w.sign_in()
    page = w.open("/ui/queries")
    page.fill("[data-testid=create-form] textarea[name=item]", "How do I rotate an API key?")
    page.fill("[data-testid=create-form] input[name=type]", "security")
    page.fill("[data-testid=create-form] input[name=metadata]", "{not json")
    page.click("[data-testid=create-form] button")
    assert "metadata" in page.inner_text("[data-testid=form-error]")
    w.refused(422)
    # what was typed is kept
    assert page.input_value("[data-testid=create-form] textarea[name=item]").startswith("How do")
    page.fill("[data-testid=create-form] input[name=metadata]", '{"source": "docs"}')
    page.click("[data-testid=create-form] button")
    page.wait_for_url(re.compile(r".*/ui/queries/\d+\?saved=1"))
    assert "Saved." in page.inner_text("main")
    page.fill("[data-testid=edit-form] input[name=type]", "keys")
    page.click("[data-testid=edit-form] button[value=save]")
    page.wait_for_url(re.compile(r".*saved=1"))
    assert page.input_value("[data-testid=edit-form] input[name=type]") == "keys"
    page = w.open("/ui/queries?type=keys", "queries-filtered")
    assert page.locator("table tbody tr").count() == 1
    page = w.open("/ui/queries?q=rotate+key")
    assert "rotate an API key" in page.inner_text("table")
    assert "matching words" in page.inner_text("[data-testid=search-mode]")  # no embeddings

    page = w.open("/ui/models")
    page.click("text=Add or replace a model")
    page.fill("[data-testid=model-form] input[name=id]", "gpt-test")
    page.fill("[data-testid=model-form] input[name=concurrency]", "zero")
    page.click("[data-testid=model-form] button")
    assert "concurrency" in page.inner_text("[data-testid=form-error]")
    w.refused(422)
    page.fill("[data-testid=model-form] input[name=concurrency]", "4")
    page.click("[data-testid=model-form] button")
    page.wait_for_url(re.compile(r".*/ui/models\?saved=1"))
    assert "gpt-test" in page.inner_text("[data-testid=models]")

    # a viewer reads but cannot write: the form says why
    _, viewer = create_key_for(settings, "viewer")
    v = Watched(browser, server)
    v.sign_in(viewer)
    page = v.open("/ui/queries")
    page.fill("[data-testid=create-form] textarea[name=item]", "Should not be stored")
    page.click("[data-testid=create-form] button")
    assert "member role" in page.inner_text("[data-testid=form-error]")
    v.refused(422)
    assert w.problems == [] and v.problems == [], (w.problems, v.problems)


def sign_in(client: Any, key: str) -> Any:
    """Sign a TestClient in as a browser does: the form first (its CSRF token and cookie)."""
    form = client.get("/ui/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None, form
    return client.post("/ui/login", data={"key": key, "csrf": csrf.group(1)})


def create_key_for(settings: Settings, role: str) -> tuple[int, str]:
    with store(settings) as engine:
        return create_key(engine, "default", role, f"a {role}")


def test_an_empty_workspace_says_what_to_do_next(settings: Settings) -> None:
    """Before any run, every page loads and says how to get data, rather than failing."""
    from fastapi.testclient import TestClient

    web = Settings(home=settings.home, database_url=settings.database_url, api_key=KEY)
    with TestClient(create_app(web, env={})) as client:
        assert client.get("/ui/", follow_redirects=False).status_code == 303
        assert sign_in(client, KEY).status_code == 200
        for path, advice in [
            ("/ui/", "panopticon run suite.yaml"),
            ("/ui/compare", "No scores yet"),
            ("/ui/themes", "No scores yet"),
            ("/ui/results", "No scores match"),
            ("/ui/runs", "No runs yet"),
            ("/ui/trends", "Nothing to plot yet"),
            ("/ui/annotate", "Nothing to label yet"),
            ("/ui/queries", "No queries stored yet"),
            ("/ui/metrics", "No metrics stored yet"),
            ("/ui/models", "No models yet"),
        ]:
            page = client.get(path)
            assert page.status_code == 200, (path, page.text[:500])
            assert advice in page.text, path
        # a row that does not exist is a page that says so, not a traceback
        missing = client.get("/ui/runs/42")
        assert missing.status_code == 404 and "no run 42 in this workspace" in missing.text
        # forms refuse a request without the session's CSRF token
        forged = client.post("/ui/queries", data={"item": "x"})
        assert forged.status_code == 403 and "stale" in forged.text


def test_a_running_run_updates_live_and_workspaces_switch(
    server: str, browser: Any, settings: Settings, env: dict[str, str], tmp_path: Path
) -> None:
    """A run in progress (a second run, slowed down) counts up on its page without a
    reload; a second key adds its workspace, and switching shows that workspace's data."""
    import subprocess
    import sys

    from panopticon.mockllm import MockConfig, MockServer
    from tests.conftest import suite_yaml, write

    w = Watched(browser, server)
    w.sign_in()
    with MockServer(MockConfig(latency_ms=150)) as slow:
        suite = write(
            tmp_path / "slow.yaml",
            suite_yaml(slow.url, queries=30, models=("good",), concurrency=2, judge=False,
                       metrics="  - {name: short, type: length, max: 2000}"),
        )  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "panopticon", "run", str(suite), "--no-progress"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while "#2" not in w.open("/ui/runs").inner_text("table"):
                assert time.monotonic() < deadline, "the second run did not start"
                time.sleep(0.2)
            page = w.open("/ui/runs/2", "run-live")
            first = int(page.inner_text("[data-testid=progress]").split(" / ")[0])
            # no reload: the fragment polls every 2 s and the count goes up
            page.wait_for_function(
                f"() => parseInt(document.querySelector('[data-testid=progress]')"
                f".textContent) > {first}",
                timeout=15_000,
            )
            assert page.url.endswith("/ui/runs/2")
            proc.communicate(timeout=60)
            page.wait_for_function(
                "() => document.querySelector('#progress').dataset.state === 'completed'",
                timeout=15_000,
            )
            assert page.inner_text("[data-testid=progress]") == "30 / 30"
        finally:
            if proc.poll() is None:
                proc.kill()
    assert w.problems == [], w.problems

    # another workspace, with its own key: signing in adds it to the switcher
    with store(settings) as engine:
        _, other = create_key(engine, "team-b", "viewer", "team b")
    page = w.open("/ui/login")
    page.fill("input[name=key]", other)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/$"))
    assert "No runs in this period" in page.inner_text("main")  # team-b has none
    assert "team-b" in page.inner_text("h1")
    page.select_option("select[name=key]", label="default (admin)")
    page.wait_for_url(re.compile(r".*/ui/$"))
    page.wait_for_load_state("networkidle")
    assert "default" in page.inner_text("h1")
    assert page.inner_text("[data-testid=total-runs]") == "2"
    page.screenshot(path=str(ARTIFACTS / "web-workspace-switched.png"), full_page=True)
    assert w.problems == [], w.problems
