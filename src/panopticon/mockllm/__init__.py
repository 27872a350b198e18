"""A local stand-in for LLM providers, shipped with Panopticon (like Inspect's ``mockllm``).

:mod:`.behaviour` decides what a model "says" (deterministic answers, judge scores driven by
a per-model quality), :mod:`.server` serves it over real HTTP in the OpenAI, Anthropic and
Gemini wire formats with injected latency and failures, and the ``fake`` provider uses the
same behaviour without any network.
"""

from panopticon.mockllm.behaviour import MockConfig, respond
from panopticon.mockllm.server import MockServer

__all__ = ["MockConfig", "MockServer", "respond"]
