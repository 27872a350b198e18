"""The provider interface: one async method, and a registry that built-ins use too.

A provider turns a :class:`ChatRequest` into a :class:`ChatResponse` or raises
:class:`~panopticon.errors.ProviderError`. Retries, rate limits and concurrency live in
:mod:`panopticon.providers.client`, not in providers, so every adapter gets them alike.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from panopticon.errors import ConfigError, Issue, ProviderError
from panopticon.providers.egress import EgressPolicy

__all__ = [
    "RESERVED_PARAMS",
    "ChatRequest",
    "ChatResponse",
    "Message",
    "Provider",
    "ProviderConfig",
    "ProviderInfo",
    "create_provider",
    "provider_info",
    "provider_names",
    "register_provider",
]

Message = dict[str, str]

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
    capabilities: frozenset[str]


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[Message]
    params: dict[str, Any] = field(default_factory=dict)
    json_mode: bool = False


@dataclass(frozen=True)
class ChatResponse:
    text: str
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    model: str | None = None


class Provider(abc.ABC):
    """One adapter to one kind of API. Subclasses implement :meth:`complete`."""

    kind: str = ""
    #: environment variables holding the key, read by the CLI when a model names none
    key_env: tuple[str, ...] = ()
    #: the official endpoint, used when a model gives no base_url
    default_base_url: str | None = None
    #: whether the official endpoint needs a key
    needs_key: bool = True
    #: what the adapter supports: "chat", "json_mode", ...
    capabilities: frozenset[str] = frozenset({"chat", "json_mode"})

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @abc.abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Send one chat request. Raise ProviderError on failure."""

    def should_retry(self, error: ProviderError) -> bool:
        """Whether a failed call may be sent again. Override for provider quirks."""
        return error.retryable

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


ProviderFactory = Callable[[ProviderConfig], Provider]
_REGISTRY: dict[str, ProviderFactory] = {}
_builtins_loaded = False


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
    """The declarations of a provider kind. A plugin registered as a Provider subclass
    declares them as class attributes; a plain factory gets the defaults."""
    factory = _factory(kind)
    cls = factory if isinstance(factory, type) and issubclass(factory, Provider) else Provider
    return ProviderInfo(
        kind=kind,
        key_env=tuple(cls.key_env),
        default_base_url=cls.default_base_url,
        needs_key=cls.needs_key,
        capabilities=frozenset(cls.capabilities),
    )


def _load_builtins() -> None:
    # Built-ins register through the same call as plugins; importing the modules is cheap
    # because vendor SDKs are imported only when a provider is created.
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    from panopticon.providers import anthropic, fake, google, openai

    for cls in (
        openai.OpenAIProvider,
        anthropic.AnthropicProvider,
        google.GoogleProvider,
        fake.FakeProvider,
    ):
        _REGISTRY.setdefault(cls.kind, cls)
