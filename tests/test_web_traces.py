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
from tests.test_web import KEY, Watched, browser  # noqa: F401  (the browser fixture)
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
    bars = page.locator("[data-testid=waterfall] tbody tr")
    assert bars.count() == 5
    assert page.locator(".bar").count() == 5
    text = page.inner_text("main")
    assert "Paris is the capital." in text  # the retrieved document
    assert "lookup" in text and '"q":"France"' in text.replace(" ", "")  # the tool call
    assert "cost unknown" in text  # the unpriced model says so
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
