"""Production traces in and out over HTTP: the JSON API, OTLP (protobuf and JSON, gzip), the
explorer's filters and pages, sessions, exports, scores and datasets, and bad input that is
answered with a 4xx or a counted partial success, never a 500."""

from __future__ import annotations

import base64
import gzip
import io
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import orjson
import pytest
from fastapi.testclient import TestClient

from panopticon.api.app import create_app
from panopticon.services.access import create_key
from panopticon.services.runs import store
from panopticon.settings import Settings

BOOT = "dev_api_key_for_testing"
ADMIN = {"X-API-Key": BOOT}


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    app = create_app(
        Settings(
            home=settings.home,
            database_url=settings.database_url,
            api_key=BOOT,
            ingest_max_bytes=2 * 1024 * 1024,
            ingest_max_spans=1000,
        )
    )
    with TestClient(app) as client:
        yield client


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def now() -> datetime:
    return datetime.now(UTC)


def agent_trace(session: str = "s-1", user: str = "alice") -> dict[str, Any]:
    t0 = now() - timedelta(seconds=5)

    def at(ms: float) -> str:
        return (t0 + timedelta(milliseconds=ms)).isoformat()

    return {
        "name": "answer question",
        "session_id": session,
        "user_id": user,
        "tags": ["prod", "rag"],
        "metadata": {"tier": "gold"},
        "environment": "production",
        "release": "1.4.2",
        "spans": [
            {
                "name": "agent",
                "kind": "chain",
                "start_time": at(0),
                "end_time": at(900),
                "input": "What is the capital of France?",
                "output": "Paris.",
                "spans": [
                    {
                        "name": "retrieve",
                        "kind": "retrieval",
                        "start_time": at(10),
                        "end_time": at(60),
                        "input": "capital of France",
                        "documents": [
                            {"id": "d1", "content": "Paris is the capital.", "score": 0.9}
                        ],
                    },
                    {
                        "name": "plan",
                        "kind": "llm",
                        "model": "gpt-4o-mini",
                        "start_time": at(70),
                        "end_time": at(400),
                        "input": [{"role": "user", "content": "What is the capital of France?"}],
                        "output": [
                            {
                                "role": "assistant",
                                "content": None,
                                "tool_calls": [
                                    {"id": "c1", "name": "lookup", "arguments": {"q": "France"}}
                                ],
                            }
                        ],
                        "input_tokens": 1000,
                        "output_tokens": 500,
                    },
                    {
                        "name": "lookup",
                        "kind": "tool",
                        "start_time": at(410),
                        "end_time": at(450),
                        "input": '{"q": "France"}',
                        "output": "Paris",
                    },
                    {
                        "name": "answer",
                        "kind": "llm",
                        "model": "a-model-nobody-prices",
                        "start_time": at(460),
                        "end_time": at(890),
                        "ttft_ms": 120,
                        "input": [{"role": "user", "content": "What is the capital of France?"}],
                        "output": [{"role": "assistant", "content": "Paris."}],
                        "input_tokens": 10,
                        "output_tokens": 2,
                    },
                ],
            }
        ],
    }


def test_a_trace_sent_as_json_is_stored_with_its_tree_messages_tokens_and_cost(
    api: TestClient,
) -> None:
    sent = api.post("/api/traces", json={"traces": [agent_trace()]}, headers=ADMIN)
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert body["accepted"] == 5 and body["rejected"] == 0
    trace_id = body["trace_ids"][0]
    trace = api.get(f"/api/traces/{trace_id}", headers=ADMIN).json()
    assert trace["name"] == "answer question" and trace["session_id"] == "s-1"
    assert trace["user_id"] == "alice" and trace["tags"] == ["prod", "rag"]
    assert trace["metadata"] == {"tier": "gold"} and trace["environment"] == "production"
    assert trace["span_count"] == 5 and trace["input_tokens"] == 1010
    assert trace["input_text"] == "What is the capital of France?"
    assert trace["output_text"] == "Paris."
    kinds = [(s["depth"], s["kind"], s["name"]) for s in trace["spans"]]
    assert kinds == [
        (0, "chain", "answer question"),
        (1, "retrieval", "retrieve"),
        (1, "llm", "plan"),
        (1, "tool", "lookup"),
        (1, "llm", "answer"),
    ]
    plan = trace["spans"][2]
    # gpt-4o-mini: 0.15 in, 0.60 out per million tokens (the shipped price table)
    assert plan["cost_usd"] == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)
    assert plan["cost_source"] == "price_table"
    assert plan["output_messages"][0]["tool_calls"][0]["name"] == "lookup"
    answer = trace["spans"][4]
    assert answer["cost_usd"] is None, "an unknown price is unknown, never 0"
    assert answer["ttft_ms"] == 120
    assert trace["spans"][1]["documents"][0]["content"] == "Paris is the capital."
    assert trace["cost_usd"] == pytest.approx(plan["cost_usd"])


