"""Every call through the gateway is a trace in the trace store, written off the response
path: it shows in the trace explorer (API and pages) with tokens, cost and latency; while
the database is away calls are still answered and their traces arrive once it is back; a
clean shutdown loses nothing."""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import time_ns
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from panopticon.gateway.log_process import ProcessSink
from panopticon.gateway.logging import BatchingSink, CallRecord
from panopticon.mockllm.server import MockServer
from panopticon.services.ingest import IngestService
from panopticon.services.registry import ModelRegistry
from panopticon.settings import Settings
from panopticon.store.tables import Score
from panopticon.store.tables import Span as SpanTable
from panopticon.store.trace_writer import TraceWriter
from tests.gateway_harness import GatewayServer, wait_for
from tests.test_gateway import ensure_workspace_id, new_key, register
from tests.test_trace_writer import database_down, writer_engine

openai = pytest.importorskip("openai")

BOOT = "dev_api_key_for_testing"
ADMIN = {"X-API-Key": BOOT}
# a model without a price: nothing to add to the spend counters, so a gateway stopped with
# SQLite locked does not wait out the lock to save its spend
BODY = {"model": "free-mock", "messages": [{"role": "user", "content": "Log me"}]}


@pytest.fixture
def gw_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_key": BOOT})


@pytest.fixture
def registered(gw_settings: Settings, engine: sa.Engine, mock: MockServer) -> str:
    """The models registered in the default workspace; a gateway key for them."""
    ws = ensure_workspace_id(engine, "default")
    register(engine, gw_settings, mock, ws)
    ModelRegistry(engine, ws, gw_settings).upsert(
        {"id": "free-mock", "provider": "openai", "model": "mock-good", "base_url": mock.url}
    )
    return new_key(engine)


def stored_spans(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(SpanTable)) or 0)


