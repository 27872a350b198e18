"""Which endpoint and key a model uses, and the client built from them: one rule for the
CLI, the API, the dashboard and the workers.

A model's ``provider`` is either a provider kind (``openai``, ``anthropic``, ``google``,
``fake``, or a plugin's), or the name of a provider registered in the workspace, which
holds the endpoint (``base_url``), the key (a stored ``credential``, or an operator-allowed
``api_key_env``) and options; a change to it applies to the next call.

Who may bring what (:class:`Access`):

- **The CLI running a suite file** (``Access.cli``): its user owns the machine and its
  environment. A model may give ``base_url``, any ``api_key_env``, a ``credential`` of the
  CLI's workspace, or nothing: then the kind's own variables (``OPENAI_API_KEY``, ...) are
  read, as before.
- **Everything sent to the server** (API, dashboard, jobs on workers: ``Access.server``):
  a suite names registered models (by id) or registered providers, or a kind with a
  ``credential`` of its workspace (sent to that kind's official endpoint). It never names
  an ``api_key_env`` (admins do that on a provider) and gives a ``base_url`` only when the
  operator allows it (``PANOPTICON_ALLOW_REQUEST_ENDPOINTS``), and then without a
  ``credential``. Nothing falls back to the server's own variables.
- **Environment variables named by the registry or the server** must be on the operator's
  allow-list (``PANOPTICON_ALLOWED_KEY_ENV``), and such a key goes only to its provider's
  official endpoint, or to the one URL the operator pinned for it (``NAME=https://...``).
- **Every base URL**, wherever it comes from, obeys the egress policy
  (:mod:`panopticon.providers.egress`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from panopticon.evaluation.spec import ModelSpec
from panopticon.providers.base import (
    ProviderConfig,
    create_provider,
    provider_info,
    provider_names,
)
from panopticon.providers.client import ModelClient, RetryPolicy
from panopticon.providers.egress import EgressPolicy
from panopticon.providers.limits import RateBucket
from panopticon.settings import Settings

__all__ = [
    "Access",
    "Directory",
    "Endpoint",
    "Problem",
    "RegisteredProvider",
    "build_client",
    "resolve_endpoint",
]


@dataclass(frozen=True)
class RegisteredProvider:
    """A provider row of a workspace, as the resolution needs it."""

    name: str
    kind: str
    base_url: str | None
    credential: str | None
    api_key_env: str | None
    options: dict[str, Any] = field(default_factory=dict)


class Directory(Protocol):
    """What the store knows of a workspace: its registered providers and credentials."""

    def provider(self, name: str) -> RegisteredProvider | None:
        """The registered provider of that name, or None."""

    def secret(self, credential: str) -> str | None:
        """The decrypted credential, None when there is none of that name. Raises
        ConfigError when it cannot be decrypted (the encryption key changed)."""

    def model(self, name: str) -> ModelSpec | None:
        """The model of that id in the workspace's registry, as registered, or None."""


@dataclass(frozen=True)
class Access:
    """Who is asking, and what the operator allows them."""

    local: bool = True  # the CLI running a suite file on its user's machine
    allowed_env: Mapping[str, str | None] = field(default_factory=dict)
    request_endpoints: bool = False
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    registered: frozenset[str] = frozenset()  # model ids whose endpoint an admin registered

    @classmethod
    def cli(cls, settings: Settings) -> Access:
        return cls(
            local=True,
            allowed_env=settings.key_env_allow_list,
            egress=EgressPolicy(allow_private=settings.allow_private_urls),
        )

    @classmethod
    def server(cls, settings: Settings, *, registered: frozenset[str] = frozenset()) -> Access:
        return cls(
            local=False,
            allowed_env=settings.key_env_allow_list,
            request_endpoints=settings.allow_request_endpoints,
            egress=EgressPolicy(allow_private=settings.allow_private_urls),
            registered=registered,
        )


@dataclass(frozen=True)
class Endpoint:
    """Where a model's calls go and with which key (held in memory only, never printed)."""

    kind: str
    base_url: str | None
    api_key: str | None = field(default=None, repr=False)
    key_source: str | None = None  # "credential 'x'" or "$NAME": for messages and limits
    options: dict[str, Any] = field(default_factory=dict)

    def provider_config(self, timeout_s: float, egress: EgressPolicy) -> ProviderConfig:
        return ProviderConfig(
            kind=self.kind,
            base_url=self.base_url,
            api_key=self.api_key,
            timeout_s=timeout_s,
            options=self.options,
            egress=egress,
        )


@dataclass(frozen=True)
class Problem:
    """Why a model cannot be used: ``field`` is the model's field at fault."""

    message: str
    hint: str
    field: str