def test_a_trace_tree_first_and_each_span_whole_when_asked_for(api: TestClient) -> None:
    trace_id = api.post("/api/traces", json={"traces": [agent_trace()]}, headers=ADMIN).json()[
        "trace_ids"
    ][0]
    full = api.get(f"/api/traces/{trace_id}", headers=ADMIN).json()
    tree = api.get(f"/api/traces/{trace_id}/tree", headers=ADMIN)
    assert tree.status_code == 200, tree.text
    spans = tree.json()["spans"]
    assert [(s["depth"], s["name"], s["span_id"]) for s in spans] == [
        (s["depth"], s["name"], s["span_id"]) for s in full["spans"]
    ]
    assert spans[2]["cost_usd"] == full["spans"][2]["cost_usd"] and spans[2]["input_tokens"]
    for heavy in ("input_messages", "output_messages", "documents", "attributes", "events"):
        assert heavy not in spans[2]
    api.post(
        "/api/scores",
        json={
            "trace_id": trace_id,
            "span_id": spans[1]["span_id"],
            "name": "relevance",
            "value": 0.8,
            "comment": "on topic",
        },
        headers=ADMIN,
    )
    for i, want in enumerate(full["spans"]):
        one = api.get(f"/api/traces/{trace_id}/spans/{want['span_id']}", headers=ADMIN)
        assert one.status_code == 200, one.text
        body = one.json()
        assert {k: body[k] for k in want if k != "depth"} == {
            k: v for k, v in want.items() if k != "depth"
        }, i
    retrieve = api.get(f"/api/traces/{trace_id}/spans/{spans[1]['span_id']}", headers=ADMIN)
    assert retrieve.json()["documents"][0]["content"] == "Paris is the capital."
    assert [(s["name"], s["value"]) for s in retrieve.json()["scores"]] == [("relevance", 0.8)]
    missing = api.get(f"/api/traces/{trace_id}/spans/{'0' * 15 + '1'}", headers=ADMIN)
    assert missing.status_code == 404
    other = api.get(f"/api/traces/{'a' * 32}/spans/{spans[1]['span_id']}", headers=ADMIN)
    assert other.status_code == 404
    assert api.get(f"/api/traces/{'a' * 32}/tree", headers=ADMIN).status_code == 404


def test_the_count_stops_at_its_cap_and_a_whole_first_page_needs_none(api: TestClient) -> None:
    traces = [agent_trace(user=f"c{i}") for i in range(7)]
    api.post("/api/traces", json={"traces": traces}, headers=ADMIN)

    def page(**params: Any) -> dict[str, Any]:
        r = api.get("/api/traces", params=params, headers=ADMIN)
        assert r.status_code == 200, r.text
        return dict(r.json())

    whole = page(limit=10, count_cap=0)  # every match on the page: exact without counting
    assert (whole["total"], whole["total_exact"], whole["next_cursor"]) == (7, True, None)
    capped = page(limit=2, count_cap=3)
    assert (capped["total"], capped["total_exact"]) == (3, False)
    assert capped["total_estimate"] is None or capped["total_estimate"] >= 1  # PostgreSQL's
    exact = page(limit=2, count_cap=7)
    assert (exact["total"], exact["total_exact"], exact["total_estimate"]) == (7, True, None)
    uncounted = page(limit=2, count_cap=0)
    assert (uncounted["total"], uncounted["total_exact"]) == (2, False)
    later = page(limit=2, count_cap=0, cursor=uncounted["next_cursor"])
    assert (later["total"], later["total_exact"], len(later["items"])) == (0, False, 2)
    assert api.get("/api/traces", params={"count_cap": 10_001}, headers=ADMIN).status_code == 422
    # a text search pages and counts alike (on PostgreSQL from one read of its matches)
    for sort in ("-start_time", "start_time", "-latency_ms", "cost_usd"):
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 3, "text": "capital of france", "sort": sort}
            if cursor:
                params["cursor"] = cursor
            got = page(**params)
            assert (got["total"], got["total_exact"]) == (7, True), sort
            seen += [t["id"] for t in got["items"]]
            cursor = got["next_cursor"]
            if not cursor:
                break
        listed_all = page(limit=10, sort=sort)["items"]
        assert seen == [t["id"] for t in listed_all], sort
    capped_text = page(limit=2, text="capital of france", count_cap=4)
    assert (capped_text["total"], capped_text["total_exact"]) == (4, False)
    assert len(capped_text["items"]) == 2 and capped_text["next_cursor"]
    none = page(text="no such words anywhere")
    assert (none["total"], none["total_exact"], none["items"]) == (0, True, [])


