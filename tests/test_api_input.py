"""Bad input over the API: a 4xx that names the field, never a 500, never a hang. Each test
is a finding that was seen on SQLite, PostgreSQL or both."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from panopticon.api.app import create_app
from panopticon.settings import Settings

KEY = "dev_api_key_for_testing"
ADMIN = {"X-API-Key": KEY}


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    app = create_app(
        Settings(home=settings.home, database_url=settings.database_url, api_key=KEY), env={}
    )
    with TestClient(app) as client:
        yield client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """The app under uvicorn on a free port: real concurrency, real database."""
    import uvicorn

    port = _free_port()
    app = create_app(
        Settings(home=settings.home, database_url=settings.database_url, api_key=KEY), env={}
    )
    srv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", workers=1)
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=30)


def _field(response: httpx.Response) -> str | None:
    field: str | None = response.json()["error"]["field"]
    return field


def test_a_metric_scale_of_nan_or_infinity_is_refused_and_listing_metrics_keeps_working(
    api: TestClient,
) -> None:
    for bad in ("NaN", "Infinity", "-Infinity"):
        body = '{"item": "Score it from 1 to 10.", "scale": [1, ' + bad + "]}"
        r = api.post(
            "/api/metrics", content=body, headers={**ADMIN, "Content-Type": "application/json"}
        )
        assert r.status_code == 422, r.text
        assert (_field(r) or "").startswith("scale")
        t = api.post(
            "/api/metrics",
            content='{"item": "Score it.", "threshold": ' + bad + "}",
            headers={**ADMIN, "Content-Type": "application/json"},
        )
        assert t.status_code == 422 and _field(t) == "threshold"
    assert api.get("/api/metrics", headers=ADMIN).status_code == 200


def test_a_metric_stored_with_a_nan_scale_before_the_fix_does_not_break_listing(
    api: TestClient,
) -> None:
    import sqlalchemy as sa

    from panopticon.store.tables import Metric

    made = api.post("/api/metrics", json={"item": "Score it from 1 to 10."}, headers=ADMIN)
    with api.app.state.engine.begin() as conn:  # type: ignore[attr-defined]
        definition = {"name": "metric", "type": "rubric", "prompt": "p", "scale": [1, None]}
        conn.execute(
            sa.update(Metric)
            .where(Metric.c.id == made.json()["id"])
            .values(definition={**definition, "threshold": "NaN"})
        )
    listed = api.get("/api/metrics", headers=ADMIN)
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"][0]["scale"] is None


def test_a_nul_byte_in_a_filter_or_a_path_is_a_422_naming_the_parameter(api: TestClient) -> None:
    r = api.get("/api/queries", params={"theme": "a\x00b"}, headers=ADMIN)
    assert r.status_code == 422 and _field(r) == "theme"
    r = api.get("/api/judge/results", params={"model_id": "\x00"}, headers=ADMIN)
    assert r.status_code == 422 and _field(r) == "model_id"
    r = api.get("/api/models/a%00b", headers=ADMIN)
    assert r.status_code == 422, r.text
    r = api.get("/api/queries/1%00", headers=ADMIN)
    assert r.status_code == 422


@pytest.mark.parametrize(
    "path", ["/api/judge/results", "/api/traces", "/api/traces/export", "/api/judge/results/export"]
)
def test_since_and_until_without_a_time_zone_or_as_a_bare_number_are_refused_with_a_hint(
    api: TestClient, path: str
) -> None:
    for name in ("since", "until"):
        for bad in ("2026-01-01T00:00:00", "-76555", "1700000000"):
            r = api.get(path, params={name: bad}, headers=ADMIN)
            assert r.status_code == 422 and _field(r) == name, (bad, r.text)
        r = api.get(path, params={name: "-76555"}, headers=ADMIN)
        assert "ISO 8601" in r.json()["error"]["message"]
        ok = api.get(path, params={name: "2026-01-01T00:00:00Z"}, headers=ADMIN)
        assert ok.status_code == 200, ok.text


def test_a_backfill_range_must_be_iso_times_with_a_zone(api: TestClient) -> None:
    for since in (-76555, "2026-01-01T00:00:00"):
        body = {"rule": "r", "since": since, "until": "2026-01-02T00:00:00Z", "budget_usd": 1}
        r = api.post("/api/online/backfills", json=body, headers=ADMIN)
        assert r.status_code == 422 and _field(r) == "since", r.text


def test_numbers_in_logs_and_traces_are_numbers_not_booleans_or_text(api: TestClient) -> None:
    for field, bad in (("latency_ms", True), ("input_tokens", "5"), ("cost_usd", False)):
        body = {"prompt": "hi", "response": "hello", "model": "m", field: bad}
        r = api.post("/api/logs", json=body, headers=ADMIN)
        assert r.status_code == 422 and _field(r) == field, r.text
    good = {"prompt": "hi", "response": "hello", "model": "m", "latency_ms": 12, "cost_usd": 0.5}
    assert api.post("/api/logs", json=good, headers=ADMIN).status_code in (200, 201, 202)
    score = {"trace_id": "0" * 32, "name": "feedback", "value": True}
    r = api.post("/api/scores", json=score, headers=ADMIN)
    assert r.status_code == 422 and _field(r) == "value", r.text


def test_concurrent_identical_creates_answer_the_one_stored_row(server: str) -> None:
    with httpx.Client(base_url=server, headers=ADMIN, timeout=60) as client:
        client.get("/health")

        bodies = [
            ("/api/queries", {"item": "Same question?", "type": "race"}),
            ("/api/metrics", {"item": "Score the race from 1 to 10.", "name": "race"}),
        ]
        for path, body in bodies:

            def post(_: int, path: str = path, body: dict[str, Any] = body) -> httpx.Response:
                return client.post(path, json=body)

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(post, range(16)))
            assert {a.status_code for a in answers} <= {200, 201}, [a.text for a in answers]
            assert len({a.json()["id"] for a in answers}) == 1


def test_colliding_metric_patches_answer_a_409_or_the_row_never_a_500(server: str) -> None:
    with httpx.Client(base_url=server, headers=ADMIN, timeout=60) as client:
        ids = [
            client.post(
                "/api/metrics", json={"item": f"Prompt {i}: score 1 to 10.", "name": "same"}
            ).json()["id"]
            for i in range(6)
        ]

        def patch(metric_id: int) -> httpx.Response:
            return client.patch(
                f"/api/metrics/{metric_id}", json={"item": "One prompt for all: 1 to 10."}
            )

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(patch, ids))
        assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers]
        assert sum(a.status_code == 200 for a in answers) == 1
        clash = next(a for a in answers if a.status_code == 409)
        assert _field(clash) == "item"
        assert client.get("/api/metrics").status_code == 200


def test_deeply_nested_metadata_and_integers_over_64_bits_are_refused(api: TestClient) -> None:
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(500):
        inner["a"] = {}
        inner = inner["a"]
    r = api.post("/api/queries", json={"item": "q", "metadata": deep}, headers=ADMIN)
    assert r.status_code == 422 and "deep" in r.json()["error"]["message"], r.text
    deeper = '{"item": "q", "metadata": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001
    r = api.post(
        "/api/queries", content=deeper, headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert 400 <= r.status_code < 500, r.text
    for big in (2**63, -(2**63) - 1, 10**30):
        r = api.post("/api/queries", json={"item": "q", "metadata": {"n": big}}, headers=ADMIN)
        assert r.status_code == 422 and "metadata.n" in r.json()["error"]["message"], r.text
    ok = api.post("/api/queries", json={"item": "q", "metadata": {"n": 2**63 - 1}}, headers=ADMIN)
    assert ok.status_code == 201


@pytest.mark.parametrize("template", ["{text:>20000000}", "{text:d}", "{text!r}", "{text.upper}"])
def test_a_suite_template_with_a_format_spec_or_conversion_is_refused_before_a_job(
    api: TestClient, template: str
) -> None:
    suite = {
        "name": "t",
        "models": [{"id": "m", "provider": "openai", "model": "x"}],
        "queries": [{"text": "hello"}],
        "metrics": [{"name": "valid", "type": "json_valid"}],
        "template": template,
    }
    r = api.post("/api/runs", json={"suite": suite}, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert _field(r) == "template"


def test_a_huge_days_on_the_dashboard_is_a_clear_4xx(api: TestClient) -> None:
    form = api.get("/ui/login").text  # the sign-in form's CSRF token (and its cookie)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    r = api.post("/ui/login", data={"key": KEY, "csrf": csrf.group(1)}, follow_redirects=False)
    for path in ("/ui/", "/ui/trends"):
        page = api.get(path, params={"days": "1000000"})
        assert page.status_code == 422, page.text[:300]
        assert "days" in page.text and "3650" in page.text
    assert r.status_code in (200, 303)


def test_model_ids_with_a_slash_are_addressable(api: TestClient) -> None:
    created = api.post(
        "/api/models",
        json={
            "id": "meta-llama/Llama-3-8b",
            "provider": "openai",
            "base_url": "http://127.0.0.1:9/v1",
        },
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    got = api.get("/api/models/meta-llama/Llama-3-8b", headers=ADMIN)
    assert got.status_code == 200 and got.json()["id"] == "meta-llama/Llama-3-8b"
    encoded = api.get("/api/models/meta-llama%2FLlama-3-8b", headers=ADMIN)
    assert encoded.status_code == 200 and encoded.json()["id"] == "meta-llama/Llama-3-8b"
    gone = api.delete("/api/models/meta-llama/Llama-3-8b", headers=ADMIN)
    assert gone.status_code == 204
    assert api.get("/api/models/meta-llama/Llama-3-8b", headers=ADMIN).status_code == 404


def test_like_wildcards_in_text_filters_match_themselves(api: TestClient) -> None:
    for item in ("100% sure", "1000 sure", "a_b", "axb"):
        api.post("/api/queries", json={"item": item}, headers=ADMIN)
        api.post("/api/metrics", json={"item": item, "name": item}, headers=ADMIN)
    for path in ("/api/queries", "/api/metrics"):
        pct = api.get(path, params={"text": "100%"}, headers=ADMIN).json()
        assert [q["item"] for q in pct["items"]] == ["100% sure"]
        under = api.get(path, params={"text": "a_b"}, headers=ADMIN).json()
        assert [q["item"] for q in under["items"]] == ["a_b"]


def test_request_bodies_over_the_cap_are_a_413_naming_the_limit(settings: Settings) -> None:
    app = create_app(
        Settings(
            home=settings.home,
            database_url=settings.database_url,
            api_key=KEY,
            max_request_bytes=10_000,
        ),
        env={},
    )
    with TestClient(app) as api:
        big = {"item": "x" * 20_000}
        r = api.post("/api/queries", json=big, headers=ADMIN)
        assert r.status_code == 413 and "10000" in r.json()["error"]["message"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b'{"item": "'
            for _ in range(30):
                yield b"y" * 1000
            yield b'"}'

        r = api.post(
            "/api/queries",
            content=chunks(),
            headers={**ADMIN, "Content-Type": "application/json"},
        )
        assert r.status_code == 413, r.text
        assert api.post("/api/queries", json={"item": "small"}, headers=ADMIN).status_code == 201


def test_metadata_filters_and_text_search_run_in_the_database(api: TestClient) -> None:
    rows = [
        ({"lang": "fr", "n": 3, "ok": True}, "bonjour"),
        ({"lang": "en", "n": 4, "ok": False}, "hello"),
        ({"lang": "en"}, "hello again"),
        ({"other": None}, "nothing"),
    ]
    for metadata, item in rows:
        api.post("/api/queries", json={"item": item, "metadata": metadata}, headers=ADMIN)

    def items(**params: Any) -> list[str]:
        page = api.get("/api/queries", params=params, headers=ADMIN).json()
        assert page["total"] == len(page["items"])
        return [q["item"] for q in page["items"]]

    assert items(metadata_key="lang") == ["bonjour", "hello", "hello again"]
    assert items(metadata_key="lang", metadata_value="en") == ["hello", "hello again"]
    assert items(metadata_key="n", metadata_value="3") == ["bonjour"]
    assert items(metadata_key="ok", metadata_value="true") == ["bonjour"]
    assert items(metadata_key="ok", metadata_value="false") == ["hello"]
    assert items(metadata_key="other", metadata_value="null") == ["nothing"]
    assert items(metadata_key="lang", metadata_value="en", text="again") == ["hello again"]
    assert items(metadata_key="other") == ["nothing"]
    assert items(metadata_key="missing") == []
    paged = api.get(
        "/api/queries", params={"metadata_key": "lang", "limit": 1, "offset": 1}, headers=ADMIN
    ).json()
    assert paged["total"] == 3 and [q["item"] for q in paged["items"]] == ["hello"]


def test_the_api_docs_load_nothing_from_outside(api: TestClient) -> None:
    page = api.get("/api/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page.text)
    urls += re.findall(r"""url:\s*["']([^"']+)["']""", page.text)
    assert urls, page.text
    for url in urls:
        assert url.startswith("/"), url
        if not url.startswith("/api/openapi"):
            asset = api.get(url)
            assert asset.status_code == 200 and len(asset.content) > 500, url
    assert "cdn" not in page.text.lower()


def test_filtered_listings_read_one_page_not_the_whole_workspace(api: TestClient) -> None:
    """Metadata and text filters run in the database: every statement that reads queries
    or metrics for a listing is paged (LIMIT), none loads every row to filter in Python."""
    import sqlalchemy as sa

    for i in range(30):
        api.post("/api/queries", json={"item": f"q{i}", "metadata": {"i": i}}, headers=ADMIN)
        api.post("/api/metrics", json={"item": f"m{i}", "name": f"m{i}"}, headers=ADMIN)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()).upper())

    engine = api.app.state.engine  # type: ignore[attr-defined]
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        for path, params in [
            ("/api/queries", {"metadata_key": "i", "metadata_value": "7"}),
            ("/api/queries", {"metadata_key": "i", "text": "q1"}),
            ("/api/metrics", {"text": "m1", "type": "metric"}),
        ]:
            statements.clear()
            page = api.get(path, params=params, headers=ADMIN)
            assert page.status_code == 200 and page.json()["total"] >= 1
            reads = [
                s
                for s in statements
                if s.startswith("SELECT")
                and re.search(r'FROM "?(QUERY|METRIC)"?\b', s)
                and "COUNT(" not in s
            ]
            assert reads and all("LIMIT" in s for s in reads), statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


def test_a_malformed_trace_or_span_id_is_named_in_words_not_as_a_regular_expression(
    api: TestClient,
) -> None:
    """Feedback sent with a trace id copied wrong (upper case, a UUID with dashes) was told
    "String should match pattern '^[0-9a-f]{32}$'"."""
    for body, field, words in (
        ({"trace_id": "0F" * 16, "name": "thumbs", "value": 1}, "trace_id", "a trace id"),
        (
            {"trace_id": "0" * 32, "span_id": "abc", "name": "thumbs", "value": 1},
            "span_id",
            "a span id",
        ),
    ):
        r = api.post("/api/scores", json=body, headers=ADMIN)
        assert r.status_code == 422 and _field(r) == field, r.text
        error = r.json()["error"]
        assert words in error["message"] and "hexadecimal" in error["message"], error
        assert "pattern" not in error["message"] and "^[0-9a-f]" not in error["message"]
    bad = {"trace_id": "0F" * 16, "name": "t", "value": 1}
    r = api.post("/api/scores", json=bad, headers=ADMIN)
    assert "x-panopticon-trace-id" in (r.json()["error"]["hint"] or "")