def resolve_endpoint(
    spec: ModelSpec, env: Mapping[str, str], access: Access, directory: Directory | None
) -> Endpoint | Problem:
    """The endpoint and key ``spec`` uses, or the problem that stops it (see module doc)."""
    inline = [f for f in ("base_url", "api_key_env", "credential") if getattr(spec, f)]
    from_admin = access.local or spec.id in access.registered
    if not access.local and spec.secret_headers():
        return Problem(
            f"model '{spec.id}': the header {spec.secret_headers()[0]} would carry a key, "
            "which the server neither stores nor sends from a request",
            "store the key as a credential of the workspace (POST /api/credentials) and "
            "name it with credential: <name>",
            "options.headers",
        )
    if spec.provider not in provider_names():
        row = directory.provider(spec.provider) if directory is not None else None
        if row is None:
            return Problem(
                f"unknown provider '{spec.provider}'",
                "use a provider kind (" + ", ".join(provider_names()) + ") or the name of a "
                "provider registered in the workspace (GET /api/providers)",
                "provider",
            )
        if inline:
            return Problem(
                f"model '{spec.id}' names the registered provider '{row.name}', which holds "
                f"its endpoint and key, and also gives {inline[0]}",
                f"remove {', '.join(inline)}; an admin changes the provider with "
                "PATCH /api/providers/{id}",
                inline[0],
            )
        kind, base_url, credential, key_env = (
            row.kind,
            row.base_url,
            row.credential,
            row.api_key_env,
        )
        options = {**row.options, **spec.options}
        registry_env = True  # a variable named by the registry: the allow-list applies
    else:
        kind, base_url, credential, key_env = (
            spec.provider,
            spec.base_url,
            spec.credential,
            spec.api_key_env,
        )
        options = dict(spec.options)
        registry_env = not access.local
        if not from_admin:
            if base_url and not access.request_endpoints:
                return Problem(
                    f"model '{spec.id}': a suite sent to the server cannot choose its endpoint",
                    "name a provider an admin registered (provider: <name>, see GET "
                    "/api/providers) or a registered model; the operator may allow endpoints "
                    "in requests with PANOPTICON_ALLOW_REQUEST_ENDPOINTS=true",
                    "base_url",
                )
            if base_url and credential:
                # the workspace's secret, which an admin stored, would go where the request
                # says: a credential goes to its kind's official endpoint, or to the one an
                # admin registered with it
                return Problem(
                    f"model '{spec.id}': a suite sent to the server cannot send the "
                    f"credential '{credential}' to an endpoint of its own choosing",
                    "remove base_url to use the provider's official endpoint, or name a "
                    "provider an admin registered with this endpoint and credential "
                    "(provider: <name>, see GET /api/providers)",
                    "credential",
                )
            if key_env:
                return Problem(
                    f"model '{spec.id}': a suite sent to the server cannot name an "
                    "environment variable",
                    "store the key as a credential of the workspace (POST /api/credentials) "
                    "and write credential: <name>, or name a registered provider",
                    "api_key_env",
                )
    info = provider_info(kind)
    target = (base_url or info.default_base_url or "").rstrip("/")
    if target:
        refusal = access.egress.url_refusal(target)
        if refusal is not None:
            return Problem(
                f"model '{spec.id}': base_url {target} is refused: {refusal}",
                "use a public http(s) address of the provider",
                "base_url",
            )
    if credential:
        secret = directory.secret(credential) if directory is not None else None
        if secret is None:
            return Problem(
                f"model '{spec.id}' needs the credential '{credential}', which this workspace "
                "does not have",
                f"an admin stores it: `panopticon credentials set {credential}` or POST "
                "/api/credentials",
                "credential",
            )
        return Endpoint(kind, base_url, secret, f"credential '{credential}'", options)
    if key_env:
        if registry_env:
            problem = _env_allowed(spec, key_env, target, info.default_base_url, access)
            if problem is not None:
                return problem
        value = env.get(key_env)
        if not value:
            return Problem(
                f"model '{spec.id}' needs an API key, and the environment variable {key_env} "
                "is not set",
                f"export {key_env}=... (or set api_key_env to the variable that holds the key)",
                "api_key_env",
            )
        return Endpoint(kind, base_url, value, "$" + key_env, options)
    if base_url or not info.needs_key:
        return Endpoint(kind, base_url, None, None, options)  # self-hosted: a key is optional
    if access.local and info.key_env:
        for name in info.key_env:
            if env.get(name):
                return Endpoint(kind, base_url, env[name], "$" + name, options)
        first = info.key_env[0]
        return Problem(
            f"model '{spec.id}' needs an API key, and the environment variable {first} is not set",
            f"export {first}=... (or set api_key_env to the variable that holds the key, or "
            "credential: to a stored credential)",
            "api_key_env",
        )
    return Problem(
        f"model '{spec.id}' has no key for {kind}",
        "an admin stores one (POST /api/credentials) and the model names it with "
        "credential: <name>, or name a registered provider that has one",
        "credential",
    )


def _env_allowed(
    spec: ModelSpec, name: str, target: str, official: str | None, access: Access
) -> Problem | None:
    if name not in access.allowed_env:
        allowed = ", ".join(sorted(access.allowed_env)) or "none"
        return Problem(
            f"model '{spec.id}': the environment variable {name} is not one the operator "
            f"allows (allowed: {allowed})",
            "store the key as a workspace credential (POST /api/credentials), or the "
            "operator adds the variable to PANOPTICON_ALLOWED_KEY_ENV",
            "api_key_env",
        )
    pinned = access.allowed_env[name] or (official or "").rstrip("/")
    if target != pinned:
        return Problem(
            f"model '{spec.id}': the key in {name} may be sent only to {pinned or 'nowhere'}, "
            f"not {target or 'this provider'}",
            "remove base_url to use the official endpoint, or the operator pins another URL "
            f"for it: PANOPTICON_ALLOWED_KEY_ENV={name}=https://...",
            "base_url",
        )
    return None


def build_client(
    spec: ModelSpec,
    endpoint: Endpoint,
    egress: EgressPolicy,
    *,
    concurrency: int = 1,
    rpm: int | RateBucket | None = None,
    tpm: int | RateBucket | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> ModelClient:
    """The client for one model: its provider at its endpoint, with its retries and limits."""
    provider = create_provider(endpoint.provider_config(spec.timeout_s, egress))
    return ModelClient(
        provider,
        concurrency=concurrency,
        rpm=rpm,
        tpm=tpm,
        retry=RetryPolicy(max_retries=spec.max_retries),
        adaptive=spec.adaptive_concurrency,
        should_stop=should_stop,
    )
