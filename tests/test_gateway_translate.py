"""OpenAI Chat Completions <-> Anthropic Messages: requests, answers and streams, with tools."""

from __future__ import annotations

import orjson

from panopticon.gateway.translate import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    anthropic_request_to_openai,
    anthropic_response_to_openai,
    openai_request_to_anthropic,
    openai_response_to_anthropic,
)
from panopticon.gateway.wire import SSEParser

TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_an_openai_request_becomes_a_messages_request() -> None:
    body = {
        "model": "alias",
        "messages": [
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "cold"},
        ],
        "max_completion_tokens": 50,
        "stop": "END",
        "temperature": 0.2,
        "tools": [TOOL],
        "tool_choice": "required",
        "user": "u1",
    }
    out = openai_request_to_anthropic(body, "claude-x")
    assert out["model"] == "claude-x" and out["system"] == "Be brief"
    assert out["max_tokens"] == 50 and out["stop_sequences"] == ["END"]
    assert out["messages"][1]["content"][0] == {
        "type": "tool_use", "id": "c1", "name": "weather", "input": {"city": "Oslo"}
    }  # fmt: skip
    assert out["messages"][2]["content"][0]["type"] == "tool_result"
    assert out["tools"][0]["input_schema"]["properties"]["city"] == {"type": "string"}
    assert out["tool_choice"] == {"type": "any"} and out["metadata"] == {"user_id": "u1"}


def test_a_messages_answer_becomes_a_chat_completion_and_back() -> None:
    msg = {
        "id": "msg_1",
        "model": "claude-x",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2},
    }
    chat = anthropic_response_to_openai(msg, "claude-x")
    choice = chat["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["arguments"] == '{"city":"Oslo"}'
    assert chat["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    back = openai_response_to_anthropic(chat, "claude-x")
    assert back["stop_reason"] == "tool_use"
    assert back["content"][1]["input"] == {"city": "Oslo"}


def test_an_anthropic_request_becomes_a_chat_request() -> None:
    body = {
        "model": "m",
        "system": [{"type": "text", "text": "Sys"}],
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 20,
        "stop_sequences": ["X"],
        "stream": True,
        "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
    }
    out = anthropic_request_to_openai(body, "gpt-x")
    assert out["messages"] == [
        {"role": "system", "content": "Sys"},
        {"role": "user", "content": "Hi"},
    ]
    assert out["stream_options"] == {"include_usage": True} and out["stop"] == ["X"]
    assert out["tools"][0]["function"]["name"] == "weather"


def test_an_anthropic_stream_becomes_openai_chunks_with_usage() -> None:
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_9", "model": "claude-x", "usage": {"input_tokens": 7}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Hel"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "lo"}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": 3}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    stream = AnthropicToOpenAIStream("claude-x", include_usage=True)
    chunks = [c for name, data in events for c in stream.feed(name, data)]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_an_openai_stream_becomes_anthropic_events() -> None:
    stream = OpenAIToAnthropicStream("gpt-x")
    first = {"index": 0, "delta": {"role": "assistant", "content": "Hi"}}
    out = stream.feed({"id": "chatcmpl-1", "model": "gpt-x", "choices": [first]})
    out += stream.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    out += stream.feed({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 1}})
    out += stream.finish_events()
    names = [name for name, _ in out]
    assert names == [
        "message_start", "content_block_start", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    assert out[4][1]["delta"]["stop_reason"] == "max_tokens"
    assert out[4][1]["usage"] == {"output_tokens": 1}


def test_the_sse_parser_splits_events_across_reads_and_line_endings() -> None:
    parser = SSEParser()
    data = orjson.dumps({"a": 1})
    assert parser.feed(b"event: x\r\ndata: " + data[:3]) == []
    events = parser.feed(data[3:] + b"\r\n\r\ndata: [DONE]\n\n")
    assert [(e, d) for _, e, d in events] == [("x", data), (None, b"[DONE]")]
