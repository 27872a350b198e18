"""Workspaces, the model registry, queries and metrics: upserts for a suite about to run."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.errors import ConfigError, Issue, NotFoundError
from panopticon.evaluation.suite import ModelSpec, QueryItem
from panopticon.judges.base import MetricSpec, build_metric
from panopticon.providers.pricing import Price
from panopticon.store.tables import Dataset, DatasetItem, Metric, Model, Provider, Query, Workspace
from panopticon.store.tables.base import utcnow

__all__ = [
    "ensure_workspace",
    "find_provider",
    "provider_for",
    "registered_conflicts",
    "sync_datasets",
    "upsert_metrics",
    "upsert_models",
    "upsert_queries",
]

T = TypeVar("T")
CHUNK = 500


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def ensure_workspace(conn: Connection, name: str, *, create: bool = True) -> int:
    found = conn.execute(sa.select(Workspace.c.id).where(Workspace.c.name == name)).scalar()
    if found is not None:
        return int(found)
    if not create:
        raise NotFoundError(f"no workspace named '{name}'")
    conn.execute(sa.insert(Workspace).values(name=name))
    return int(conn.execute(sa.select(Workspace.c.id).where(Workspace.c.name == name)).scalar_one())


def find_provider(conn: Connection, workspace_id: int, name: str) -> Any:
    """The provider row of that name in the workspace, or None."""
    return conn.execute(
        sa.select(Provider).where(Provider.c.workspace_id == workspace_id, Provider.c.name == name)
    ).first()


def _same(column: Any, value: str | None) -> Any:
    return column.is_(None) if value is None else column == value


def provider_for(
    conn: Connection,
    workspace_id: int,
    kind: str,
    base_url: str | None,
    credential: str | None = None,
    api_key_env: str | None = None,
) -> int:
    """The provider row of exactly this endpoint and key, created when there is none (named
    ``kind`` or ``kind:base_url``, with the key's name added when it has one)."""
    found = conn.execute(
        sa.select(Provider.c.id)
        .where(
            Provider.c.workspace_id == workspace_id,
            Provider.c.kind == kind,
            _same(Provider.c.base_url, base_url),
            _same(Provider.c.credential, credential),
            _same(Provider.c.api_key_env, api_key_env),
        )
        .order_by(Provider.c.id)
        .limit(1)
    ).scalar()
    if found is not None:
        return int(found)
    name = f"{kind}:{base_url}" if base_url else kind
    if credential:
        name += f" [credential {credential}]"
    elif api_key_env:
        name += f" [${api_key_env}]"
    name = name[:190]
    candidate, n = name, 1
    while find_provider(conn, workspace_id, candidate) is not None:
        n += 1
        candidate = f"{name} #{n}"
    return int(
        conn.execute(
            sa.insert(Provider)
            .values(
                workspace_id=workspace_id,
                name=candidate,
                kind=kind,
                base_url=base_url,
                credential=credential,
                api_key_env=api_key_env,
                options={},
                created_at=utcnow(),
            )
            .returning(Provider.c.id)
        ).scalar_one()
    )


ENDPOINT_FIELDS = frozenset({"base_url", "api_key_env", "credential"})


def upsert_models(
    conn: Connection,
    workspace_id: int,
    models: list[ModelSpec],
    prices: dict[str, Price | None],
    *,
    origin: str = "suite",
) -> dict[str, int]:
    """Register the suite's models on their providers; returns model id by suite id. A model
    naming a registered provider is registered on it; one giving a kind, on the provider row
    of its endpoint and key (created if new). The endpoint is kept on the provider only.

    ``origin`` is who writes: "registry" (an admin: the row is written as given and becomes
    a registered model) or "suite" (a suite about to run). A suite never changes a
    registered model: its definition must be the registered one, else ConfigError names
    what differs (models suites created are updated as given)."""
    from panopticon.providers.base import provider_names

    kinds = provider_names()
    ids: dict[str, int] = {}
    for m in models:
        named = None if m.provider in kinds else find_provider(conn, workspace_id, m.provider)
        price = prices.get(m.id)
        settings = m.record(exclude={"id", "price", *ENDPOINT_FIELDS})
        found = _model_row(conn, workspace_id, m.id)
        if found is not None and found.origin == "registry" and origin == "suite":
            issue = _conflict(found, m, named, settings, price)
            if issue is not None:
                raise ConfigError(issue)
            ids[m.id] = int(found.id)
            continue
        if named is not None:
            pid = int(named.id)
        else:
            pid = provider_for(
                conn, workspace_id, m.provider, m.base_url, m.credential, m.api_key_env
            )
        values: dict[str, Any] = dict(
            provider_id=pid,
            provider_model=m.provider_model,
            settings=settings,
            price_input=price.input if price else None,
            price_output=price.output if price else None,
        )
        if found is None:
            mid = conn.execute(
                sa.insert(Model)
                .values(workspace_id=workspace_id, name=m.id, origin=origin, **values)
                .returning(Model.c.id)
            ).scalar_one()
        else:
            mid = found.id
            conn.execute(sa.update(Model).where(Model.c.id == mid).values(origin=origin, **values))
        ids[m.id] = int(mid)
    return ids


def registered_conflicts(
    conn: Connection, workspace_id: int, models: list[ModelSpec], prices: dict[str, Price | None]
) -> list[Issue]:
    """Why :func:`upsert_models` would refuse these suite models (each differs from the
    registered model of its id), read only: for a dry run."""
    from panopticon.providers.base import provider_names

    kinds = provider_names()
    issues = []
    for m in models:
        found = _model_row(conn, workspace_id, m.id)
        if found is None or found.origin != "registry":
            continue
        named = None if m.provider in kinds else find_provider(conn, workspace_id, m.provider)
        settings = m.record(exclude={"id", "price", *ENDPOINT_FIELDS})
        issue = _conflict(found, m, named, settings, prices.get(m.id))
        if issue is not None:
            issues.append(issue)
    return issues


def _model_row(conn: Connection, workspace_id: int, name: str) -> Any:
    return conn.execute(
        sa.select(Model, Provider.c.kind, Provider.c.base_url, Provider.c.credential)
        .add_columns(Provider.c.api_key_env, Provider.c.options.label("provider_options"))
        .join(Provider, Provider.c.id == Model.c.provider_id)
        .where(Model.c.workspace_id == workspace_id, Model.c.name == name)
    ).first()


def _conflict(
    row: Any, m: ModelSpec, named: Any, settings: dict[str, Any], price: Price | None
) -> Issue | None:
    differences = _differences(row, m, named, settings, price)
    if not differences:
        return None
    return Issue(
        f"model '{m.id}' is registered in this workspace, and the suite's definition of it "
        f"differs: {'; '.join(differences)}. A suite never changes a registered model (the "
        "gateway and other runs use it)",
        field=f"models.{m.id}",
        hint=f"rename the model in the suite (id: {m.id}-local) to run your definition, or "
        f"write just '- {m.id}' (no inline definition) to use the registered one",
    )


def _differences(
    row: Any, m: ModelSpec, named: Any, settings: dict[str, Any], price: Price | None
) -> list[str]:
    """What a suite's definition of a registered model changes, each as
    "field 'suite value' (registered: 'value')"; empty when it is the registered model.
    Compared as they take effect: the endpoint and key (from the provider), the provider
    model, the settings sent and the price."""
    if named is not None:
        endpoint = (named.kind, named.base_url, named.credential, named.api_key_env)
    else:
        endpoint = (m.provider, m.base_url, m.credential, m.api_key_env)
    registered_endpoint = (row.kind, row.base_url, row.credential, row.api_key_env)
    pairs: list[tuple[str, Any, Any]] = list(
        zip(
            ("provider", "base_url", "credential", "api_key_env"),
            endpoint,
            registered_endpoint,
            strict=True,
        )
    )
    pairs.append(("model", m.provider_model, row.provider_model))
    stored = dict(row.settings or {})
    options = {**(row.provider_options or {}), **(stored.get("options") or {})}
    for key in sorted(set(settings) | set(stored)):
        if key in ("provider", "model"):
            continue  # compared above, as they take effect
        theirs = options if key == "options" else stored.get(key)
        pairs.append((key, settings.get(key), theirs))
    mine_price = None if price is None else {"input": price.input, "output": price.output}
    theirs_price = (
        None if row.price_input is None else {"input": row.price_input, "output": row.price_output}
    )
    pairs.append(("price", mine_price, theirs_price))
    return [
        f"{key} {_shown(mine)} (registered: {_shown(theirs)})"
        for key, mine, theirs in pairs
        if mine != theirs and not (key == "options" and not mine and not theirs)
    ]


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return f"'{value}'"
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def metric_version(spec: MetricSpec) -> str:
    """Changes when the definition or the metric's implementation (its prompt template,
    its parsing: ``Metric.version``) changes, so scores from either are never mixed."""
    implementation = type(build_metric(spec)).version
    payload = orjson.dumps(
        [spec.model_dump(mode="json", by_alias=True), implementation], option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(payload).hexdigest()[:16]


def upsert_metrics(conn: Connection, workspace_id: int, specs: list[MetricSpec]) -> dict[str, int]:
    """One row per metric definition; a changed definition gets a new version row."""
    ids: dict[str, int] = {}
    for spec in specs:
        version = metric_version(spec)
        mid = conn.execute(
            sa.select(Metric.c.id).where(
                Metric.c.workspace_id == workspace_id,
                Metric.c.name == spec.name,
                Metric.c.version == version,
            )
        ).scalar()
        if mid is None:
            mid = conn.execute(
                sa.insert(Metric)
                .values(
                    workspace_id=workspace_id,
                    name=spec.name,
                    type=spec.type,
                    definition=spec.model_dump(mode="json", by_alias=True),
                    version=version,
                )
                .returning(Metric.c.id)
            ).scalar_one()
        ids[spec.name] = int(mid)
    return ids


def upsert_queries(conn: Connection, workspace_id: int, queries: list[QueryItem]) -> list[int]:
    """Store queries once per content; returns their ids in the order given."""
    hashes = [q.content_hash for q in queries]
    unique = list(dict.fromkeys(hashes))
    found: dict[str, int] = {}
    for part in chunks(unique):
        for h, qid in conn.execute(
            sa.select(Query.c.content_hash, Query.c.id).where(
                Query.c.workspace_id == workspace_id, Query.c.content_hash.in_(part)
            )
        ):
            found[h] = int(qid)
    by_hash = {q.content_hash: q for q in queries}
    missing = [h for h in unique if h not in found]
    if missing:
        now = utcnow()
        rows = [
            {
                "workspace_id": workspace_id,
                "text": by_hash[h].text,
                "messages": [{"role": r, "content": c} for r, c in by_hash[h].messages],
                "theme": by_hash[h].theme,
                "metadata": by_hash[h].metadata,
                "expected": by_hash[h].expected,
                "context": by_hash[h].context,
                "external_id": by_hash[h].external_id,
                "content_hash": h,
                "created_at": now,
            }
            for h in missing
        ]
        conn.execute(sa.insert(Query), rows)
        for part in chunks(missing):
            for h, qid in conn.execute(
                sa.select(Query.c.content_hash, Query.c.id).where(
                    Query.c.workspace_id == workspace_id, Query.c.content_hash.in_(part)
                )
            ):
                found[h] = int(qid)
    return [found[h] for h in hashes]


def sync_datasets(
    conn: Connection, workspace_id: int, files: dict[str, list[int]]
) -> dict[str, int]:
    """Record each dataset file (absolute path -> its query ids, in order) as a dataset.

    A dataset is named by its file name; a different file with the same name gets the name
    with a short hash of its path. Items are replaced when the file's queries changed.
    """
    ids: dict[str, int] = {}
    for path, query_ids in files.items():
        name = Path(path).name
        row = conn.execute(
            sa.select(Dataset.c.id, Dataset.c.source).where(
                Dataset.c.workspace_id == workspace_id, Dataset.c.name == name
            )
        ).first()
        if row is not None and row.source != path:
            name = (
                f"{Path(path).stem}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"
                f"{Path(path).suffix}"
            )
            row = conn.execute(
                sa.select(Dataset.c.id, Dataset.c.source).where(
                    Dataset.c.workspace_id == workspace_id, Dataset.c.name == name
                )
            ).first()
        if row is None:
            dataset_id = int(
                conn.execute(
                    sa.insert(Dataset)
                    .values(
                        workspace_id=workspace_id,
                        name=name,
                        source=path,
                        created_at=utcnow(),
                    )
                    .returning(Dataset.c.id)
                ).scalar_one()
            )
            current: list[int] = []
        else:
            dataset_id = int(row.id)
            current = list(
                conn.execute(
                    sa.select(DatasetItem.c.query_id)
                    .where(DatasetItem.c.dataset_id == dataset_id)
                    .order_by(DatasetItem.c.position)
                ).scalars()
            )
        if current != query_ids:
            conn.execute(sa.delete(DatasetItem).where(DatasetItem.c.dataset_id == dataset_id))
            if query_ids:
                conn.execute(
                    sa.insert(DatasetItem),
                    [
                        {"dataset_id": dataset_id, "query_id": q, "position": i}
                        for i, q in enumerate(query_ids)
                    ],
                )
        ids[path] = dataset_id
    return ids
