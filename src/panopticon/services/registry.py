"""The model registry of a workspace: the models runs used, and models added by the API.

A registered model is a suite model (``ModelSpec``): provider, name sent, endpoint, the
environment variable that holds its key (never the key), parameters, limits and price.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from panopticon.errors import ConfigError, Issue, NotFoundError
from panopticon.evaluation.suite import ModelSpec
from panopticon.providers.pricing import Price, lookup_price
from panopticon.store.engine import Engine
from panopticon.store.queries import catalog
from panopticon.store.tables import Model, Provider, Result

__all__ = ["ModelRegistry", "model_public"]


def model_public(row: Any) -> dict[str, Any]:
    settings = dict(row.settings or {})
    price = (
        None if row.price_input is None else {"input": row.price_input, "output": row.price_output}
    )
    return {
        "id": row.name,
        "provider": row.kind,
        "model": row.provider_model,
        "base_url": settings.get("base_url"),
        "api_key_env": settings.get("api_key_env"),
        "params": settings.get("params") or {},
        "concurrency": settings.get("concurrency"),
        "price": price,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


class ModelRegistry:
    def __init__(self, engine: Engine, workspace_id: int) -> None:
        self.engine = engine
        self.ws = workspace_id

    def _rows(self, name: str | None = None) -> list[Any]:
        q = (
            sa.select(Model, Provider.c.kind)
            .join(Provider, Provider.c.id == Model.c.provider_id)
            .where(Model.c.workspace_id == self.ws)
            .order_by(Model.c.name)
        )
        if name is not None:
            q = q.where(Model.c.name == name)
        with self.engine.connect() as conn:
            return list(conn.execute(q))

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
        row = rows[0]
        data = {**(row.settings or {}), "id": row.name}
        if row.price_input is not None:
            data["price"] = {"input": row.price_input, "output": row.price_output}
        return ModelSpec.model_validate(data)

    def upsert(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            spec = ModelSpec.model_validate(body)
        except ValidationError as exc:
            raise ConfigError(
                [Issue(e["msg"], field=".".join(str(p) for p in e["loc"])) for e in exc.errors()]
            ) from None
        from panopticon.providers.base import provider_names

        if spec.provider not in provider_names():
            raise ConfigError(
                Issue(
                    f"unknown provider '{spec.provider}'",
                    field="provider",
                    hint="use one of: " + ", ".join(provider_names()),
                )
            )
        price = (
            Price(spec.price.input, spec.price.output)
            if spec.price
            else lookup_price(spec.provider, spec.provider_model)
        )
        with self.engine.begin() as conn:
            catalog.upsert_models(conn, self.ws, [spec], {spec.id: price})
        return self.get(spec.id)

    def delete(self, name: str) -> None:
        self.get(name)
        with self.engine.begin() as conn:
            mid = conn.execute(
                sa.select(Model.c.id).where(Model.c.workspace_id == self.ws, Model.c.name == name)
            ).scalar_one()
            if (
                conn.execute(
                    sa.select(Result.c.id).where(Result.c.model_id == mid).limit(1)
                ).first()
                is not None
            ):
                from panopticon.services.catalog import ConflictError

                raise ConflictError(Issue(f"model '{name}' has results and cannot be deleted"))
            conn.execute(sa.delete(Model).where(Model.c.id == mid))

    def providers(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(Provider)
                .where(Provider.c.workspace_id == self.ws)
                .order_by(Provider.c.name)
            )
            return [
                {
                    "id": r.id,
                    "name": r.name,
                    "kind": r.kind,
                    "base_url": r.base_url,
                    "api_key_env": r.api_key_env,
                    "created_at": r.created_at,
                }
                for r in rows
            ]

    # --- providers ---------------------------------------------------------------------
    def _provider(self, conn: Any, provider_id: int) -> Any:
        row = conn.execute(
            sa.select(Provider).where(
                Provider.c.id == provider_id, Provider.c.workspace_id == self.ws
            )
        ).first()
        if row is None:
            raise NotFoundError(f"no provider {provider_id} in this workspace")
        return row

    def create_provider(self, body: dict[str, Any]) -> dict[str, Any]:
        from panopticon.providers.base import provider_names
        from panopticon.services.catalog import ConflictError
        from panopticon.store.tables.base import utcnow

        if body["kind"] not in provider_names():
            raise ConfigError(
                Issue(
                    f"unknown provider kind '{body['kind']}'",
                    field="kind",
                    hint="use one of: " + ", ".join(provider_names()),
                )
            )
        with self.engine.begin() as conn:
            if conn.execute(
                sa.select(Provider.c.id).where(
                    Provider.c.workspace_id == self.ws, Provider.c.name == body["name"]
                )
            ).first():
                raise ConflictError(
                    Issue(f"a provider named '{body['name']}' exists", field="name")
                )
            pid = conn.execute(
                sa.insert(Provider)
                .values(
                    workspace_id=self.ws,
                    name=body["name"],
                    kind=body["kind"],
                    base_url=body.get("base_url"),
                    api_key_env=body.get("api_key_env"),
                    options={},
                    created_at=utcnow(),
                )
                .returning(Provider.c.id)
            ).scalar_one()
        return next(p for p in self.providers() if p["id"] == pid)

    def update_provider(self, provider_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        with self.engine.begin() as conn:
            self._provider(conn, provider_id)
            if changes:
                conn.execute(
                    sa.update(Provider).where(Provider.c.id == provider_id).values(**changes)
                )
        return next(p for p in self.providers() if p["id"] == provider_id)

    def delete_provider(self, provider_id: int) -> None:
        from panopticon.services.catalog import ConflictError

        with self.engine.begin() as conn:
            self._provider(conn, provider_id)
            if conn.execute(
                sa.select(Model.c.id).where(Model.c.provider_id == provider_id).limit(1)
            ).first():
                raise ConflictError(Issue("models use this provider; delete them first"))
            conn.execute(sa.delete(Provider).where(Provider.c.id == provider_id))
