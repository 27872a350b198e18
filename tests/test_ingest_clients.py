"""Real clients, not imitations: the OpenTelemetry SDK's OTLP/HTTP exporters (protobuf and
JSON) and two instrumentations people use on the official openai SDK, which calls the
bundled mock server; everything is exported to a Panopticon server over real HTTP and
read back through the explorer's API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from panopticon.api.app import create_app
from panopticon.mockllm.server import MockServer
from panopticon.settings import Settings
from tests.conftest import free_port

KEY = "dev_api_key_for_testing"
HEADERS = {"X-API-Key": KEY}


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


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def traces(url: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = httpx.get(
        f"{url}/api/traces", params=params, headers=HEADERS
    ).json()["items"]
    return items


def detail(url: str, trace_id: str) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{url}/api/traces/{trace_id}", headers=HEADERS).json()
    return found


def provider(url: str, json: bool = False) -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    if json:
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
    exporter = OTLPSpanExporter(
        endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {KEY}"}
    )
    tp = TracerProvider(
        resource=Resource.create(
            {"service.name": "shop", "service.version": "2.0", "deployment.environment.name": "ci"}
        )
    )
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    return tp


@pytest.mark.parametrize("json", [False, True], ids=["protobuf", "json"])
def test_an_agent_trace_from_the_otel_sdk_arrives_whole(server: str, json: bool) -> None:
    """chain -> retrieval -> llm -> tool -> llm, with GenAI attributes, current names."""
    tp = provider(server, json=json)
    tracer = tp.get_tracer("agent")
    with tracer.start_as_current_span("handle request") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("gen_ai.conversation.id", "conv-7")
        root.set_attribute("user.id", "carol")
        trace_id = format(root.get_span_context().trace_id, "032x")
        with tracer.start_as_current_span("retrieve") as s:
            s.set_attribute("openinference.span.kind", "RETRIEVER")
            s.set_attribute("retrieval.documents.0.document.content", "Refunds take 5 days.")
            s.set_attribute("retrieval.documents.0.document.score", 0.8)
        with tracer.start_as_current_span("chat gpt-4o") as s:
            s.set_attribute("gen_ai.operation.name", "chat")
            s.set_attribute("gen_ai.provider.name", "openai")
            s.set_attribute("gen_ai.request.model", "gpt-4o")
            s.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
            s.set_attribute("gen_ai.usage.input_tokens", 200)
            s.set_attribute("gen_ai.usage.output_tokens", 30)
            s.set_attribute(
                "gen_ai.input.messages",
                '[{"role": "user", "parts": [{"type": "text", "content": "Where is my refund?"}]}]',
            )
            s.set_attribute(
                "gen_ai.output.messages",
                '[{"role": "assistant", "parts": [{"type": "tool_call", "id": "t1", '
                '"name": "order_status", "arguments": {"order": 42}}], '
                '"finish_reason": "tool_call"}]',
            )
        with tracer.start_as_current_span("execute_tool order_status") as s:
            s.set_attribute("gen_ai.operation.name", "execute_tool")
            s.set_attribute("gen_ai.tool.call.arguments", '{"order": 42}')
            s.set_attribute("gen_ai.tool.call.result", "shipped")
        with tracer.start_as_current_span("chat gpt-4o") as s:
            s.set_attribute("gen_ai.operation.name", "chat")
            s.set_attribute("gen_ai.system", "openai")  # the deprecated names, still emitted
            s.set_attribute("gen_ai.request.model", "gpt-4o")
            s.set_attribute("gen_ai.usage.prompt_tokens", 250)
            s.set_attribute("gen_ai.usage.completion_tokens", 12)
            s.set_attribute("gen_ai.completion.0.role", "assistant")
            s.set_attribute("gen_ai.completion.0.content", "It has shipped.")
    tp.shutdown()
    t = wait_for(lambda: (d := detail(server, trace_id)).get("span_count") == 5 and d)
    assert [(s["depth"], s["kind"]) for s in t["spans"]] == [
        (0, "agent"),
        (1, "retrieval"),
        (1, "llm"),
        (1, "tool"),
        (1, "llm"),
    ]
    assert t["session_id"] == "conv-7" and t["user_id"] == "carol"
    assert t["environment"] == "ci" and t["release"] == "2.0"
    llm = t["spans"][2]
    assert llm["model_requested"] == "gpt-4o" and llm["model_served"] == "gpt-4o-2024-08-06"
    assert llm["input_messages"] == [{"role": "user", "content": "Where is my refund?"}]
    assert llm["output_messages"][0]["tool_calls"] == [
        {"id": "t1", "name": "order_status", "arguments": '{"order":42}'}
    ]
    assert llm["cost_usd"] == pytest.approx((200 * 2.5 + 30 * 10) / 1e6)
    assert t["spans"][1]["documents"] == [{"content": "Refunds take 5 days.", "score": 0.8}]
    assert t["spans"][3]["output_value"] == "shipped"
    assert t["spans"][4]["output_messages"] == [{"role": "assistant", "content": "It has shipped."}]
    assert t["input_tokens"] == 450 and t["models"] == ["gpt-4o", "gpt-4o-2024-08-06"]


def _chat(mock: MockServer, turns: list[str]) -> None:
    import openai

    client = openai.OpenAI(base_url=mock.url, api_key="unused")
    history: list[dict[str, str]] = [{"role": "system", "content": "Be brief."}]
    for text in turns:
        history.append({"role": "user", "content": text})
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=history)  # type: ignore[arg-type]
        history.append({"role": "assistant", "content": reply.choices[0].message.content or ""})


def test_openinference_instrumented_openai_calls_arrive_as_a_session(
    server: str, mock: MockServer
) -> None:
    from openinference.instrumentation import using_session
    from openinference.instrumentation.openai import OpenAIInstrumentor

    tp = provider(server)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tp)
    try:
        with using_session("oi-chat"):
            _chat(mock, ["Hello?", "And then?", "Thanks."])
    finally:
        instrumentor.uninstrument()
        tp.shutdown()
    found = wait_for(lambda: len(traces(server, session_id="oi-chat")) == 3)
    assert found
    session = httpx.get(f"{server}/api/sessions/oi-chat", headers=HEADERS).json()
    spans = [s for t in session["traces"] for s in t["llm_spans"]]
    assert len(spans) == 3
    last = detail(server, session["traces"][-1]["id"])["spans"][0]
    assert last["kind"] == "llm" and last["model_served"]
    assert [m["role"] for m in last["input_messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert last["input_messages"][-1]["content"] == "Thanks."
    assert last["output_messages"][0]["role"] == "assistant"
    assert last["output_messages"][0]["content"]
    assert last["input_tokens"] and last["output_tokens"]
    assert last["cost_usd"] is not None and last["cost_source"] == "price_table"


# the instrumentation's own pydantic models use the v1 style (their code, at import)
@pytest.mark.filterwarnings("ignore:Support for class-based `config`")
def test_openllmetry_instrumented_openai_calls_arrive_with_messages_tokens_and_cost(
    server: str, mock: MockServer
) -> None:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    tp = provider(server)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tp)
    try:
        _chat(mock, ["What is two plus two?"])
    finally:
        instrumentor.uninstrument()
        tp.shutdown()
    (t,) = wait_for(lambda: traces(server, model="gpt-4o-mini"))
    span = detail(server, t["id"])["spans"][0]
    assert span["kind"] == "llm" and span["provider"]
    assert span["input_messages"][-1] == {"role": "user", "content": "What is two plus two?"}
    assert span["output_messages"][0]["role"] == "assistant"
    assert span["output_messages"][0]["content"]
    assert span["input_tokens"] and span["output_tokens"]
    assert span["cost_usd"] == pytest.approx(
        (span["input_tokens"] * 0.15 + span["output_tokens"] * 0.6) / 1e6
    )
