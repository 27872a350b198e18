"""Providers stream, call tools and pass unknown fields through, over real HTTP against the
mock; outside packages add providers and metrics through entry points."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from panopticon.errors import ConfigError
from panopticon.mockllm.server import MockServer
from panopticon.providers import base as provider_base
from panopticon.providers.base import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ProviderConfig,
    collect,
    create_provider,
)

HELLO = [{"role": "user", "content": "Hello there, how are you today?"}]
WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


def run(kind: str, url: str, request: ChatRequest, *, stream: bool) -> Any:
    async def go() -> Any:
        provider = create_provider(ProviderConfig(kind, base_url=url, api_key="k", timeout_s=5))
        try:
            if stream:
                return [c async for c in provider.stream(request)]
            return await provider.complete(request)
        finally:
            await provider.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_streamed_answer_arrives_in_pieces_and_adds_up_to_the_whole_answer(
    mock: MockServer, kind: str
) -> None:
    url = mock.url if kind == "openai" else mock.root
    request = ChatRequest("mock-a", HELLO, {"max_tokens": 200})
    whole: ChatResponse = run(kind, url, request, stream=False)
    chunks: list[ChatChunk] = run(kind, url, request, stream=True)
    assert len([c for c in chunks if c.text]) > 1  # really streamed, not one block
    streamed = collect(chunks)
    assert streamed.text == whole.text
    assert streamed.finish_reason == whole.finish_reason == "stop"
    assert streamed.input_tokens == whole.input_tokens and streamed.output_tokens
    assert streamed.output_tokens == whole.output_tokens


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_call_comes_back_with_its_name_and_json_arguments(
    mock: MockServer, kind: str, stream: bool
) -> None:
    url = mock.url if kind == "openai" else mock.root
    request = ChatRequest(
        "mock-a",
        [{"role": "user", "content": "Weather in Oslo?"}],
        {"max_tokens": 100},
        tools=WEATHER,
        tool_choice="required",
    )
    out = run(kind, url, request, stream=stream)
    answer = collect(out) if stream else out
    assert answer.finish_reason == "tool_calls"
    (call,) = answer.tool_calls
    assert call.name == "get_weather" and call.id
    assert json.loads(call.arguments) == {"query": "Weather in Oslo?"}


def test_a_conversation_with_tool_results_is_sent_to_anthropic_in_its_own_shape(
    mock: MockServer,
) -> None:
    # the assistant's tool call and the tool's result, written the OpenAI way
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"query": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
    ]
    answer = run(
        "anthropic", mock.root, ChatRequest("claude-x", messages, {"max_tokens": 80}), stream=False
    )
    # the SDK would have refused a malformed conversation before sending it
    assert answer.text.startswith("[claude-x]") and mock.stats.by_route["messages"] == 1


def test_params_pass_through_but_never_replace_the_model_messages_or_stream_flag(
    mock: MockServer,
) -> None:
    request = ChatRequest(
        "mock-a",
        HELLO,
        {"model": "mock-other", "messages": [], "stream": True, "seed": 7, "max_tokens": 50},
    )
    answer: ChatResponse = run("openai", mock.url, request, stream=False)
    assert answer.model == "mock-a" and answer.text.startswith("[mock-a]")
    assert mock.stats.by_model == {"mock-a": 1}


def test_a_provider_without_native_streaming_streams_its_whole_answer(mock: MockServer) -> None:
    request = ChatRequest("fake-a", HELLO, {"max_tokens": 50})
    whole = run("fake", mock.url, request, stream=False)
    chunks = run("fake", mock.url, request, stream=True)
    assert collect(chunks) == whole


# -- entry points ----------------------------------------------------------------------------


def install_plugin(root: Path, group: str, name: str, value: str, module: str) -> None:
    """A real installed distribution (dist-info with entry_points.txt) on sys.path."""
    dist = root / "panopticon_plugin_test-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: panopticon-plugin-test\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(f"[{group}]\n{name} = {value}\n")
    (root / "panopticon_plugin_test.py").write_text(textwrap.dedent(module))


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from panopticon import plugins
    from panopticon.judges import base as judge_base

    monkeypatch.syspath_prepend(str(tmp_path))
    # registries load built-ins and plugins once per process: load them afresh here
    monkeypatch.setattr(provider_base, "_builtins_loaded", threading.Event())
    monkeypatch.setattr(provider_base, "_REGISTRY", {})
    monkeypatch.setattr(judge_base, "_plugins_loaded", threading.Event())
    monkeypatch.setattr(judge_base, "_builtins_loaded", set())
    monkeypatch.setattr(judge_base, "_REGISTRY", {})
    plugins._installed.cache_clear()  # the installed packages are read once per process
    yield tmp_path
    sys.modules.pop("panopticon_plugin_test", None)
    plugins._installed.cache_clear()


def test_an_installed_package_adds_a_provider_through_its_entry_point(
    plugin_path: Path, mock: MockServer
) -> None:
    install_plugin(
        plugin_path,
        "panopticon.providers",
        "echo",
        "panopticon_plugin_test:create",
        """
        from panopticon.providers.base import ChatResponse, Provider

        class Echo(Provider):
            kind = "echo"

            async def complete(self, request):
                return ChatResponse(request.messages[-1]["content"][::-1], "stop", 1, 1)

        def create(config):
            return Echo(config)
        """,
    )
    assert "echo" in provider_base.provider_names() and "openai" in provider_base.provider_names()
    answer = run(
        "echo", mock.url, ChatRequest("m", [{"role": "user", "content": "abc"}]), stream=False
    )
    assert answer.text == "cba"


def test_an_installed_package_adds_a_metric_type_that_suites_can_name(plugin_path: Path) -> None:
    install_plugin(
        plugin_path,
        "panopticon.metrics",
        "shouting",
        "panopticon_plugin_test:register",
        """
        from typing import Literal

        from panopticon.judges.base import Metric, MetricResult, MetricSpec, register_metric

        class ShoutingSpec(MetricSpec):
            type: Literal["shouting"] = "shouting"

        class Shouting(Metric):
            type = "shouting"

            async def score(self, ctx, judge):
                loud = ctx.response.isupper()
                return MetricResult(float(loud), float(loud), loud, "all capitals")

        def register():
            register_metric("shouting", ShoutingSpec, Shouting)
        """,
    )
    from panopticon.judges.base import metric_types, spec_class

    assert "shouting" in metric_types() and "rubric" in metric_types()
    assert spec_class("shouting") is not None


def test_a_plugin_that_cannot_be_imported_is_an_error_naming_its_package(
    plugin_path: Path,
) -> None:
    install_plugin(
        plugin_path,
        "panopticon.providers",
        "broken",
        "panopticon_plugin_test:create",
        "raise ImportError('needs libfoo')\n",
    )
    with pytest.raises(ConfigError) as info:
        provider_base.provider_names()
    message = str(info.value)
    assert "broken" in message and "panopticon-plugin-test" in message and "needs libfoo" in message
    assert "pip uninstall" in message
