"""Queries and metrics as the API manages them, always inside one workspace.

The API's bodies follow the Panopticon design: a query is ``{"item", "type", "metadata"}``
(``type`` is its theme); a metric is ``{"item", "type", "metadata"}`` where ``item`` is the
judge prompt and ``type`` its category. A metric made this way is a ``rubric`` metric on a
1 to 10 scale unless the body says otherwise.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from panopticon.errors import ConfigError, Issue, NotFoundError
from panopticon.evaluation.suite import QueryItem
from panopticon.judges.rubric import RubricSpec
from panopticon.store.engine import Engine
from panopticon.store.queries.catalog import metric_version
from panopticon.store.tables import Metric, Query, Result, Score
from panopticon.store.tables.base import utcnow

__all__ = ["ConflictError", "MetricCatalog", "Page", "QueryCatalog"]


class ConflictError(ConfigError):
    """The change would clash with stored data (a duplicate, or rows that refer to it)."""


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


def _query_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "item": row.text,
        "type": row.theme,
        "metadata": row.metadata or {},
        "expected": row.expected,
        "context": row.context,
        "external_id": row.external_id,
        "created_at": row.created_at,
    }


def _content_hash(
    text: str, theme: str, metadata: dict[str, Any], expected: str | None, context: str | None
) -> str:
    item = QueryItem(
        text=text,
        messages=(("user", text),),
        theme=theme,
        expected=expected,
        context=context,
        metadata=metadata,
        source="api",
    )
    return item.content_hash


class QueryCatalog:
    def __init__(self, engine: Engine, workspace_id: int) -> None:
        self.engine = engine
        self.ws = workspace_id

    def _get(self, conn: Connection, query_id: int) -> Any:
        row = conn.execute(
            sa.select(Query).where(Query.c.id == query_id, Query.c.workspace_id == self.ws)
        ).first()
        if row is None:
            raise NotFoundError(f"no query {query_id} in this workspace")
        return row

    def get(self, query_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return _query_dict(self._get(conn, query_id))

    def list(
        self,
        *,
        theme: str | None = None,
        text: str | None = None,
        meta_key: str | None = None,
        meta_value: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page:
        q = sa.select(Query).where(Query.c.workspace_id == self.ws)
        if theme is not None:
            q = q.where(Query.c.theme == theme)
        if text:
            q = q.where(Query.c.text.ilike(f"%{text}%"))
        if meta_key is None:  # the page and the count in the database
            with self.engine.connect() as conn:
                total = conn.scalar(sa.select(sa.func.count()).select_from(q.subquery()))
                page = conn.execute(q.order_by(Query.c.id).limit(limit).offset(offset))
                return Page([_query_dict(r) for r in page], int(total or 0), limit, offset)
        with self.engine.connect() as conn:
            rows = [_query_dict(r) for r in conn.execute(q.order_by(Query.c.id))]
        if meta_key is not None:
            # JSON filters differ between SQLite and PostgreSQL; pages are small
            rows = [
                r
                for r in rows
                if meta_key in r["metadata"]
                and (meta_value is None or str(r["metadata"][meta_key]) == meta_value)
            ]
        return Page(rows[offset : offset + limit], len(rows), limit, offset)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        text, theme = body["item"], body.get("type") or "default"
        metadata = body.get("metadata") or {}
        h = _content_hash(text, theme, metadata, body.get("expected"), body.get("context"))
        with self.engine.begin() as conn:
            existing = conn.execute(
                sa.select(Query.c.id).where(
                    Query.c.workspace_id == self.ws, Query.c.content_hash == h
                )
            ).scalar()
            if existing is not None:
                return _query_dict(self._get(conn, existing))  # the same query, stored once
            qid = conn.execute(
                sa.insert(Query)
                .values(
                    workspace_id=self.ws,
                    text=text,
                    messages=[{"role": "user", "content": text}],
                    theme=theme,
                    metadata=metadata,
                    expected=body.get("expected"),
                    context=body.get("context"),
                    external_id=body.get("external_id"),
                    content_hash=h,
                    created_at=utcnow(),
                )
                .returning(Query.c.id)
            ).scalar_one()
            return _query_dict(self._get(conn, qid))

    def update(self, query_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        with self.engine.begin() as conn:
            row = self._get(conn, query_id)
            current = _query_dict(row)
            merged = {**current, **{k: v for k, v in changes.items() if v is not None}}
            h = _content_hash(
                merged["item"],
                merged["type"],
                merged["metadata"],
                merged["expected"],
                merged["context"],
            )
            clash = conn.execute(
                sa.select(Query.c.id).where(
                    Query.c.workspace_id == self.ws,
                    Query.c.content_hash == h,
                    Query.c.id != query_id,
                )
            ).scalar()
            if clash is not None:
                raise ConflictError(
                    Issue(
                        f"query {clash} already has this content",
                        field="item",
                        hint=f"use query {clash}",
                    )
                )
            if self._used(conn, query_id) and merged["item"] != current["item"]:
                raise ConflictError(
                    Issue(
                        "this query has results; changing its text would mislabel them",
                        field="item",
                        hint="create a new query instead",
                    )
                )
            conn.execute(
                sa.update(Query)
                .where(Query.c.id == query_id)
                .values(
                    text=merged["item"],
                    messages=[{"role": "user", "content": merged["item"]}],
                    theme=merged["type"],
                    metadata=merged["metadata"],
                    expected=merged["expected"],
                    context=merged["context"],
                    content_hash=h,
                )
            )
            return _query_dict(self._get(conn, query_id))

    @staticmethod
    def _used(conn: Connection, query_id: int) -> bool:
        return (
            conn.execute(
                sa.select(Result.c.id).where(Result.c.query_id == query_id).limit(1)
            ).first()
            is not None
        )

    def delete(self, query_id: int) -> None:
        with self.engine.begin() as conn:
            self._get(conn, query_id)
            if self._used(conn, query_id):
                raise ConflictError(
                    Issue(
                        "this query has results and cannot be deleted",
                        hint="results keep their query; delete the runs first",
                    )
                )
            conn.execute(sa.delete(Query).where(Query.c.id == query_id))


def _metric_dict(row: Any) -> dict[str, Any]:
    d = row.definition or {}
    return {
        "id": row.id,
        "item": d.get("prompt"),
        "type": row.category or row.name,
        "name": row.name,
        "kind": row.type,
        "scale": d.get("scale"),
        "threshold": d.get("threshold"),
        "metadata": row.metadata or {},
        "version": row.version,
        "created_at": row.created_at,
    }


class MetricCatalog:
    def __init__(self, engine: Engine, workspace_id: int) -> None:
        self.engine = engine
        self.ws = workspace_id

    def _get(self, conn: Connection, metric_id: int) -> Any:
        row = conn.execute(
            sa.select(Metric).where(Metric.c.id == metric_id, Metric.c.workspace_id == self.ws)
        ).first()
        if row is None:
            raise NotFoundError(f"no metric {metric_id} in this workspace")
        return row

    def get(self, metric_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return _metric_dict(self._get(conn, metric_id))

    def list(
        self, *, type: str | None = None, text: str | None = None, limit: int = 50, offset: int = 0
    ) -> Page:
        q = sa.select(Metric).where(Metric.c.workspace_id == self.ws)
        with self.engine.connect() as conn:
            rows = [_metric_dict(r) for r in conn.execute(q.order_by(Metric.c.id))]
        if type is not None:
            rows = [r for r in rows if r["type"] == type]
        if text:
            rows = [r for r in rows if text.lower() in (r["item"] or "").lower()]
        return Page(rows[offset : offset + limit], len(rows), limit, offset)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        category = body.get("type") or "metric"
        name = body.get("name") or category
        scale = body.get("scale") or [1, 10]
        try:
            spec = RubricSpec.model_validate(
                {
                    "name": name,
                    "type": "rubric",
                    "prompt": body["item"],
                    "scale": scale,
                    "threshold": body.get("threshold"),
                }
            )
        except ValidationError as exc:
            raise ConfigError(
                [
                    Issue(
                        e["msg"].removeprefix("Value error, "),
                        field=".".join(str(p) for p in e["loc"]) or "body",
                    )
                    for e in exc.errors()
                ]
            ) from None
        version = metric_version(spec)
        definition = spec.model_dump(mode="json")
        with self.engine.begin() as conn:
            existing = conn.execute(
                sa.select(Metric.c.id).where(
                    Metric.c.workspace_id == self.ws,
                    Metric.c.name == name,
                    Metric.c.version == version,
                )
            ).scalar()
            if existing is not None:
                conn.execute(
                    sa.update(Metric)
                    .where(Metric.c.id == existing)
                    .values(category=category, metadata=body.get("metadata") or {})
                )
                return _metric_dict(self._get(conn, existing))
            mid = conn.execute(
                sa.insert(Metric)
                .values(
                    workspace_id=self.ws,
                    name=name,
                    type="rubric",
                    definition=definition,
                    version=version,
                    category=category,
                    metadata=body.get("metadata") or {},
                    created_at=utcnow(),
                )
                .returning(Metric.c.id)
            ).scalar_one()
            return _metric_dict(self._get(conn, mid))

    def update(self, metric_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        with self.engine.begin() as conn:
            row = self._get(conn, metric_id)
            used = (
                conn.execute(
                    sa.select(Score.c.id).where(Score.c.metric_id == metric_id).limit(1)
                ).first()
                is not None
            )
            definition = dict(row.definition or {})
            if changes.get("item") is not None and changes["item"] != definition.get("prompt"):
                if used:
                    raise ConflictError(
                        Issue(
                            "this metric has scores; a new prompt is a new metric version",
                            field="item",
                            hint="POST it to /api/metrics with the same name",
                        )
                    )
                definition["prompt"] = changes["item"]
            values: dict[str, Any] = {"definition": definition}
            if changes.get("type") is not None:
                values["category"] = changes["type"]
            if changes.get("metadata") is not None:
                values["metadata"] = changes["metadata"]
            values["version"] = (
                hashlib.sha256(
                    orjson.dumps([definition, row.name], option=orjson.OPT_SORT_KEYS)
                ).hexdigest()[:16]
                if definition != row.definition
                else row.version
            )
            conn.execute(sa.update(Metric).where(Metric.c.id == metric_id).values(**values))
            return _metric_dict(self._get(conn, metric_id))

    def delete(self, metric_id: int) -> None:
        with self.engine.begin() as conn:
            self._get(conn, metric_id)
            if (
                conn.execute(
                    sa.select(Score.c.id).where(Score.c.metric_id == metric_id).limit(1)
                ).first()
                is not None
            ):
                raise ConflictError(Issue("this metric has scores and cannot be deleted"))
            conn.execute(sa.delete(Metric).where(Metric.c.id == metric_id))
