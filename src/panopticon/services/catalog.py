"""Queries and metrics as the API and the dashboard manage them, always inside one workspace.

The API's bodies follow the Panopticon design: a query is ``{"item", "type", "metadata"}``
(``type`` is its theme); a metric is ``{"item", "type", "metadata"}`` where ``item`` is the
judge prompt and ``type`` its category. A metric made this way is a ``rubric`` metric on a
1 to 10 scale unless the body says otherwise.

Two rules live here and nowhere else: a web form becomes the same body as the API's JSON
(``body_from_form``), and every create or edit re-embeds the row for semantic search, so a
search never ranks an edited row by its old text.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from pydantic import Field, ValidationError

from panopticon.errors import ConfigError, ConflictError, Issue, NotFoundError
from panopticon.evaluation.suite import QueryItem
from panopticon.judges.base import spec_class
from panopticon.judges.rubric import RubricSpec
from panopticon.services.bodies import Body
from panopticon.services.search import Search
from panopticon.settings import Settings
from panopticon.store.engine import Engine
from panopticon.store.queries import library
from panopticon.store.queries.catalog import metric_version

__all__ = [
    "ConflictError",
    "MetricCatalog",
    "MetricCreate",
    "MetricRecord",
    "MetricUpdate",
    "Page",
    "QueryCatalog",
    "QueryCreate",
    "QueryRecord",
    "QueryUpdate",
    "body_from_form",
]

T = TypeVar("T")
Finite = Annotated[float, Field(allow_inf_nan=False)]


# -- what comes in ----------------------------------------------------------------------------


class QueryCreate(Body):
    item: str = Field(min_length=1, max_length=100_000, description="The prompt.")
    type: str = Field(default="default", min_length=1, max_length=200, description="The theme.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    expected: str | None = Field(default=None, max_length=100_000)
    context: str | None = Field(default=None, max_length=1_000_000)
    external_id: str | None = Field(default=None, max_length=200)


class QueryUpdate(Body):
    item: str | None = Field(default=None, min_length=1, max_length=100_000)
    type: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: dict[str, Any] | None = None
    expected: str | None = Field(default=None, max_length=100_000)
    context: str | None = Field(default=None, max_length=1_000_000)


class MetricCreate(Body):
    item: str = Field(min_length=1, max_length=100_000, description="The judge prompt.")
    type: str = Field(
        default="metric", min_length=1, max_length=200, description="The metric's category."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    scale: tuple[Finite, Finite] | None = None
    threshold: Finite | None = None


class MetricUpdate(Body):
    item: str | None = Field(default=None, min_length=1, max_length=100_000)
    type: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: dict[str, Any] | None = None


def _form_json(form: Mapping[str, str], key: str) -> dict[str, Any] | None:
    raw = form.get(key, "").strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        where = f" at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ConfigError(Issue(f"not valid JSON{where}", field=key)) from None
    if not isinstance(value, dict):
        raise ConfigError(Issue('must be a JSON object, like {"lang": "en"}', field=key))
    return value


def _form_float(form: Mapping[str, str], key: str, field: str) -> float | None:
    raw = form.get(key, "").strip()
    if not raw:
        return None
    try:
        f = float(raw)
    except ValueError:
        raise ConfigError(Issue(f"'{raw}' is not a number", field=field)) from None
    if not math.isfinite(f):
        raise ConfigError(Issue("must be a finite number", field=field))
    return f


def _validated(model: type[Body], body: dict[str, Any]) -> Body:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ConfigError(
            [
                Issue(
                    str(e["msg"]).removeprefix("Value error, "),
                    field=".".join(str(p) for p in e["loc"]) or None,
                )
                for e in exc.errors()
            ]
        ) from None


def body_from_form(kind: str, form: Mapping[str, str], *, update: bool) -> Body:
    """A web form as the API body it stands for (``QueryCreate``, ``MetricUpdate``, ...):
    blank fields are not given, ``metadata`` is JSON, a metric's scale is two fields."""
    fields = ["item", "type"]
    if kind == "query":
        fields += ["expected", "context"]
    elif not update:
        fields += ["name"]
    body: dict[str, Any] = {k: form[k].strip() for k in fields if form.get(k, "").strip()}
    metadata = _form_json(form, "metadata")
    if metadata is not None:
        body["metadata"] = metadata
    if kind == "metric" and not update:
        threshold = _form_float(form, "threshold", "threshold")
        if threshold is not None:
            body["threshold"] = threshold
        low = _form_float(form, "scale_low", "scale")
        high = _form_float(form, "scale_high", "scale")
        if low is not None and high is not None:
            body["scale"] = (low, high)
    model: type[Body]
    if kind == "query":
        model = QueryUpdate if update else QueryCreate
    else:
        model = MetricUpdate if update else MetricCreate
    return _validated(model, body)


# -- what goes out ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class QueryRecord:
    id: int
    item: str
    type: str
    metadata: dict[str, Any]
    expected: str | None
    context: str | None
    external_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> QueryRecord:
        return cls(
            id=int(row.id),
            item=row.text,
            type=row.theme,
            metadata=row.metadata or {},
            expected=row.expected,
            context=row.context,
            external_id=row.external_id,
            created_at=row.created_at,
        )