def post(server: GatewayServer, key: str, body: dict[str, Any] = BODY) -> httpx.Response:
    return httpx.post(
        server.url + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_an_openai_sdk_call_and_a_stream_show_in_the_trace_explorer_with_tokens_cost_latency(
    gw_settings: Settings, registered: str, mock: MockServer
) -> None:
    mock.config.stream_chunks = 6
    server = GatewayServer(gw_settings, {}, {"api", "ingest", "gateway"}).start()
    stack = contextlib.ExitStack()  # the HTTP clients, closed before the server stops
    try:
        # the default: the gateway's calls are written by a writer process of its own
        assert isinstance(server.gateway.sink, ProcessSink)
        client = openai.OpenAI(base_url=server.url, api_key=registered, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-mock",
            messages=[{"role": "user", "content": "What is logged?"}],
            user="user-9",
            extra_headers={"X-Panopticon-Session": "sess-9", "X-Panopticon-Tags": "prod"},
        )
        answer = raw.parse()
        plain_id = raw.headers["x-panopticon-trace-id"]
        with client.chat.completions.with_streaming_response.create(
            model="gpt-mock", messages=[{"role": "user", "content": "Stream it"}], stream=True
        ) as resp:
            stream_id = resp.headers["x-panopticon-trace-id"]
            chunks = list(resp.parse())
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        client.close()

        api = stack.enter_context(httpx.Client(base_url=server.root, headers=ADMIN, timeout=30))
        listed: dict[str, dict[str, Any]] = {}

        def both_listed() -> bool:
            listed.update({t["id"]: t for t in api.get("/api/traces").json()["items"]})
            return {plain_id, stream_id} <= set(listed)

        wait_for(both_listed, what="both calls in GET /api/traces")
        # `serve` (API and gateway on one port): GET /health shows the call log's counts
        wait_for(
            lambda: api.get("/health").json()["gateway_log"]["written"] == 2,
            what="GET /health to count both calls written",
        )
        assert api.get("/health").json()["gateway_log"]["writer"] == "process"
        plain = listed[plain_id]
        usage = answer.usage
        assert plain["input_tokens"] == usage.prompt_tokens
        assert plain["output_tokens"] == usage.completion_tokens
        expected = (usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0) / 1e6
        assert plain["cost_usd"] == pytest.approx(expected)
        assert plain["latency_ms"] > 0 and plain["status"] == "ok"
        assert plain["user_id"] == "user-9" and plain["session_id"] == "sess-9"
        assert plain["models"] == ["gpt-mock", "mock-good"]

        detail = api.get(f"/api/traces/{plain_id}").json()
        (span,) = detail["spans"]
        assert span["kind"] == "llm" and span["provider"] == "openai"
        assert span["model_requested"] == "gpt-mock" and span["model_served"] == "mock-good"
        assert span["input_messages"] == [{"role": "user", "content": "What is logged?"}]
        assert span["output_messages"][0]["content"] == answer.choices[0].message.content
        assert span["attributes"]["gateway.key_name"] == "app"
        assert detail["metadata"]["gateway_key"] == "app" and detail["tags"] == ["prod"]

        stream = api.get(f"/api/traces/{stream_id}").json()["spans"][0]
        assert stream["output_messages"][0]["content"] == streamed  # assembled
        assert stream["output_tokens"] and stream["cost_usd"] is not None
        assert stream["ttft_ms"] is not None and stream["ttft_ms"] <= stream["latency_ms"]
        assert stream["attributes"]["gateway.stream"] is True

        # the trace id the app got back is the stored trace's: feedback attaches to it
        r = api.post("/api/scores", json={"trace_id": plain_id, "name": "thumbs", "value": 1})
        assert r.status_code in (200, 201), r.text
        scores = api.get(f"/api/traces/{plain_id}").json()["scores"]
        assert [(s["name"], s["value"]) for s in scores] == [("thumbs", 1.0)]

        # and the dashboard's trace page shows it
        ui = stack.enter_context(
            httpx.Client(base_url=server.root, timeout=30, follow_redirects=True)
        )
        form = re.search(r'name="csrf" value="([^"]+)"', ui.get("/ui/login").text)
        assert form is not None
        assert ui.post("/ui/login", data={"key": BOOT, "csrf": form.group(1)}).status_code == 200
        page = ui.get(f"/ui/traces/{plain_id}")
        assert page.status_code == 200
        assert f"tokens {usage.prompt_tokens} + {usage.completion_tokens}" in page.text
        assert f"cost ${expected:.6f}" in page.text and "gateway chat.completions" in page.text
        listing = ui.get("/ui/traces").text
        assert plain_id in listing and stream_id in listing
    finally:
        stack.close()
        server.stop()
        server.close()


def _thread(settings: Settings) -> Settings:
    """The gateway logging through a trace writer in its own process (a thread), whose
    spool and stats a test can watch."""
    return settings.model_copy(update={"gateway_log_writer": "thread"})


def test_in_thread_mode_one_trace_writer_serves_the_gateway_and_ingestion(
    gw_settings: Settings, registered: str
) -> None:
    server = GatewayServer(_thread(gw_settings), {}, {"api", "ingest", "gateway"}).start()
    try:
        assert isinstance(server.gateway.sink, BatchingSink)
        assert server.gateway.sink.store is server.app.api.state.ingest
        assert post(server, registered).status_code == 200
        server.wait_traces(1)
    finally:
        server.stop()
        server.close()


def _own_writer(settings: Settings, engine: sa.Engine, wengine: sa.Engine) -> IngestService:
    """The gateway's trace writer on ``wengine`` (on SQLite: one that gives up on a lock
    after 50 ms instead of the server's 30 s), retrying the database every 0.1 s."""
    spool = settings.home / "spool" / "traces"
    return IngestService(engine, settings, TraceWriter(wengine, spool, retry_s=0.1))


@pytest.fixture
def wengine(settings: Settings) -> Iterator[sa.Engine]:
    eng = writer_engine(settings)
    yield eng
    eng.dispose()


def test_with_the_database_away_calls_are_answered_and_their_traces_arrive_when_it_returns(
    gw_settings: Settings, engine: sa.Engine, wengine: sa.Engine, registered: str
) -> None:
    ingest = _own_writer(gw_settings, engine, wengine)
    server = GatewayServer(_thread(gw_settings), {}, {"gateway"}, ingest=ingest).start()
    try:
        assert post(server, registered).status_code == 200  # the key and model now known
        wait_for(lambda: stored_spans(engine) == 1, what="the first call stored")
        with database_down(engine, gw_settings):
            statuses = [post(server, registered).status_code for _ in range(20)]
            assert statuses == [200] * 20
            # acknowledged by the writer only once in its spool, fsynced
            wait_for(lambda: ingest.writer.stats().spooled == 20, what="20 calls spooled")
            assert list((gw_settings.home / "spool" / "traces").glob("spans-*.jsonl"))
        wait_for(lambda: stored_spans(engine) == 21, what="the spool replayed")
        wait_for(lambda: not ingest.writer.stats().degraded, what="the writer back on the DB")
        assert len(server.traces()) == 21
        assert post(server, registered).status_code == 200
        wait_for(lambda: stored_spans(engine) == 22, what="a call after the outage")
    finally:
        server.stop()
        server.close()
    assert not list((gw_settings.home / "spool" / "traces").glob("*"))


def test_a_clean_shutdown_writes_every_call_and_with_the_database_away_the_next_start_does(
    gw_settings: Settings, engine: sa.Engine, wengine: sa.Engine, registered: str
) -> None:
    server = GatewayServer(gw_settings, {}, {"gateway"}).start()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: post(server, registered).status_code, range(40)))
    assert statuses == [200] * 40
    server.stop()  # at once: calls still queued are written before the process lets go
    assert stored_spans(engine) == 40
    server.close()

    ingest = _own_writer(gw_settings, engine, wengine)
    server = GatewayServer(_thread(gw_settings), {}, {"gateway"}, ingest=ingest).start()
    assert post(server, registered).status_code == 200  # key and model known
    wait_for(lambda: stored_spans(engine) == 41, what="the call stored")
    with database_down(engine, gw_settings):
        assert [post(server, registered).status_code for _ in range(10)] == [200] * 10
        server.stop()  # the database still away: the writer spools them
        assert ingest.writer.stats().spooled == 10
    server.close()
    assert stored_spans(engine) == 41
    # the next process on this home replays what the last one spooled
    again = GatewayServer(gw_settings, {}, {"gateway"}).start()
    try:
        wait_for(lambda: stored_spans(engine) == 51, what="the spool of the last process")
    finally:
        again.stop()
        again.close()
    assert not list((gw_settings.home / "spool" / "traces").glob("*"))