def test_the_explorer_filters_sorts_and_pages_traces(api: TestClient) -> None:
    traces = [agent_trace(session=f"s-{i % 2}", user=f"u{i}") for i in range(5)]
    traces[0]["tags"] = ["special"]
    traces[1]["spans"][0]["status"] = "error"
    traces[1]["spans"][0]["error"] = "boom"
    traces[2]["metadata"] = {"tier": "free"}
    ids = api.post("/api/traces", json={"traces": traces}, headers=ADMIN).json()["trace_ids"]

    def listed(**params: Any) -> list[str]:
        r = api.get("/api/traces", params=params, headers=ADMIN)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["items"]]

    assert set(listed()) == set(ids)
    assert listed(tag="special") == [ids[0]]
    assert listed(status="error") == [ids[1]]
    assert listed(metadata_key="tier", metadata_value="free") == [ids[2]]
    assert listed(user_id="u3") == [ids[3]]
    assert set(listed(session_id="s-0")) == {ids[0], ids[2], ids[4]}
    assert set(listed(model="gpt-4o-mini")) == set(ids)
    assert listed(model="no-such-model") == []
    assert set(listed(span_kind="tool")) == set(ids)
    assert set(listed(text="capital of france")) == set(ids)
    assert listed(text="no such words") == []
    assert listed(min_latency_ms=100000) == []
    assert listed(since=(now() + timedelta(hours=1)).isoformat()) == []
    # keyset pages: every trace exactly once
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "sort": "-latency_ms"}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/traces", params=params, headers=ADMIN).json()
        assert page["total"] == 5 and page["total_exact"] is True
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    bad = api.get("/api/traces", params={"cursor": "nonsense"}, headers=ADMIN)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"


