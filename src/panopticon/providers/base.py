"""The provider interface: one async method, and a registry that built-ins use too.

A provider turns a :class:`ChatRequest` into a :class:`ChatResponse` or raises
:class:`~panopticon.errors.ProviderError`. Retries, rate limits and concurrency live in
:mod:`panopticon.providers.client`, not in providers, so every adapter gets them alike.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from panopticon.errors import ConfigError, Issue, ProviderError

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "Message",
    "Provider",
    "ProviderConfig",
    "create_provider",
    "provider_names",
    "register_provider",
]

Message = dict[str, str]


@dataclass(frozen=True)
class ProviderConfig:
    """How to reach one provider endpoint. Secrets are named, never held in suites."""

    kind: str
    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = 60.0
    options: dict[str, Any] = field(default_factory=dict)


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
_builtins_lock = threading.Lock()  # suites are parsed in several threads at once (jobs)


def register_provider(kind: str, factory: ProviderFactory) -> None:
    """Make ``kind`` usable as ``provider:`` in suites. Later registrations win."""
    _REGISTRY[kind] = factory


def provider_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def create_provider(config: ProviderConfig) -> Provider:
    _load_builtins()
    try:
        factory = _REGISTRY[config.kind]
    except KeyError:
        raise ConfigError(
            Issue(
                f"unknown provider '{config.kind}'",
                field="provider",
                hint="use one of: " + ", ".join(sorted(_REGISTRY)),
            )
        ) from None
    return factory(config)


def _load_builtins() -> None:
    # Built-ins register through the same call as plugins; importing the modules is cheap
    # because vendor SDKs are imported only when a provider is created.
    if not _builtins_loaded:
        with _builtins_lock:
            _register_builtins()


def _register_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:  # another thread did it while this one waited for the lock
        return
    from panopticon.providers import anthropic, fake, google, openai

    for module in (openai, anthropic, google, fake):
        _REGISTRY.setdefault(module.KIND, module.create)
    _builtins_loaded = True  # only once every built-in is registered
