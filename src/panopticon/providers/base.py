"""The provider interface, and a registry that built-ins and plugins use alike.

A provider turns a :class:`ChatRequest` into a :class:`ChatResponse` (:meth:`Provider.complete`)
or into an async iterator of :class:`ChatChunk` (:meth:`Provider.stream`), or raises
:class:`~panopticon.errors.ProviderError`. Retries, rate limits and concurrency live in
:mod:`panopticon.providers.client`, not in providers, so every adapter gets them alike.

Requests carry tools and any other field the caller set (``params``): an adapter sends what
its API understands and passes the rest through, so a gateway forwards fields Panopticon has
never heard of. Outside packages add providers through the ``panopticon.providers`` entry-point
group (``name = "package.module:factory"``), the same registry the built-ins use.
"""

from __future__ import annotations

import abc
import importlib.util
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from panopticon.errors import ConfigError, Issue, MissingDependencyError, ProviderError
from panopticon.providers.egress import EgressPolicy

__all__ = [
    "ENTRY_POINT_GROUP",
    "RESERVED_PARAMS",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "Message",
    "Provider",
    "ProviderConfig",
    "ProviderInfo",
    "ToolCall",
    "collect",
    "create_provider",
    "provider_info",
    "provider_names",
    "register_provider",
]

Message = dict[str, Any]  # role, content; tool_calls / tool_call_id where a turn has them
ENTRY_POINT_GROUP = "panopticon.providers"

#: request fields that parameters may not replace
RESERVED_PARAMS = frozenset({"model", "messages", "stream"})


@dataclass(frozen=True)
class ProviderConfig:
    """How to reach one provider endpoint. The key is resolved by
    :mod:`panopticon.evaluation.endpoints` (never held in suites) and never printed."""

    kind: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    options: dict[str, Any] = field(default_factory=dict)
    egress: EgressPolicy = field(default_factory=EgressPolicy)


@dataclass(frozen=True)
class ProviderInfo:
    """What a provider kind declares about itself (class attributes of its Provider)."""

    kind: str
    key_env: tuple[str, ...]  # variables the CLI reads the key from, in order
    default_base_url: str | None  # its official endpoint (None: it makes no network call)
    needs_key: bool  # at its official endpoint
    native_streaming: bool
    supports_tools: bool


@dataclass(frozen=True)
class ChatRequest:
    """One chat call. ``params`` are sent as given (temperature, max_tokens, fields the
    adapter does not know); ``tools`` are function definitions in OpenAI's shape
    (``{"type": "function", "function": {"name", "description", "parameters"}}``)."""

    model: str
    messages: list[Message]
    params: dict[str, Any] = field(default_factory=dict)
    json_mode: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None