@dataclass(frozen=True)
class MetricRecord:
    id: int
    item: str | None
    type: str
    name: str
    kind: str
    scale: list[float] | None
    threshold: float | None
    metadata: dict[str, Any]
    version: str
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> MetricRecord:
        d = row.definition or {}
        scale, threshold = d.get("scale"), d.get("threshold")
        # a row stored before NaN was refused holds null there (JSON has no NaN): it is
        # shown as "no scale" instead of failing every listing of the workspace's metrics
        if not (isinstance(scale, list) and all(isinstance(x, int | float) for x in scale)):
            scale = None
        if not isinstance(threshold, int | float):
            threshold = None
        return cls(
            id=int(row.id),
            item=d.get("prompt"),
            type=row.category or row.name,
            name=row.name,
            kind=row.type,
            scale=scale,
            threshold=threshold,
            metadata=row.metadata or {},
            version=row.version,
            created_at=row.created_at,
        )


# -- the catalogs -----------------------------------------------------------------------------


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


class _Catalog:
    kind = ""

    def __init__(
        self, engine: Engine, settings: Settings, env: Mapping[str, str], workspace_id: int
    ) -> None:
        self.engine = engine
        self.ws = workspace_id
        self.search_index = Search(engine, settings, env, workspace_id)

    def _reindex(self, row_id: int) -> None:
        self.search_index.index_quietly(self.kind, [row_id])

    def search(self, text: str, k: int) -> tuple[str, str | None, list[tuple[int, float]]]:
        """(mode, note, [(id, score)]) best first: see ``services.search``."""
        return self.search_index.search(self.kind, text, k)


