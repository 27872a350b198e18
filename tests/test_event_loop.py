"""The server's event loop never waits on sync I/O: a slow embeddings endpoint, a slow
database call or a provider keeps only its own request waiting. (This module, like the other
API and dashboard tests, runs with asyncio debug on: any callback holding the loop longer
than SLOW_CALLBACK_S fails the test; see tests/conftest.py.)"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from panopticon.api.app import create_app
from panopticon.mockllm import MockConfig, MockServer
from panopticon.settings import Settings
from tests.conftest import free_port

KEY = "dev_api_key_for_testing"


def serve(settings: Settings) -> Iterator[str]:
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        create_app(settings, env={}),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        loop="none",  # the policy's loop: in debug mode under the tests
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def slow_embeddings() -> Iterator[MockServer]:
    with MockServer(MockConfig(latency_ms=2000)) as slow:
        yield slow


@pytest.fixture
def server(settings: Settings, slow_embeddings: MockServer) -> Iterator[str]:
    web = Settings(
        home=settings.home,
        database_url=settings.database_url,
        api_key=KEY,
        embedding_url=slow_embeddings.url,
        embedding_model="mock-embed",
    )
    yield from serve(web)


def test_health_answers_while_a_slow_embeddings_call_is_made(
    server: str, slow_embeddings: MockServer
) -> None:
    """Saving a query from the dashboard embeds it (2 s here); meanwhile /health answers
    at once. It used to wait the whole 2 s: the embedding call ran on the event loop."""
    with httpx.Client(base_url=server, timeout=30) as client:
        login = client.get("/ui/login").text  # the form first: its CSRF token and cookie
        token = re.search(r'name="csrf" value="([^"]+)"', login)
        assert token is not None, login
        signed = client.post("/ui/login", data={"key": KEY, "csrf": token.group(1)})
        assert signed.status_code == 303, signed.text
        page = client.get("/ui/queries").text
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found is not None
        saved: list[httpx.Response] = []
        form = {"csrf": found.group(1), "item": "How tall is Everest?", "type": "geo"}
        poster = threading.Thread(
            target=lambda: saved.append(client.post("/ui/queries", data=form))
        )
        poster.start()
        stats = slow_embeddings.stats
        deadline = time.monotonic() + 20
        while stats.by_route["embeddings"] < 1:  # the embedding call has reached the endpoint
            assert time.monotonic() < deadline, "the query was never embedded"
            time.sleep(0.01)
        with httpx.Client(base_url=server, timeout=30) as other:
            started = time.monotonic()
            health = other.get("/health")
            took = time.monotonic() - started
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert stats.answered == 0, "the embeddings call ended before /health answered"
        assert took < 1.0, f"/health took {took:.2f} s behind a 2 s embeddings call"
        poster.join(timeout=30)
    assert saved and saved[0].status_code == 303, saved
    assert stats.answered == 1