def record(i: int, workspace_id: int) -> CallRecord:
    start = datetime.now(UTC) - timedelta(seconds=5) + timedelta(milliseconds=i)
    return CallRecord(
        trace_id=f"{i + 1:032x}",
        span_id=f"{i + 1:016x}",
        workspace_id=workspace_id,
        key_id=1,
        key_name="app",
        endpoint="chat.completions",
        start_time=start,
        end_time=start + timedelta(milliseconds=5),
        model_requested="gpt-4o-mini",
        provider="openai",
        input_messages=[{"role": "user", "content": f"q{i}"}],
        output_text=f"a{i}",
        input_tokens=3,
        output_tokens=4,
        guardrails=[
            {"name": "guardrail.pii", "value": 1.0, "passed": True, "label": "pass",
             "stage": "input", "latency_ms": 0.1}
        ],
    )  # fmt: skip


def test_a_full_writer_holds_records_in_the_sink_instead_of_dropping_them(
    settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    ws = ensure_workspace_id(engine, "default")
    writer = TraceWriter(engine, tmp_path / "spool", max_pending=10)  # not started: full at 10
    store = IngestService(engine, settings, writer)
    sink = BatchingSink(store, interval_s=0.01, max_batch=5).start()
    for i in range(30):
        sink.submit(record(i, ws))
    wait_for(lambda: writer.stats().pending == 10, what="the writer full")
    wait_for(lambda: sink.pending == 30, what="the rest held in the sink")
    assert sink.dropped == 0 and sink.failed == 0 and sink.written == 0
    writer.start()
    wait_for(lambda: sink.written == 30, what="every record written once the writer drains")
    sink.close()
    writer.close()
    assert stored_spans(engine) == 30
    with engine.connect() as conn:
        # the guardrail verdicts: a score on each span; a price-table cost when none was sent
        assert conn.scalar(sa.select(sa.func.count()).select_from(Score)) == 30
        span = conn.execute(sa.select(SpanTable).limit(1)).one()
    assert span.cost_source == "price_table" and span.cost_usd is not None


def test_an_unknown_price_is_none_never_zero_and_a_cache_hit_costs_nothing(
    settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    ws = ensure_workspace_id(engine, "default")
    unknown, hit = record(1, ws), record(2, ws)
    unknown.model_requested = "a-model-no-price-table-knows"
    hit.cache_hit, hit.cost_usd, hit.input_tokens, hit.output_tokens = True, 0.0, None, None
    writer = TraceWriter(engine, tmp_path / "spool").start()
    ingest = IngestService(engine, settings, writer)
    future, rejected = ingest.record_spans([(ws, r.span(), r.scores()) for r in (unknown, hit)])
    future.result(timeout=30)
    assert rejected == []
    writer.close()
    with engine.connect() as conn:
        costs = dict(conn.execute(sa.select(SpanTable.c.trace_id, SpanTable.c.cost_usd)).all())
    assert costs == {unknown.trace_id: None, hit.trace_id: 0.0}


def test_a_call_the_database_cannot_store_does_not_take_the_others_of_its_batch_along(
    settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    ws = ensure_workspace_id(engine, "default")
    writer = TraceWriter(engine, tmp_path / "spool", window_s=0.5).start()
    sink = BatchingSink(IngestService(engine, settings, writer), interval_s=0.2).start()
    records = [record(i, ws) for i in range(6)]
    records[3].metadata = {"not json": {1, 2}}  # a set: no JSON column stores it
    for r in records:
        sink.submit(r)
    wait_for(lambda: sink.written + sink.failed == 6, what="every record written or refused")
    sink.close()
    writer.close()
    assert (sink.written, sink.failed) == (5, 1)
    assert stored_spans(engine) == 5


def test_gateway_trace_ids_sort_by_time_so_their_rows_land_side_by_side() -> None:
    import time

    from panopticon.gateway.logging import new_trace_id

    first = new_trace_id()
    time.sleep(0.002)  # the ids carry milliseconds; this test is about their order
    later = [new_trace_id() for _ in range(100)]
    assert all(len(i) == 32 and int(i, 16) for i in [first, *later])
    assert all(first < i for i in later) and len(set(later)) == 100


def test_otlp_on_the_served_port_reaches_ingestion_beside_the_gateway(
    gw_settings: Settings,
) -> None:
    """`panopticon serve` (api, ingest and gateway on one port): the OTLP path /v1/traces is
    the API's, every other /v1 path the gateway's. The gateway took /v1/traces once, and the
    OpenTelemetry SDK's spans were refused with a 404 (FastAPI nests included routers)."""
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": "chat",
                                "kind": 3,
                                "startTimeUnixNano": str(time_ns() - 2_000_000),
                                "endTimeUnixNano": str(time_ns()),
                                "attributes": [
                                    {
                                        "key": "gen_ai.request.model",
                                        "value": {"stringValue": "gpt-otel"},
                                    }
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    server = GatewayServer(gw_settings, {}, {"api", "ingest", "gateway"}).start()
    try:
        with httpx.Client(base_url=server.root, headers=ADMIN, timeout=30) as api:
            sent = api.post("/v1/traces", json=doc)
            assert sent.status_code == 200, sent.text
            wait_for(
                lambda: api.get(f"/api/traces/{trace_id}").status_code == 200,
                what="the OTLP trace in the explorer",
            )
            assert api.get(f"/api/traces/{trace_id}").json()["spans"][0]["name"] == "chat"
            # the API's path with another method is the API's answer, not the gateway's 404
            assert api.get("/v1/traces").status_code == 405
            unknown = api.post("/v1/nothing-here", json={})
            assert unknown.status_code == 404 and "chat/completions" in unknown.text
            services = api.get("/api/services").json()
            assert services["roles"] == ["api", "ingest", "gateway"]
            assert "/v1/chat/completions" in services["services"]["gateway proxy"]
    finally:
        server.stop()
        server.close()
