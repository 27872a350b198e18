"""Each convention mapper on the attribute sets its instrumentations really emit (copied in
shape from spans they export), with unknown attributes kept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from panopticon.ingest import Limits, RawSpan, normalise
from panopticon.ingest.model import Span
from panopticon.ingest.redact import redact_text

NOW = datetime.now(UTC)
START = int(NOW.timestamp() * 1e9) - 2_000_000_000


def span(attrs: dict[str, Any], events: list[Any] | None = None, **kw: Any) -> Span:
    raw = RawSpan(
        trace_id="ab" * 16,
        span_id="cd" * 8,
        parent_id=None,
        name=kw.pop("name", "span"),
        start_ns=START,
        end_ns=START + 1_500_000_000,
        attributes=attrs,
        events=events or [],
        **kw,
    )
    out, _, problem = normalise(raw, NOW, Limits())
    assert problem is None and out is not None
    return out


def test_openinference_llm_span() -> None:
    s = span(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini-2024-07-18",
            "llm.provider": "openai",
            "llm.system": "openai",
            "llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0}',
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "Be brief.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": "Weather in Paris?",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "weather",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": (
                '{"city": "Paris"}'
            ),
            "llm.token_count.prompt": 120,
            "llm.token_count.completion": 15,
            "llm.token_count.total": 135,
            "llm.token_count.prompt_details.cache_read": 100,
            "llm.token_count.completion_details.reasoning": 4,
            "input.value": '{"messages": []}',
            "input.mime_type": "application/json",
            "session.id": "sess-1",
            "user.id": "u-9",
            "metadata": '{"team": "search"}',
            "tag.tags": ["beta"],
            "app.custom": "kept",
        }
    )
    assert s.kind == "llm" and s.provider == "openai"
    assert (s.model_requested, s.model_served) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert s.input_messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert s.output_messages == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "name": "weather", "arguments": '{"city": "Paris"}'}],
        }
    ]
    assert (s.input_tokens, s.output_tokens, s.cached_tokens, s.reasoning_tokens) == (
        120,
        15,
        100,
        4,
    )
    assert s.cost_usd is not None and s.cost_source == "price_table"
    assert (s.hints.session_id, s.hints.user_id) == ("sess-1", "u-9")
    assert s.hints.metadata == {"team": "search"} and s.hints.tags == ["beta"]
    assert s.attributes["app.custom"] == "kept"
    assert "llm.input_messages.0.message.role" not in s.attributes
    assert s.attributes["llm.invocation_parameters"].startswith("{")


def test_openinference_retriever_and_own_cost() -> None:
    s = span(
        {
            "openinference.span.kind": "RETRIEVER",
            "input.value": "refund policy",
            "retrieval.documents.0.document.id": "kb-1",
            "retrieval.documents.0.document.content": "Refunds in 5 days.",
            "retrieval.documents.0.document.score": 0.91,
            "retrieval.documents.0.document.metadata": '{"source": "faq"}',
            "retrieval.documents.1.document.content": "Contact support.",
        }
    )
    assert s.kind == "retrieval" and s.input_value == "refund policy"
    assert s.documents == [
        {
            "content": "Refunds in 5 days.",
            "id": "kb-1",
            "score": 0.91,
            "metadata": {"source": "faq"},
        },
        {"content": "Contact support."},
    ]
    priced = span({"openinference.span.kind": "LLM", "llm.cost.total": 0.0042})
    assert priced.cost_usd == 0.0042 and priced.cost_source == "span"


def test_genai_current_names_with_parts_and_system_instructions() -> None:
    s = span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.response.model": "claude-sonnet-4-5-20250929",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 100,
            "gen_ai.usage.cache_read.input_tokens": 800,
            "gen_ai.conversation.id": "conv-1",
            "gen_ai.system_instructions": '[{"type": "text", "content": "You are terse."}]',
            "gen_ai.input.messages": (
                '[{"role": "user", "parts": [{"type": "text", "content": "Hi"}]},'
                ' {"role": "tool", "parts": [{"type": "tool_call_response", "id": "t1",'
                ' "response": "42"}]}]'
            ),
            "gen_ai.output.messages": (
                '[{"role": "assistant", "parts": [{"type": "text", "content": "Hello"}],'
                ' "finish_reason": "stop"}]'
            ),
        }
    )
    assert s.kind == "llm" and s.provider == "anthropic"
    assert s.input_messages == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "tool", "content": "42", "tool_call_id": "t1"},
    ]
    assert s.output_messages == [{"role": "assistant", "content": "Hello", "finish_reason": "stop"}]
    assert s.cached_tokens == 800 and s.hints.session_id == "conv-1"
    assert s.cost_usd == (1000 * 3.0 + 100 * 15.0) / 1e6


def test_genai_deprecated_names_and_message_events() -> None:
    s = span(
        {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": 10,
            "gen_ai.usage.completion_tokens": 5,
        },
        events=[
            ("gen_ai.system.message", START, {"content": "Be kind."}),
            ("gen_ai.user.message", START, {"content": "Hi"}),
            ("gen_ai.choice", START, {"message": '{"content": "Hello!"}', "finish_reason": "stop"}),
            ("exception", START, {"exception.type": "Timeout", "exception.message": "slow"}),
        ],
        status_code=2,
    )
    assert s.kind == "llm" and (s.input_tokens, s.output_tokens) == (10, 5)
    assert [m["role"] for m in s.input_messages or []] == ["system", "user"]
    assert s.output_messages == [
        {"role": "assistant", "content": "Hello!", "finish_reason": "stop"}
    ]
    assert s.status == "error" and s.error == "Timeout: slow"
    assert [e["name"] for e in s.events or []] == ["exception"]


def test_openllmetry_workflow_and_llm_spans() -> None:
    wf = span(
        {
            "traceloop.span.kind": "workflow",
            "traceloop.workflow.name": "support",
            "traceloop.entity.name": "support",
            "traceloop.entity.input": '{"args": ["where is my order"]}',
            "traceloop.entity.output": '"on its way"',
            "traceloop.association.properties.session_id": "chat-5",
            "traceloop.association.properties.user_id": "u-1",
            "traceloop.association.properties.plan": "pro",
        }
    )
    assert wf.kind == "chain" and wf.output_value == '"on its way"'
    assert (wf.hints.session_id, wf.hints.user_id) == ("chat-5", "u-1")
    assert wf.hints.metadata == {"plan": "pro"}
    llm = span(
        {
            "llm.request.type": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "2+2?",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "4",
            "gen_ai.completion.0.finish_reason": "stop",
            "gen_ai.completion.1.role": "assistant",
            "gen_ai.completion.1.tool_calls.0.id": "c9",
            "gen_ai.completion.1.tool_calls.0.name": "calc",
            "gen_ai.completion.1.tool_calls.0.arguments": '{"x": 2}',
            "gen_ai.usage.prompt_tokens": 8,
            "gen_ai.usage.completion_tokens": 1,
            "llm.usage.total_tokens": 9,
            "llm.is_streaming": False,
        }
    )
    assert llm.kind == "llm" and llm.input_messages == [{"role": "user", "content": "2+2?"}]
    assert llm.output_messages is not None and llm.output_messages[0]["content"] == "4"
    assert llm.output_messages[1]["tool_calls"] == [
        {"id": "c9", "name": "calc", "arguments": '{"x": 2}'}
    ]
    assert llm.attributes["llm.is_streaming"] is False


def test_openlit_cost_ttft_and_content_events() -> None:
    s = span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 50,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.cost": 0.00123,
            "gen_ai.server.time_to_first_token": 0.25,
            "gen_ai.environment": "staging",
            "gen_ai.application_name": "bot",
        },
        events=[
            ("gen_ai.content.prompt", START, {"gen_ai.prompt": "Tell me a joke"}),
            ("gen_ai.content.completion", START, {"gen_ai.completion": "Knock knock"}),
        ],
    )
    assert s.cost_usd == 0.00123 and s.cost_source == "span" and s.ttft_ms == 250
    assert s.input_messages == [{"role": "user", "content": "Tell me a joke"}]
    assert s.output_messages == [{"role": "assistant", "content": "Knock knock"}]
    assert s.hints.environment == "staging" and s.events is None


def test_a_span_of_no_known_convention_keeps_everything() -> None:
    s = span({"http.method": "GET", "db.statement": "select 1", "n": 3, "ok": True, "f": 1.5})
    assert s.kind == "other" and s.cost_usd is None
    assert s.attributes == {
        "http.method": "GET",
        "db.statement": "select 1",
        "n": 3,
        "ok": True,
        "f": 1.5,
    }


def test_ten_megabyte_values_are_kept_cut_with_a_marker() -> None:
    s = span(
        {
            "llm.input_messages.0.message.content": "a" * 10_000_000,
            "llm.input_messages.0.message.role": "user",
            "blob": "b" * 10_000_000,
        }
    )
    assert s.input_messages is not None
    assert s.input_messages[0]["content"].endswith("…[truncated 9934464 characters]")
    assert len(s.attributes["blob"]) < 70_000


def test_redaction_hides_personal_data_and_keys_but_not_ordinary_numbers() -> None:
    text = (
        "mail jane.doe@example.com or call +1 415-555-0132; card 4111 1111 1111 1111; "
        "key sk-proj-abcdefghijklmnopqrstuvwx; order 12345 costs 42"
    )
    assert redact_text(text) == (
        "mail [EMAIL] or call [PHONE]; card [CARD]; key [KEY]; order 12345 costs 42"
    )
    raw = RawSpan(
        "ab" * 16, "cd" * 8, None, "s", START, START + 1, {"input.value": "write to bob@corp.io"}
    )
    redacted, _, _ = normalise(raw, NOW, Limits(redact=True))
    assert redacted is not None and redacted.input_value == "write to [EMAIL]"


def test_tool_call_arguments_of_any_size_are_kept_as_json_text() -> None:
    from panopticon.ingest.conventions._messages import tool_call

    assert tool_call("c", "f", {"n": -(2**63) - 1}) == {
        "id": "c",
        "name": "f",
        "arguments": '{"n":-9223372036854775809}',
    }


def test_flattened_lists_are_grouped_by_the_name_before_their_first_index() -> None:
    import re

    from panopticon.ingest.attrs import Attrs

    keys = [
        "llm.input_messages.0.message.role",
        "llm.input_messages.10.message.content",
        "llm.output_messages.0.message.tool_calls.1.tool_call.id",
        "gen_ai.prompt.0",
        ".0.odd",
        ".0.a.1.b",
        "a.b",
        "v1.2x.3",
        "x.007.y",
        "gen_ai.usage.input_tokens",
    ]
    a = Attrs({k: i for i, k in enumerate(keys)})
    old = re.compile(r"^(.+?)\.\d+(?:\.|$)")  # what the grouping has always meant
    want: dict[str, dict[str, int]] = {}
    for i, k in enumerate(keys):
        m = old.match(k)
        if m:
            want.setdefault(m.group(1), {})[k] = i
    for name, items in want.items():
        assert a.listed(name) == items, name
    assert a.listed("a") == {} and a.listed("gen_ai.usage") == {}
