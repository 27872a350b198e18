"""The model registry of a workspace: its providers (endpoint and key) and its models.

A provider holds where calls go (``kind``, ``base_url``, ``options``) and with which key: a
credential of the workspace (by name) or an environment variable the operator allows.
A model names its provider and holds what is sent (model name, parameters, limits, price);
its endpoint is read from the provider at each use, so ``PATCH /api/providers/{id}``
changes what the next call uses. Only admins write here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import Field, SecretStr, ValidationError

from panopticon.errors import ConfigError, Issue, NotFoundError
from panopticon.evaluation.endpoints import (
    Access,
    Problem,
    RegisteredProvider,
    resolve_endpoint,
)
from panopticon.evaluation.spec import ModelSpec, model_price
from panopticon.providers.base import provider_names
from panopticon.services.bodies import Body
from panopticon.services.credentials import Credentials
from panopticon.settings import Settings
from panopticon.store.engine import Engine
from panopticon.store.queries import catalog, registry

__all__ = [
    "CredentialCreate",
    "ModelCreate",
    "ModelRegistry",
    "ProviderCreate",
    "ProviderUpdate",
    "WorkspaceDirectory",
    "model_public",
]

ENDPOINT_FIELDS = ("base_url", "api_key_env", "credential")


# -- bodies: what the API and the dashboard's forms send (one rule for both) --


class ModelCreate(Body):
    id: str = Field(min_length=1, max_length=200)
    provider: str = Field(
        default="openai",
        max_length=200,
        description="A registered provider's name, or a kind (openai, anthropic, google, "
        "fake) with the endpoint given here.",
    )
    model: str | None = Field(default=None, max_length=200)
    base_url: str | None = Field(default=None, max_length=500)
    api_key_env: str | None = Field(
        default=None,
        max_length=200,
        description="An environment variable of the server on the operator's allow-list.",
    )
    credential: str | None = Field(
        default=None, max_length=200, description="A credential of the workspace, by name."
    )
    params: dict[str, Any] = Field(default_factory=dict)
    concurrency: int | None = Field(default=None, ge=1, le=10_000)
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    price: dict[str, float] | None = Field(default=None, description="{input, output} USD/1M")


class ProviderCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(min_length=1, max_length=50)
    base_url: str | None = Field(default=None, max_length=500)
    api_key_env: str | None = Field(
        default=None,
        max_length=200,
        description="An environment variable of the server on the operator's allow-list.",
    )
    credential: str | None = Field(
        default=None, max_length=200, description="A credential of the workspace, by name."
    )


class ProviderUpdate(Body):
    base_url: str | None = Field(default=None, max_length=500)
    api_key_env: str | None = Field(default=None, max_length=200)
    credential: str | None = Field(default=None, max_length=200)


class CredentialCreate(Body):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    secret: SecretStr = Field(  # masked in reprs: never in a log line or a traceback
        min_length=1, max_length=10_000, description="The key. Stored encrypted; never shown."
    )


def model_public(row: Any) -> dict[str, Any]:
    settings = dict(row.settings or {})
    price = (
        None if row.price_input is None else {"input": row.price_input, "output": row.price_output}
    )
    return {
        "id": row.name,
        "provider": row.kind,
        "provider_name": row.provider_name,
        "model": row.provider_model,
        "base_url": row.base_url,
        "api_key_env": row.api_key_env,
        "credential": row.credential,
        "params": settings.get("params") or {},
        "concurrency": settings.get("concurrency"),
        "price": price,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _provider_public(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "kind": r.kind,
        "base_url": r.base_url,
        "api_key_env": r.api_key_env,
        "credential": r.credential,
        "created_at": r.created_at,
    }


def registered_spec(row: Any) -> ModelSpec:
    """A registered model (a row of :func:`registry.model_rows`) as a suite model, its
    endpoint read from its provider now."""
    data = {
        k: v for k, v in (row.settings or {}).items() if k not in ENDPOINT_FIELDS and k != "options"
    }
    data.update(
        id=row.name,
        provider=row.kind,
        model=row.provider_model,
        base_url=row.base_url,
        api_key_env=row.api_key_env,
        credential=row.credential,
        options={**(row.options or {}), **((row.settings or {}).get("options") or {})},
    )
    if row.price_input is not None:
        data["price"] = {"input": row.price_input, "output": row.price_output}
    return ModelSpec.model_validate(data)


class _EveryVariable(Mapping[str, str]):
    """An environment in which every variable is set: checks the policy on a variable's
    name without reading it (the server that registers may not be the one that calls)."""

    def __getitem__(self, key: str) -> str:
        return "set"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class WorkspaceDirectory:
    """The workspace's registered providers and credentials, for endpoint resolution."""

    def __init__(self, engine: Engine, workspace_id: int, settings: Settings) -> None:
        self.engine = engine
        self.ws = workspace_id
        self.credentials = Credentials(engine, workspace_id, settings)

    def provider(self, name: str) -> RegisteredProvider | None:
        with self.engine.connect() as conn:
            row = catalog.find_provider(conn, self.ws, name)
        if row is None:
            return None
        return RegisteredProvider(
            row.name, row.kind, row.base_url, row.credential, row.api_key_env, row.options or {}
        )

    def secret(self, credential: str) -> str | None:
        return self.credentials.secret(credential)

    def model(self, name: str) -> ModelSpec | None:
        with self.engine.connect() as conn:
            rows = registry.model_rows(conn, self.ws, name)
        return registered_spec(rows[0]) if rows else None


