"""The trace explorer in Chromium: a person filters the trace list, reads a trace's
waterfall and each span's conversation, labels a span, and reads a session as one thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from panopticon.api.app import create_app
from panopticon.settings import Settings
from tests.conftest import free_port
from tests.test_ingest_api import agent_trace
from tests.test_web import ARTIFACTS, KEY, Watched, browser  # noqa: F401  (the browser fixture)
from tests.test_web import pytestmark as web_mark

pytestmark = web_mark


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    import uvicorn

    port = free_port()
    app = create_app(Settings(home=settings.home, database_url=settings.database_url, api_key=KEY))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=20)


def test_a_person_explores_traces_labels_a_span_and_reads_a_session(
    server: str,
    browser: Any,  # noqa: F811
) -> None:
    headers = {"X-API-Key": KEY}
    sent = httpx.post(
        f"{server}/api/traces",
        json={"traces": [agent_trace(user="dana"), agent_trace(user="erin")]},
        headers=headers,
    ).json()
    trace_id = sent["trace_ids"][0]
    for turn in ("Hi there", "What's the refund policy?"):
        httpx.post(
            f"{server}/api/logs",
            json={
                "prompt": turn,
                "response": f"Reply to: {turn}",
                "model": "gpt-4o",
                "session_id": "chat-9",
                "user_id": "frank",
                "latency_ms": 80,
            },
            headers=headers,
        )
    w = Watched(browser, server)
    w.sign_in()
    page = w.open("/ui/traces", "traces")
    assert page.locator("[data-testid=traces] tbody tr").count() == 4
    page.fill("input[name=user_id]", "dana")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=traces] tbody tr").count() == 1

    page = w.open(f"/ui/traces/{trace_id}", "trace")
    # the tree comes first: names, timings, models, tokens and cost, no span's details
    bars = page.locator("[data-testid=waterfall] tr.span-row")
    assert bars.count() == 5
    assert page.locator(".bar").count() == 5
    assert page.locator("[data-testid=span-detail]").count() == 0
    text = page.inner_text("main")
    assert "unknown" in page.inner_text("[data-testid=waterfall]")  # the unpriced model
    assert "Paris is the capital." not in text
    # a span opens under its row, read when asked for
    page.click("[data-testid=waterfall] a:text-is('retrieve')")
    detail = page.locator("[data-testid=span-detail]")
    detail.wait_for()
    assert "Paris is the capital." in detail.inner_text()  # the retrieved document
    page.click("[data-testid=waterfall] a:text-is('plan')")
    page.locator("[data-testid=span-detail]").nth(1).wait_for()
    plan = page.locator("[data-testid=span-detail]", has=page.locator("h3:has-text('plan')"))
    assert "lookup" in plan.inner_text()
    assert '"q":"France"' in plan.inner_text().replace(" ", "")  # the tool call
    page.click("[data-testid=waterfall] a:text-is('answer')")
    page.locator("[data-testid=span-detail]").nth(2).wait_for()
    answer = page.locator("[data-testid=span-detail]", has=page.locator("h3:has-text('answer')"))
    assert "cost unknown" in answer.inner_text()  # the unpriced model says so
    page.screenshot(path=str(ARTIFACTS / "web-trace-open.png"), full_page=True)
    # hidden again, and the other stays open
    page.locator("[data-testid=span-detail] [data-close-span]").first.click()
    assert page.locator("[data-testid=span-detail]").count() == 2
    # without a script, the same link is the span's own page
    span_href = page.get_attribute("[data-testid=waterfall] a:text-is('retrieve')", "href")
    assert span_href is not None
    own = w.open(span_href)
    assert "Paris is the capital." in own.inner_text("main")
    page = w.open(f"/ui/traces/{trace_id}")
    page.select_option("select[name=span_id]", label="· answer (llm)")
    page.fill("input[name=metric]", "correctness")
    page.fill("input[name=value]", "0.9")
    page.select_option("select[name=passed]", "pass")
    page.fill("input[name=comment]", "right answer")
    page.click("[data-testid=label-form] button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("[role=status]") == "Label saved."
    scores = page.inner_text("[data-testid=scores]")
    assert "correctness" in scores and "right answer" in scores and "0.90" in scores
    assert w.problems == []

    page = w.open("/ui/sessions/chat-9", "session")
    thread = page.inner_text("[data-testid=thread]")
    assert thread.index("Hi there") < thread.index("Reply to: Hi there")
    assert thread.index("Reply to: Hi there") < thread.index("What's the refund policy?")
    assert w.problems == []