@dataclass(frozen=True)
class ToolCall:
    """A function the model asked to call; ``arguments`` is the JSON text it wrote."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatResponse:
    text: str
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    model: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class ChatChunk:
    """One piece of a streamed answer. ``text`` is the new text only; a tool call arrives in
    pieces keyed by ``tool_index`` (its id and name in the first, arguments appended after).
    The last chunks carry ``finish_reason`` and, where the API reports it, token usage."""

    text: str = ""
    tool_index: int | None = None
    tool_id: str | None = None
    tool_name: str | None = None
    tool_arguments: str = ""
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str | None = None


def collect(chunks: list[ChatChunk]) -> ChatResponse:
    """A streamed answer put back together: what :meth:`Provider.complete` would return."""
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    finish = model = None
    tokens_in = tokens_out = None
    for c in chunks:
        text.append(c.text)
        if c.tool_index is not None:
            call = calls.setdefault(c.tool_index, {"id": "", "name": "", "arguments": ""})
            call["id"] = c.tool_id or call["id"]
            call["name"] = c.tool_name or call["name"]
            call["arguments"] += c.tool_arguments
        finish = c.finish_reason or finish
        model = c.model or model
        tokens_in = c.input_tokens if c.input_tokens is not None else tokens_in
        tokens_out = c.output_tokens if c.output_tokens is not None else tokens_out
    return ChatResponse(
        "".join(text),
        finish,
        tokens_in,
        tokens_out,
        model,
        tuple(ToolCall(v["id"], v["name"], v["arguments"]) for _, v in sorted(calls.items())),
    )


class Provider(abc.ABC):
    """One adapter to one kind of API. Subclasses implement :meth:`complete`, and
    :meth:`stream` where the API streams (the default streams the whole answer as one chunk).
    ``native_streaming`` and ``supports_tools`` say what the adapter does natively."""

    kind: str = ""
    native_streaming: bool = False
    supports_tools: bool = False
    #: environment variables holding the key, read by the CLI when a model names none
    key_env: tuple[str, ...] = ()
    #: the official endpoint, used when a model gives no base_url
    default_base_url: str | None = None
    #: whether the official endpoint needs a key
    needs_key: bool = True
    #: the packages it imports when created, as (module, package, extra): checked when a
    #: suite is validated, so a missing SDK is said before a run starts
    requires: tuple[tuple[str, str, str], ...] = ()

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @abc.abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Send one chat request. Raise ProviderError on failure."""

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Send one chat request and yield the answer as it arrives. Raise ProviderError on
        failure; an error after the first chunk ends the stream with that error."""
        response = await self.complete(request)
        for index, call in enumerate(response.tool_calls):
            yield ChatChunk(
                tool_index=index,
                tool_id=call.id,
                tool_name=call.name,
                tool_arguments=call.arguments,
            )
        yield ChatChunk(
            text=response.text,
            finish_reason=response.finish_reason,
            input_tokens=response.input_tokens,
            output_tokens=response.output_tokens,
            model=response.model,
        )

    def should_retry(self, error: ProviderError) -> bool:
        """Whether a failed call may be sent again. Override for provider quirks."""
        return error.retryable

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


ProviderFactory = Callable[[ProviderConfig], Provider]
_REGISTRY: dict[str, ProviderFactory] = {}
_builtins_loaded = threading.Event()
_builtins_lock = threading.Lock()


def register_provider(kind: str, factory: ProviderFactory) -> None:
    """Make ``kind`` usable as ``provider:`` in suites. Later registrations win."""
    _REGISTRY[kind] = factory


def provider_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def _factory(kind: str) -> ProviderFactory:
    _load_builtins()
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise ConfigError(
            Issue(
                f"unknown provider '{kind}'",
                field="provider",
                hint="use one of: " + ", ".join(sorted(_REGISTRY)),
            )
        ) from None


def create_provider(config: ProviderConfig) -> Provider:
    return _factory(config.kind)(config)


def provider_info(kind: str) -> ProviderInfo:
    """The declarations of a provider kind. A provider registered as a Provider subclass
    (as the built-ins are) declares them as class attributes; a plain factory gets the
    defaults (no key variables, no official endpoint, a key needed)."""
    factory = _factory(kind)
    cls = factory if isinstance(factory, type) and issubclass(factory, Provider) else Provider
    return ProviderInfo(
        kind=kind,
        key_env=tuple(cls.key_env),
        default_base_url=cls.default_base_url,
        needs_key=cls.needs_key,
        native_streaming=cls.native_streaming,
        supports_tools=cls.supports_tools,
    )


def missing_package(kind: str) -> MissingDependencyError | None:
    """The error creating a provider of this kind would raise for want of a package (one
    of its ``requires``), or None when they are all installed."""
    factory = _factory(kind)
    if not (isinstance(factory, type) and issubclass(factory, Provider)):
        return None
    for module, package, extra in factory.requires:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # its parent package is missing (google.genai without google)
            found = False
        if not found:
            return MissingDependencyError(package, extra, f"provider '{kind}'")
    return None


def _load_builtins() -> None:
    # Built-ins register through the same call as plugins; importing the modules is cheap
    # because vendor SDKs are imported only when a provider is created. Plugins come after
    # the built-ins, so a plugin may replace one; an explicit register_provider() wins over both.
    # Once per process, under a lock: a second thread waits for the first instead of reading
    # a half-filled registry ("unknown provider 'openai'" under concurrent requests).
    if _builtins_loaded.is_set():
        return
    with _builtins_lock:
        if _builtins_loaded.is_set():
            return
        from panopticon.plugins import load_entry_points
        from panopticon.providers import anthropic, fake, google, openai

        explicit = dict(_REGISTRY)
        for cls in (
            openai.OpenAIProvider,
            anthropic.AnthropicProvider,
            google.GoogleProvider,
            fake.FakeProvider,
        ):
            _REGISTRY[cls.kind] = cls  # the class: its declarations are read (provider_info)
        for name, factory in load_entry_points(ENTRY_POINT_GROUP).items():
            _REGISTRY[name] = factory
        _REGISTRY.update(explicit)
        _builtins_loaded.set()