def test_scores_and_feedback_attach_to_traces_and_filter_them(api: TestClient) -> None:
    ids = api.post(
        "/api/traces", json={"traces": [agent_trace(), agent_trace()]}, headers=ADMIN
    ).json()["trace_ids"]
    r = api.post(
        "/api/scores",
        json={"trace_id": ids[0], "name": "helpfulness", "value": 0.2, "comment": "vague"},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    api.post(
        "/api/scores",
        json={"trace_id": ids[1], "name": "user_feedback", "label": "thumbs_up", "source": "human"},
        headers=ADMIN,
    )
    assert (
        api.post("/api/scores", json={"trace_id": ids[1], "name": "x"}, headers=ADMIN).status_code
        == 422
    )
    low = api.get(
        "/api/traces", params={"score_name": "helpfulness", "max_score": 0.5}, headers=ADMIN
    ).json()
    assert [t["id"] for t in low["items"]] == [ids[0]]
    detail = api.get(f"/api/traces/{ids[1]}", headers=ADMIN).json()
    assert detail["scores"][0]["label"] == "thumbs_up" and detail["scores"][0]["source"] == "human"


def test_a_session_is_one_thread_across_its_traces(api: TestClient) -> None:
    for turn in range(3):
        r = api.post(
            "/api/logs",
            json={
                "prompt": f"question {turn}",
                "response": f"answer {turn}",
                "model": "gpt-4o",
                "latency_ms": 250,
                "user_id": "bob",
                "session_id": "chat-42",
                "tags": ["chat"],
                "input_tokens": 12,
                "output_tokens": 7,
            },
            headers=ADMIN,
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1
    session = api.get("/api/sessions/chat-42", headers=ADMIN).json()
    turns = [
        (m["role"], m["content"])
        for t in session["traces"]
        for s in t["llm_spans"]
        for m in s["input_messages"] + s["output_messages"]
    ]
    assert turns == [
        ("user", "question 0"),
        ("assistant", "answer 0"),
        ("user", "question 1"),
        ("assistant", "answer 1"),
        ("user", "question 2"),
        ("assistant", "answer 2"),
    ]
    assert session["traces"][0]["cost_usd"] == pytest.approx((12 * 2.5 + 7 * 10) / 1e6)
    assert api.get("/api/sessions/nope", headers=ADMIN).status_code == 404


def test_a_nul_anywhere_in_a_logged_call_is_stored_as_u_fffd_on_both_databases(
    api: TestClient,
) -> None:
    """PostgreSQL refuses NUL in text and JSON: a call with one in its model, tags, user,
    metadata keys or error was refused there and stored as sent on SQLite."""
    r = api.post(
        "/api/logs",
        json={
            "prompt": "p\x00",
            "response": "r",
            "model": "gpt\x00x",
            "provider": "acme\x00",
            "user_id": "u\x00",
            "session_id": "s\x00",
            "tags": ["t\x00"],
            "metadata": {"k\x00": {"nested\x00": "v\x00"}},
            "status": "error",
            "error": "boom\x00",
        },
        headers=ADMIN,
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    (trace_id,) = r.json()["trace_ids"]
    trace = wait_for(
        lambda: (
            (d := api.get(f"/api/traces/{trace_id}", headers=ADMIN)).status_code == 200 and d.json()
        )
    )
    assert trace["user_id"] == "u\ufffd" and trace["session_id"] == "s\ufffd"
    assert trace["tags"] == ["t\ufffd"]
    assert trace["metadata"] == {"k\ufffd": {"nested\ufffd": "v\ufffd"}}
    (span,) = trace["spans"]
    assert span["model_requested"] == "gpt\ufffdx" and span["provider"] == "acme\ufffd"
    assert span["error"] == "boom\ufffd"
    assert span["input_messages"][0]["content"] == "p\ufffd"


def test_export_and_traces_into_a_dataset(api: TestClient, settings: Settings) -> None:
    ids = api.post(
        "/api/traces", json={"traces": [agent_trace(), agent_trace(user="zed")]}, headers=ADMIN
    ).json()["trace_ids"]
    csv_text = api.get("/api/traces/export", params={"format": "csv"}, headers=ADMIN).text
    assert csv_text.splitlines()[0].startswith("id,name,start_time")
    assert len(csv_text.strip().splitlines()) == 3
    jsonl = api.get(
        "/api/traces/export", params={"format": "jsonl", "user_id": "zed"}, headers=ADMIN
    ).text
    assert jsonl.count("\n") == 1 and ids[1] in jsonl
    added = api.post(
        "/api/traces/dataset", json={"dataset": "prod-sample", "trace_ids": ids}, headers=ADMIN
    ).json()
    assert added == {"dataset": "prod-sample", "added": 2, "size": 2}
    again = api.post(
        "/api/traces/dataset", json={"dataset": "prod-sample", "trace_ids": ids}, headers=ADMIN
    ).json()
    assert again["added"] == 0 and again["size"] == 2
    with store(settings) as engine:
        from panopticon.services.catalog import QueryCatalog

        page = QueryCatalog(engine, settings, {}, 1).list(limit=10)
    item = next(q for q in page.items if getattr(q, "expected", None) == "Paris.")
    assert "capital of France" in str(item)


def test_a_parquet_export_holds_the_same_rows_as_the_jsonl_export_of_a_filter(
    api: TestClient,
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    traces = [agent_trace(user="pat" if i % 2 else "kim") for i in range(5)]
    traces[1]["metadata"] = {"tier": "gold", "seats": 12, "flags": {"beta": True}}
    traces[3]["tags"] = []
    api.post("/api/traces", json={"traces": traces}, headers=ADMIN)
    params = {"user_id": "pat"}
    jsonl = api.get("/api/traces/export", params={**params, "format": "jsonl"}, headers=ADMIN)
    expected = [orjson.loads(line) for line in jsonl.content.splitlines()]
    r = api.get("/api/traces/export", params={**params, "format": "parquet"}, headers=ADMIN)
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.apache.parquet"
    assert r.headers["content-disposition"] == 'attachment; filename="traces.parquet"'
    table = pq.read_table(io.BytesIO(r.content))
    assert table.schema.field("start_time").type.tz == "UTC"
    read: list[dict[str, Any]] = table.to_pylist()
    for row in read:  # what JSON Lines writes as text: times as ISO 8601, metadata as JSON
        row["start_time"] = row["start_time"].isoformat()
        row["end_time"] = row["end_time"].isoformat()
        row["metadata"] = orjson.loads(row["metadata"]) if row["metadata"] else None
    for row in expected:
        for key in ("start_time", "end_time"):
            row[key] = datetime.fromisoformat(row[key]).isoformat()
    assert len(expected) == 2 and read == expected


def test_a_parquet_export_without_pyarrow_says_which_extra_to_install(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.post("/api/traces", json={"traces": [agent_trace()]}, headers=ADMIN)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    r = api.get("/api/traces/export", params={"format": "parquet"}, headers=ADMIN)
    assert r.status_code == 422
    error = r.json()["error"]
    assert (
        "pyarrow" in error["message"]
        and error["hint"] == "pip install -e '.[parquet]' in Panopticon's source folder"
    )
    assert api.get("/api/traces/export", params={"format": "csv"}, headers=ADMIN).status_code == 200


def test_keys_limited_to_ingestion_send_traces_but_read_nothing(
    api: TestClient, settings: Settings
) -> None:
    with store(settings) as engine:
        key = create_key(engine, "default", "member", "app", scope="ingest")[1]
    sent = api.post(
        "/api/traces",
        json={"traces": [agent_trace()]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert sent.status_code == 200
    refused = api.get("/api/traces", headers={"X-API-Key": key})
    assert refused.status_code == 403 and "ingest" in refused.json()["error"]["message"]
    assert api.post("/api/traces", json={"traces": [agent_trace()]}).status_code == 401


def test_an_authorization_header_that_is_not_bearer_is_said_so(
    api: TestClient, settings: Settings
) -> None:
    """A header that is there but malformed was reported as a missing key; the answer says
    what is wrong with it and never repeats the key."""
    with store(settings) as engine:
        key = create_key(engine, "default", "member", "app", scope="ingest")[1]

    def refused(authorization: str) -> str:
        r = api.post("/v1/traces", json={}, headers={"Authorization": authorization})
        assert r.status_code == 401
        assert key not in r.text
        return str(r.json()["error"]["message"])

    encoded = refused(f"Bearer%20{key}")  # OTEL_EXPORTER_OTLP_HEADERS' form, undecoded
    assert encoded.startswith("the Authorization header starts 'Bearer%20'")
    assert "only OTEL_EXPORTER_OTLP_HEADERS decodes" in encoded
    assert refused(key).startswith("the Authorization header has no scheme, not 'Bearer <key>'")
    assert refused(f"Basic {key}").startswith("the Authorization header has a 'Basic' scheme")
    assert api.post("/v1/traces", json={}).json()["error"]["message"].startswith("missing API key")


# --- OTLP ------------------------------------------------------------------------------------


def _otlp(spans: list[dict[str, Any]], resource: dict[str, Any] | None = None) -> Any:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans
    from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

    def value(v: Any) -> AnyValue:
        if isinstance(v, bool):
            return AnyValue(bool_value=v)
        if isinstance(v, int):
            return AnyValue(int_value=v)
        if isinstance(v, float):
            return AnyValue(double_value=v)
        return AnyValue(string_value=str(v))

    pb = []
    for s in spans:
        pb.append(
            PbSpan(
                trace_id=bytes.fromhex(s["trace_id"]) if s.get("trace_id") else b"",
                span_id=bytes.fromhex(s["span_id"]) if s.get("span_id") else b"",
                parent_span_id=bytes.fromhex(s["parent"]) if s.get("parent") else b"",
                name=s.get("name", "span"),
                start_time_unix_nano=s["start"],
                end_time_unix_nano=s["end"],
                attributes=[KeyValue(key=k, value=value(v)) for k, v in s["attrs"].items()],
            )
        )
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource={
                    "attributes": [
                        KeyValue(key=k, value=value(v)) for k, v in (resource or {}).items()
                    ]
                },
                scope_spans=[ScopeSpans(spans=pb)],
            )
        ]
    )


def _span(trace_id: str, **attrs: Any) -> dict[str, Any]:
    start = time.time_ns() - 2_000_000_000
    return {
        "trace_id": trace_id,
        "span_id": secrets.token_hex(8),
        "start": start,
        "end": start + 300_000_000,
        "attrs": attrs,
        "name": "chat gpt-4o",
    }


def _response(r: Any) -> Any:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    out = ExportTraceServiceResponse()
    out.ParseFromString(r.content)
    return out


def test_text_search_finds_words_of_any_span_also_of_spans_sent_later(api: TestClient) -> None:
    trace_id = secrets.token_hex(16)
    root = _span(trace_id, **{"gen_ai.operation.name": "invoke_agent"})
    tool = _span(
        trace_id,
        **{
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.call.arguments": '{"sku": "ZX-81 Spectrum"}',
            "gen_ai.tool.call.result": "Back-ordered until March",
        },
    )
    tool["parent"] = root["span_id"]
    headers = {**ADMIN, "Content-Type": "application/x-protobuf"}
    for batch in ([tool], [root]):  # the root arrives last, in a request of its own
        sent = api.post("/v1/traces", content=_otlp(batch).SerializeToString(), headers=headers)
        assert sent.status_code == 200
    chat = _span(
        trace_id,
        **{
            "gen_ai.operation.name": "chat",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "Is 50% off_line?",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "Ask the warehouse.",
        },
    )
    chat["parent"] = root["span_id"]
    api.post("/v1/traces", content=_otlp([chat]).SerializeToString(), headers=headers)

    def found(text: str) -> list[str]:
        page = api.get("/api/traces", params={"text": text}, headers=ADMIN).json()
        return [t["id"] for t in page["items"]]

    assert found("zx-81") == [trace_id]  # a tool's arguments, any case
    assert found("back-ORDERED until") == [trace_id]  # a tool's result
    assert found("the warehouse") == [trace_id]  # an LLM span's answer, sent later
    assert found("50% off_line") == [trace_id]  # % and _ are themselves, not wildcards
    assert found("50 off line") == [] and found("nothing like it") == []


def test_otlp_protobuf_gzip_with_bad_spans_kept_apart(api: TestClient) -> None:
    trace_id = secrets.token_hex(16)
    good = _span(
        trace_id,
        **{
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": 100,
            "gen_ai.usage.completion_tokens": 20,
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "hi",
            "huge": "x" * 10_000_000 if False else "x" * 200_000,
            "custom.thing": 7,
        },
    )
    no_span_id = {**_span(trace_id), "span_id": ""}
    future = {**_span(trace_id), "start": time.time_ns() + 10 * 86400 * 10**9}
    future["end"] = future["start"] + 1
    ancient = {**_span(trace_id), "start": 10**18, "end": 10**18 + 1}
    body = gzip.compress(_otlp([good, no_span_id, future, ancient]).SerializeToString())
    r = api.post(
        "/v1/traces",
        content=body,
        headers={**ADMIN, "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200, r.content
    partial = _response(r).partial_success
    assert partial.rejected_spans == 3
    assert "malformed span id" in partial.error_message and "future" in partial.error_message
    assert "older than the retention" in partial.error_message
    trace = api.get(f"/api/traces/{trace_id}", headers=ADMIN).json()
    (span,) = trace["spans"]
    assert span["model_requested"] == "gpt-4o" and span["provider"] == "openai"
    assert span["input_tokens"] == 100 and span["output_tokens"] == 20
    assert span["input_messages"] == [{"role": "user", "content": "hi"}]
    assert span["cost_usd"] == pytest.approx((100 * 2.5 + 20 * 10) / 1e6)
    assert span["attributes"]["custom.thing"] == 7, "unknown attributes are kept"
    assert span["attributes"]["huge"].endswith("[truncated 134464 characters]")


def test_otlp_json_with_evaluation_events_becomes_scores(api: TestClient) -> None:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    start = time.time_ns() - 10**9
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "shop"}},
                        {"key": "deployment.environment.name", "value": {"stringValue": "prod"}},
                    ]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "test"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": "chat",
                                "kind": 3,
                                "startTimeUnixNano": str(start),
                                "endTimeUnixNano": str(start + 5 * 10**8),
                                "attributes": [
                                    {
                                        "key": "gen_ai.operation.name",
                                        "value": {"stringValue": "chat"},
                                    },
                                    {
                                        "key": "gen_ai.provider.name",
                                        "value": {"stringValue": "openai"},
                                    },
                                    {
                                        "key": "gen_ai.request.model",
                                        "value": {"stringValue": "gpt-4o"},
                                    },
                                    {
                                        "key": "gen_ai.usage.input_tokens",
                                        "value": {"intValue": "9"},
                                    },
                                    {
                                        "key": "gen_ai.conversation.id",
                                        "value": {"stringValue": "conv-1"},
                                    },
                                    {
                                        "key": "weird",
                                        "value": {
                                            "arrayValue": {
                                                "values": [{"intValue": 1}, {"boolValue": True}]
                                            }
                                        },
                                    },
                                ],
                                "events": [
                                    {
                                        "name": "gen_ai.evaluation.result",
                                        "timeUnixNano": str(start + 6 * 10**8),
                                        "attributes": [
                                            {
                                                "key": "gen_ai.evaluation.name",
                                                "value": {"stringValue": "relevance"},
                                            },
                                            {
                                                "key": "gen_ai.evaluation.score.value",
                                                "value": {"doubleValue": 0.75},
                                            },
                                            {
                                                "key": "gen_ai.evaluation.score.label",
                                                "value": {"stringValue": "relevant"},
                                            },
                                            {
                                                "key": "gen_ai.evaluation.explanation",
                                                "value": {"stringValue": "on topic"},
                                            },
                                        ],
                                    }
                                ],
                                "status": {"code": 2, "message": "upstream 500"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    r = api.post("/v1/traces", json=doc, headers=ADMIN)
    assert r.status_code == 200 and r.json() == {}, r.text
    trace = api.get(f"/api/traces/{trace_id}", headers=ADMIN).json()
    assert trace["session_id"] == "conv-1" and trace["environment"] == "prod"
    assert trace["status"] == "error" and trace["error"] == "upstream 500"
    assert trace["spans"][0]["attributes"]["weird"] == [1, True]
    (score,) = trace["scores"]
    assert (score["name"], score["value"], score["label"], score["reasoning"]) == (
        "relevance",
        0.75,
        "relevant",
        "on topic",
    )


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        (b"\x0a\xff\xff\xff", {"Content-Type": "application/x-protobuf"}, 400, "protobuf"),
        (b"{not json", {"Content-Type": "application/json"}, 400, "JSON"),
        (b"[1, 2]", {"Content-Type": "application/json"}, 400, "object"),
        (b"hello", {"Content-Type": "text/plain"}, 415, "Content-Type"),
        (
            b"\x1f\x8b garbage",
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            400,
            "gzip",
        ),
        (b"{}", {"Content-Type": "application/json", "Content-Encoding": "br"}, 415, "gzip"),
        (
            gzip.compress(b"\0" * (64 * 1024 * 1024)),
            {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
            413,
            "PANOPTICON_INGEST_MAX_BYTES",
        ),
        (
            b"\0" * (3 * 1024 * 1024),
            {"Content-Type": "application/x-protobuf"},
            413,
            "PANOPTICON_INGEST_MAX_BYTES",
        ),
    ],
    ids=[
        "bad-protobuf",
        "bad-json",
        "json-array",
        "content-type",
        "bad-gzip",
        "brotli",
        "gzip-bomb",
        "oversized",
    ],
)
def test_unreadable_otlp_is_a_4xx_that_says_why(
    api: TestClient, body: bytes, headers: dict[str, str], status: int, words: str
) -> None:
    r = api.post("/v1/traces", content=body, headers={**ADMIN, **headers})
    assert r.status_code == status, r.content
    if headers["Content-Type"] == "application/json":
        assert words in r.json()["message"]
    else:
        from google.rpc.status_pb2 import Status

        if r.headers["content-type"] == "application/x-protobuf":
            s = Status()
            s.ParseFromString(r.content)
            assert words in s.message


def test_too_many_spans_in_one_request_is_413_naming_the_limit(api: TestClient) -> None:
    trace_id = secrets.token_hex(16)
    body = _otlp([_span(trace_id) for _ in range(1001)]).SerializeToString()
    r = api.post(
        "/v1/traces", content=body, headers={**ADMIN, "Content-Type": "application/x-protobuf"}
    )
    assert r.status_code == 413
    from google.rpc.status_pb2 import Status

    s = Status()
    s.ParseFromString(r.content)
    assert "PANOPTICON_INGEST_MAX_SPANS" in s.message and "1000" in s.message


def test_json_otlp_with_odd_values_keeps_the_good_spans(api: TestClient) -> None:
    trace_id = secrets.token_hex(16)
    start = time.time_ns()
    spans = [
        {
            "traceId": trace_id,
            "spanId": secrets.token_hex(8),
            "name": "ok",
            "startTimeUnixNano": start,
            "endTimeUnixNano": start + 10,
        },
        {"traceId": "zz", "spanId": secrets.token_hex(8), "startTimeUnixNano": start},
        {"traceId": trace_id, "spanId": secrets.token_hex(8), "startTimeUnixNano": "soon"},
        {
            "traceId": trace_id,
            "spanId": secrets.token_hex(8),
            "startTimeUnixNano": start,
            "endTimeUnixNano": start - 5,
        },
        {
            "traceId": trace_id,
            "spanId": secrets.token_hex(8),
            "startTimeUnixNano": start,
            "attributes": "not a list",
        },
        "not an object",
    ]
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    r = api.post("/v1/traces", json=doc, headers=ADMIN)
    assert r.status_code == 200, r.text
    partial = r.json()["partialSuccess"]
    assert partial["rejectedSpans"] == 5
    assert "end time before start time" in partial["errorMessage"]
    assert api.get(f"/api/traces/{trace_id}", headers=ADMIN).json()["span_count"] == 1


def test_protobuf_attributes_of_every_type_are_kept_as_json(api: TestClient) -> None:
    from opentelemetry.proto.common.v1.common_pb2 import (
        AnyValue,
        ArrayValue,
        KeyValue,
        KeyValueList,
    )

    trace_id = secrets.token_hex(16)
    request = _otlp([_span(trace_id)])
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.extend(
        [
            KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\xff")),
            KeyValue(
                key="nested",
                value=AnyValue(
                    kvlist_value=KeyValueList(
                        values=[KeyValue(key="a", value=AnyValue(double_value=float("nan")))]
                    )
                ),
            ),
            KeyValue(
                key="mixed",
                value=AnyValue(
                    array_value=ArrayValue(
                        values=[AnyValue(int_value=2**62), AnyValue(string_value="x"), AnyValue()]
                    )
                ),
            ),
            KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(string_value="not a number")),
        ]
    )
    r = api.post(
        "/v1/traces",
        content=request.SerializeToString(),
        headers={**ADMIN, "Content-Type": "application/x-protobuf"},
    )
    assert r.status_code == 200 and not _response(r).HasField("partial_success")
    stored = api.get(f"/api/traces/{trace_id}", headers=ADMIN).json()["spans"][0]
    assert stored["attributes"]["raw"] == "AP8="  # bytes as base64
    assert stored["attributes"]["nested"] == {"a": "nan"}  # JSON has no NaN
    assert stored["attributes"]["mixed"] == [2**62, "x", None]
    assert stored["input_tokens"] is None  # a count that is not a number is unknown,
    assert stored["attributes"]["gen_ai.usage.input_tokens"] == "not a number"  # and kept


def test_json_values_no_store_can_hold_are_refused_or_kept_as_text(api: TestClient) -> None:
    trace = agent_trace()
    trace["spans"][0]["attributes"] = {"huge": 10**30, "fine": 1}
    r = api.post("/api/traces", json={"traces": [trace]}, headers=ADMIN)
    assert r.status_code == 200, r.text
    stored = api.get(f"/api/traces/{r.json()['trace_ids'][0]}", headers=ADMIN).json()
    assert stored["spans"][0]["attributes"] == {"huge": str(10**30), "fine": 1}
    trace = agent_trace()
    trace["spans"][0]["spans"][1]["input_tokens"] = 2**40
    r = api.post("/api/traces", json={"traces": [trace]}, headers=ADMIN)
    assert r.status_code == 422 and "input_tokens" in r.json()["error"]["field"]


def _nul_otlp_json(trace_id: str, span_id: str) -> dict[str, Any]:
    """An OTLP JSON request with a NUL in every text a client writes that is not an
    attribute's value: the span's name, its status message, attribute, resource and event
    keys, the scope's name and an event's name."""
    start = time.time_ns() - 10**9
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "r\x00", "value": {"stringValue": "v"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "scope\x00"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": "n\x00",
                                "startTimeUnixNano": str(start),
                                "endTimeUnixNano": str(start + 1000),
                                "status": {"code": 2, "message": "bad\x00"},
                                "attributes": [
                                    {"key": "k\x00", "value": {"stringValue": "v\x00"}},
                                    {
                                        "key": "map",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [
                                                    {"key": "in\x00", "value": {"intValue": 1}}
                                                ]
                                            }
                                        },
                                    },
                                ],
                                "events": [
                                    {
                                        "name": "e\x00",
                                        "timeUnixNano": str(start),
                                        "attributes": [
                                            {"key": "x\x00", "value": {"stringValue": "y"}}
                                        ],
                                    }
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    }


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_a_nul_anywhere_in_an_otlp_span_is_stored_as_u_fffd_on_both_databases(
    api: TestClient, encoding: str
) -> None:
    """PostgreSQL refuses NUL in text and JSON (keys too): an OTLP span with one in its
    name, status message, an attribute's key, the resource or the scope was refused there
    (the whole batch failed) and stored as sent on SQLite."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    doc = _nul_otlp_json(trace_id, span_id)
    if encoding == "json":
        body, kind = orjson.dumps(doc), "application/json"
    else:
        from google.protobuf.json_format import ParseDict
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        for s in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:  # protobuf JSON: base64
            s["traceId"] = base64.b64encode(bytes.fromhex(s["traceId"])).decode()
            s["spanId"] = base64.b64encode(bytes.fromhex(s["spanId"])).decode()
        pb = ParseDict(doc, ExportTraceServiceRequest())
        body, kind = pb.SerializeToString(), "application/x-protobuf"
    r = api.post("/v1/traces", content=body, headers={**ADMIN, "Content-Type": kind})
    assert r.status_code == 200, r.text
    trace = wait_for(
        lambda: (
            (d := api.get(f"/api/traces/{trace_id}", headers=ADMIN)).status_code == 200 and d.json()
        )
    )
    (span,) = trace["spans"]
    assert span["name"] == "n\ufffd" and span["error"] == "bad\ufffd"
    attributes = span["attributes"]
    assert attributes["k\ufffd"] == "v\ufffd" and attributes["map"] == {"in\ufffd": 1}
    assert attributes["resource"] == {"r\ufffd": "v"}
    assert attributes["otel.scope.name"] == "scope\ufffd"
    assert span["events"] == [
        {"name": "e\ufffd", "time_unix_nano": mock.ANY, "attributes": {"x\ufffd": "y"}}
    ]
    assert b"\\u0000" not in orjson.dumps(trace)