class QueryCatalog(_Catalog):
    kind = "query"

    def _get(self, conn: Any, query_id: int) -> Any:
        row = library.query_row(conn, self.ws, query_id)
        if row is None:
            raise NotFoundError(f"no query {query_id} in this workspace")
        return row

    def get(self, query_id: int) -> QueryRecord:
        with self.engine.connect() as conn:
            return QueryRecord.of(self._get(conn, query_id))

    def list(
        self,
        *,
        theme: str | None = None,
        text: str | None = None,
        meta_key: str | None = None,
        meta_value: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[QueryRecord]:
        with self.engine.connect() as conn:
            rows, total = library.list_queries(
                conn,
                self.ws,
                theme=theme,
                text=text,
                meta_key=meta_key,
                meta_value=meta_value,
                limit=limit,
                offset=offset,
            )
        return Page([QueryRecord.of(r) for r in rows], total, limit, offset)

    def create(self, body: QueryCreate) -> QueryRecord:
        """The same content is stored once: a second create answers the first row."""
        h = _content_hash(body.item, body.type, body.metadata, body.expected, body.context)
        with self.engine.begin() as conn:
            qid = library.insert_query_once(
                conn,
                self.ws,
                {
                    "text": body.item,
                    "messages": [{"role": "user", "content": body.item}],
                    "theme": body.type,
                    "metadata": body.metadata,
                    "expected": body.expected,
                    "context": body.context,
                    "external_id": body.external_id,
                    "content_hash": h,
                },
            )
            record = QueryRecord.of(self._get(conn, qid))
        self._reindex(record.id)
        return record

    def update(self, query_id: int, changes: QueryUpdate) -> QueryRecord:
        given = {k: v for k, v in changes.model_dump(exclude_unset=True).items() if v is not None}
        with self.engine.begin() as conn:
            current = QueryRecord.of(self._get(conn, query_id))
            item = given.get("item", current.item)
            theme = given.get("type", current.type)
            metadata = given.get("metadata", current.metadata)
            expected = given.get("expected", current.expected)
            context = given.get("context", current.context)
            h = _content_hash(item, theme, metadata, expected, context)
            clash = library.query_with_hash(conn, self.ws, h, other_than=query_id)
            if clash is not None:
                raise ConflictError(
                    Issue(
                        f"query {clash} already has this content",
                        field="item",
                        hint=f"use query {clash}",
                    )
                )
            if item != current.item and library.query_has_results(conn, query_id):
                raise ConflictError(
                    Issue(
                        "this query has results; changing its text would mislabel them",
                        field="item",
                        hint="create a new query instead",
                    )
                )
            library.update_query(
                conn,
                query_id,
                {
                    "text": item,
                    "messages": [{"role": "user", "content": item}],
                    "theme": theme,
                    "metadata": metadata,
                    "expected": expected,
                    "context": context,
                    "content_hash": h,
                },
            )
            record = QueryRecord.of(self._get(conn, query_id))
        if record.item != current.item:
            self._reindex(record.id)
        return record

    def save_form(self, form: Mapping[str, str], query_id: int | None = None) -> int:
        """A dashboard form saved as the API saves its body: a new query, or an edit."""
        body = body_from_form(self.kind, form, update=query_id is not None)
        if isinstance(body, QueryUpdate) and query_id is not None:
            return self.update(query_id, body).id
        assert isinstance(body, QueryCreate)
        return self.create(body).id

    def delete(self, query_id: int) -> None:
        with self.engine.begin() as conn:
            self._get(conn, query_id)
            if library.query_has_results(conn, query_id):
                raise ConflictError(
                    Issue(
                        "this query has results and cannot be deleted",
                        hint="results keep their query; delete the runs first",
                    )
                )
            library.delete_query(conn, query_id)


def _version(kind: str, name: str, definition: dict[str, Any]) -> str:
    """The version of an edited definition, by the same rule as a new metric's."""
    cls = spec_class(kind)
    if cls is not None:
        try:
            return metric_version(cls.model_validate(definition))
        except ValidationError:
            pass  # a definition stored by an older release: hashed as it stands
    payload = orjson.dumps([definition, name], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()[:16]


class MetricCatalog(_Catalog):
    kind = "metric"

    def _get(self, conn: Any, metric_id: int) -> Any:
        row = library.metric_row(conn, self.ws, metric_id)
        if row is None:
            raise NotFoundError(f"no metric {metric_id} in this workspace")
        return row

    def get(self, metric_id: int) -> MetricRecord:
        with self.engine.connect() as conn:
            return MetricRecord.of(self._get(conn, metric_id))

    @staticmethod
    def definitions_in(
        engine: Engine, workspace_id: int, ids: list[int], field: str
    ) -> list[dict[str, Any]]:
        """The stored definitions of these metrics of the workspace, in this order; a
        ConfigError naming ``field`` lists the ids this workspace does not have."""
        with engine.connect() as conn:
            rows = library.metric_rows(conn, workspace_id, ids)
        missing = [i for i in ids if i not in rows]
        if missing:
            raise ConfigError(
                Issue(
                    f"no metric {', '.join(map(str, missing))} in this workspace",
                    field=field,
                    hint="create metrics with POST /api/metrics",
                )
            )
        return [dict(rows[i].definition) for i in ids]

    def list(
        self, *, type: str | None = None, text: str | None = None, limit: int = 50, offset: int = 0
    ) -> Page[MetricRecord]:
        with self.engine.connect() as conn:
            rows, total = library.list_metrics(
                conn, self.ws, category=type, text=text, limit=limit, offset=offset
            )
        return Page([MetricRecord.of(r) for r in rows], total, limit, offset)

    def create(self, body: MetricCreate) -> MetricRecord:
        """The same name and definition is stored once; creating it again updates its
        category and metadata."""
        category = body.type
        name = body.name or category
        try:
            spec = RubricSpec.model_validate(
                {
                    "name": name,
                    "type": "rubric",
                    "prompt": body.item,
                    "scale": body.scale or (1, 10),
                    "threshold": body.threshold,
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
        with self.engine.begin() as conn:
            mid, inserted = library.insert_metric_once(
                conn,
                self.ws,
                {
                    "name": name,
                    "type": "rubric",
                    "definition": spec.model_dump(mode="json"),
                    "version": metric_version(spec),
                    "category": category,
                    "metadata": body.metadata,
                },
            )
            if not inserted:
                library.update_metric(conn, mid, {"category": category, "metadata": body.metadata})
            record = MetricRecord.of(self._get(conn, mid))
        if inserted:
            self._reindex(record.id)
        return record

    def update(self, metric_id: int, changes: MetricUpdate) -> MetricRecord:
        with self.engine.begin() as conn:
            row = self._get(conn, metric_id)
            definition = dict(row.definition or {})
            if changes.item is not None and changes.item != definition.get("prompt"):
                if library.metric_has_scores(conn, metric_id):
                    raise ConflictError(
                        Issue(
                            "this metric has scores; a new prompt is a new metric version",
                            field="item",
                            hint="POST it to /api/metrics with the same name",
                        )
                    )
                definition["prompt"] = changes.item
            values: dict[str, Any] = {}
            if changes.type is not None:
                values["category"] = changes.type
            if changes.metadata is not None:
                values["metadata"] = changes.metadata
            if definition != row.definition:
                values["definition"] = definition
                values["version"] = _version(row.type, row.name, definition)
            if values:
                library.update_metric(conn, metric_id, values)
            record = MetricRecord.of(self._get(conn, metric_id))
        if "definition" in values:
            self._reindex(record.id)
        return record

    def save_form(self, form: Mapping[str, str], metric_id: int | None = None) -> int:
        """A dashboard form saved as the API saves its body: a new metric, or an edit."""
        body = body_from_form(self.kind, form, update=metric_id is not None)
        if isinstance(body, MetricUpdate) and metric_id is not None:
            return self.update(metric_id, body).id
        assert isinstance(body, MetricCreate)
        return self.create(body).id

    def delete(self, metric_id: int) -> None:
        with self.engine.begin() as conn:
            self._get(conn, metric_id)
            if library.metric_has_scores(conn, metric_id):
                raise ConflictError(Issue("this metric has scores and cannot be deleted"))
            library.delete_metric(conn, metric_id)
