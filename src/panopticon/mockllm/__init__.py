"""A local stand-in for LLM providers, shipped with Panopticon (like Inspect's ``mockllm``).

:mod:`.behaviour` decides what a model "says" (deterministic answers, judge scores driven by
a per-model quality), :mod:`.server` serves it over real HTTP in the OpenAI, Anthropic and
Gemini wire formats with injected latency and failures, and the ``fake`` provider uses the
same behaviour without any network.
"""

from typing import Any

from panopticon.mockllm.behaviour import MockConfig, respond

__all__ = ["MockConfig", "MockServer", "respond"]


def __getattr__(name: str) -> Any:
    # the server needs aiohttp.web; the offline provider only needs the behaviour
    if name == "MockServer":
        from panopticon.mockllm.server import MockServer

        return MockServer
    raise AttributeError(name)