class ModelRegistry:
    """``settings`` (the operator's allow-list, egress rules, encryption key) is needed to
    write and to resolve models; reading the lists works without it."""

    def __init__(self, engine: Engine, workspace_id: int, settings: Settings | None = None) -> None:
        self.engine = engine
        self.ws = workspace_id
        self._settings = settings
        self.directory = (
            WorkspaceDirectory(engine, workspace_id, settings) if settings is not None else None
        )

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            raise TypeError("this ModelRegistry was made without settings; pass them")
        return self._settings

    def _rows(self, name: str | None = None) -> list[Any]:
        with self.engine.connect() as conn:
            return registry.model_rows(conn, self.ws, name)

    def all(self) -> list[dict[str, Any]]:
        return [model_public(r) for r in self._rows()]

    def get(self, name: str) -> dict[str, Any]:
        rows = self._rows(name)
        if not rows:
            raise NotFoundError(
                f"no model '{name}' in this workspace; register it with POST /api/models"
            )
        return model_public(rows[0])

    def spec(self, name: str, field: str) -> ModelSpec:
        """The registered model as a suite model, its endpoint read from its provider now.
        Resolve it with ``Access.server(registered={name})``: an admin chose the endpoint."""
        rows = self._rows(name)
        if not rows:
            known = ", ".join(r.name for r in self._rows()) or "none yet"
            raise ConfigError(
                Issue(
                    f"no model '{name}' in this workspace",
                    field=field,
                    hint=f"register it with POST /api/models; known: {known}",
                )
            )
        return registered_spec(rows[0])

    def _check(self, spec: ModelSpec, prefix: str = "") -> None:
        """The policy an admin's registration obeys: the kind exists, the base URL may be
        called, a variable is on the operator's allow-list, a credential exists."""
        access = Access.server(self.settings, registered=frozenset({spec.id}))
        found = resolve_endpoint(spec, _EveryVariable(), access, self.directory)
        if isinstance(found, Problem) and not (found.field == "credential" and not spec.credential):
            raise ConfigError(Issue(found.message, field=prefix + found.field, hint=found.hint))

    def upsert(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            spec = ModelSpec.model_validate(body)
        except ValidationError as exc:
            raise ConfigError(
                [Issue(e["msg"], field=".".join(str(p) for p in e["loc"])) for e in exc.errors()]
            ) from None
        kinds = provider_names()
        if spec.provider in kinds:
            self._check(spec)
        with self.engine.begin() as conn:
            if spec.provider in kinds:
                kind = spec.provider
            else:
                row = catalog.find_provider(conn, self.ws, spec.provider)
                if row is None:
                    raise ConfigError(
                        Issue(
                            f"unknown provider '{spec.provider}'",
                            field="provider",
                            hint="use a kind (" + ", ".join(kinds) + ") or a provider "
                            "registered with POST /api/providers",
                        )
                    )
                given = [f for f in ENDPOINT_FIELDS if getattr(spec, f)]
                if given:
                    raise ConfigError(
                        Issue(
                            f"the provider '{spec.provider}' holds the endpoint and key",
                            field=given[0],
                            hint=f"remove {', '.join(given)}, or change the provider",
                        )
                    )
                kind = row.kind
            catalog.upsert_models(
                conn, self.ws, [spec], {spec.id: model_price(spec, kind)}, origin="registry"
            )
        return self.get(spec.id)

    def delete(self, name: str) -> None:
        self.get(name)
        with self.engine.begin() as conn:
            if registry.model_has_results(conn, self.ws, name):
                from panopticon.services.catalog import ConflictError

                raise ConflictError(Issue(f"model '{name}' has results and cannot be deleted"))
            registry.delete_model(conn, self.ws, name)

    # --- providers ---------------------------------------------------------------------

    def providers(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [_provider_public(r) for r in registry.list_providers(conn, self.ws)]

    def _provider(self, conn: Any, provider_id: int) -> Any:
        row = registry.get_provider(conn, self.ws, provider_id)
        if row is None:
            raise NotFoundError(f"no provider {provider_id} in this workspace")
        return row

    def _check_provider(self, kind: str, values: dict[str, Any]) -> None:
        if kind not in provider_names():
            raise ConfigError(
                Issue(
                    f"unknown provider kind '{kind}'",
                    field="kind",
                    hint="use one of: " + ", ".join(provider_names()),
                )
            )
        self._check(
            ModelSpec(
                id="provider",
                provider=kind,
                base_url=values.get("base_url"),
                api_key_env=values.get("api_key_env"),
                credential=values.get("credential"),
            )
        )

    def create_provider(self, body: dict[str, Any]) -> dict[str, Any]:
        from panopticon.services.catalog import ConflictError

        name = body["name"]
        if name in provider_names() or ":" in name:
            raise ConfigError(
                Issue(
                    f"'{name}' cannot name a provider: it is a kind, or has a ':'",
                    field="name",
                    hint="models name providers by name and kinds by kind: pick another name",
                )
            )
        self._check_provider(body["kind"], body)
        with self.engine.begin() as conn:
            if catalog.find_provider(conn, self.ws, name) is not None:
                raise ConflictError(Issue(f"a provider named '{name}' exists", field="name"))
            pid = registry.insert_provider(
                conn,
                self.ws,
                {
                    "name": name,
                    "kind": body["kind"],
                    "base_url": body.get("base_url"),
                    "api_key_env": body.get("api_key_env"),
                    "credential": body.get("credential"),
                },
            )
        return next(p for p in self.providers() if p["id"] == pid)

    def update_provider(self, provider_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Change a provider's endpoint or key: the next call of each of its models uses it."""
        with self.engine.connect() as conn:
            row = self._provider(conn, provider_id)
        merged = {f: changes.get(f, getattr(row, f)) for f in ENDPOINT_FIELDS}
        self._check_provider(row.kind, merged)
        with self.engine.begin() as conn:
            self._provider(conn, provider_id)
            if changes:
                registry.update_provider(conn, provider_id, changes)
        return next(p for p in self.providers() if p["id"] == provider_id)

    def delete_provider(self, provider_id: int) -> None:
        from panopticon.services.catalog import ConflictError

        with self.engine.begin() as conn:
            self._provider(conn, provider_id)
            if registry.provider_in_use(conn, provider_id):
                raise ConflictError(Issue("models use this provider; delete them first"))
            registry.delete_provider(conn, provider_id)
