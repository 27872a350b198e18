"""Queries and metrics as the API and the dashboard manage them, one workspace at a time.

Creates are race-safe: the insert comes first and skips a row that already exists
(``ON CONFLICT DO NOTHING`` on both databases), so two identical requests at once store one
row and both get it. An update that would collide with another row is a ConflictError,
also when the other row was written a moment earlier by a concurrent request.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from panopticon.errors import ConflictError, Issue
from panopticon.store.queries.match import contains, json_text, metadata_matches
from panopticon.store.tables import Metric, Query, Result, Score
from panopticon.store.tables.base import utcnow

__all__ = [
    "delete_metric",
    "delete_query",
    "insert_metric_once",
    "insert_query_once",
    "list_metrics",
    "list_queries",
    "metric_has_scores",
    "metric_row",
    "metric_rows",
    "query_has_results",
    "query_row",
    "query_with_hash",
    "update_metric",
    "update_query",
]


def _insert_ignoring_duplicates(conn: Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _page(conn: Connection, q: sa.Select[Any], order: Any, limit: int, offset: int) -> Any:
    total = conn.scalar(sa.select(sa.func.count()).select_from(q.subquery()))
    rows = list(conn.execute(q.order_by(order).limit(limit).offset(offset)))
    return rows, int(total or 0)


# -- queries ----------------------------------------------------------------------------------


def query_row(conn: Connection, workspace_id: int, query_id: int) -> Row[Any] | None:
    return conn.execute(
        sa.select(Query).where(Query.c.id == query_id, Query.c.workspace_id == workspace_id)
    ).first()


def list_queries(
    conn: Connection,
    workspace_id: int,
    *,
    theme: str | None,
    text: str | None,
    meta_key: str | None,
    meta_value: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Row[Any]], int]:
    """A page of the workspace's queries, oldest first, and how many match."""
    q = sa.select(Query).where(Query.c.workspace_id == workspace_id)
    if theme is not None:
        q = q.where(Query.c.theme == theme)
    if text:
        q = q.where(contains(Query.c.text, text))
    if meta_key is not None:
        q = q.where(metadata_matches(Query.c.metadata, meta_key, meta_value, conn.dialect.name))
    return _page(conn, q, Query.c.id, limit, offset)  # type: ignore[no-any-return]


def query_with_hash(
    conn: Connection, workspace_id: int, content_hash: str, *, other_than: int | None = None
) -> int | None:
    q = sa.select(Query.c.id).where(
        Query.c.workspace_id == workspace_id, Query.c.content_hash == content_hash
    )
    if other_than is not None:
        q = q.where(Query.c.id != other_than)
    found = conn.execute(q).scalar()
    return None if found is None else int(found)


def insert_query_once(conn: Connection, workspace_id: int, values: dict[str, Any]) -> int:
    """The id of the query with this content: inserted now, or the one already stored."""
    stmt = (
        _insert_ignoring_duplicates(conn, Query)
        .values(workspace_id=workspace_id, created_at=utcnow(), **values)
        .on_conflict_do_nothing(index_elements=["workspace_id", "content_hash"])
        .returning(Query.c.id)
    )
    inserted = conn.execute(stmt).scalar()
    if inserted is not None:
        return int(inserted)
    found = query_with_hash(conn, workspace_id, values["content_hash"])
    assert found is not None  # the conflicting row is committed: it is visible now
    return found


def update_query(conn: Connection, query_id: int, values: dict[str, Any]) -> None:
    try:
        conn.execute(sa.update(Query).where(Query.c.id == query_id).values(**values))
    except sa.exc.IntegrityError:  # the transaction is rolled back as the error leaves it
        raise ConflictError(
            Issue("another query already has this content", field="item", hint="use that query")
        ) from None


def query_has_results(conn: Connection, query_id: int) -> bool:
    found = conn.execute(sa.select(Result.c.id).where(Result.c.query_id == query_id).limit(1))
    return found.first() is not None


def delete_query(conn: Connection, query_id: int) -> None:
    conn.execute(sa.delete(Query).where(Query.c.id == query_id))


# -- metrics ----------------------------------------------------------------------------------


def metric_row(conn: Connection, workspace_id: int, metric_id: int) -> Row[Any] | None:
    return conn.execute(
        sa.select(Metric).where(Metric.c.id == metric_id, Metric.c.workspace_id == workspace_id)
    ).first()


def metric_rows(conn: Connection, workspace_id: int, ids: list[int]) -> dict[int, Row[Any]]:
    """The workspace's metrics among these ids, by id."""
    q = sa.select(Metric).where(Metric.c.workspace_id == workspace_id, Metric.c.id.in_(ids))
    return {int(r.id): r for r in conn.execute(q)}


def list_metrics(
    conn: Connection,
    workspace_id: int,
    *,
    category: str | None,
    text: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Row[Any]], int]:
    """A page of the workspace's metrics, oldest first, and how many match. ``category``
    is the API's ``type``: the category, or the name of a metric without one."""
    q = sa.select(Metric).where(Metric.c.workspace_id == workspace_id)
    if category is not None:
        q = q.where(
            sa.func.coalesce(sa.func.nullif(Metric.c.category, ""), Metric.c.name) == category
        )
    if text:
        q = q.where(contains(json_text(Metric.c.definition, "prompt", conn.dialect.name), text))
    return _page(conn, q, Metric.c.id, limit, offset)  # type: ignore[no-any-return]


def insert_metric_once(
    conn: Connection, workspace_id: int, values: dict[str, Any]
) -> tuple[int, bool]:
    """(id, inserted): the metric with this name and version, inserted now or found."""
    stmt = (
        _insert_ignoring_duplicates(conn, Metric)
        .values(workspace_id=workspace_id, created_at=utcnow(), **values)
        .on_conflict_do_nothing(index_elements=["workspace_id", "name", "version"])
        .returning(Metric.c.id)
    )
    inserted = conn.execute(stmt).scalar()
    if inserted is not None:
        return int(inserted), True
    found = conn.execute(
        sa.select(Metric.c.id).where(
            Metric.c.workspace_id == workspace_id,
            Metric.c.name == values["name"],
            Metric.c.version == values["version"],
        )
    ).scalar_one()
    return int(found), False


def update_metric(conn: Connection, metric_id: int, values: dict[str, Any]) -> None:
    """A clash with another version of the same name (also one written a moment ago by a
    concurrent request) is a ConflictError naming the prompt."""
    if "version" in values:
        row = conn.execute(sa.select(Metric).where(Metric.c.id == metric_id)).one()
        clash = conn.execute(
            sa.select(Metric.c.id).where(
                Metric.c.workspace_id == row.workspace_id,
                Metric.c.name == row.name,
                Metric.c.version == values["version"],
                Metric.c.id != metric_id,
            )
        ).scalar()
        if clash is not None:
            raise _same_metric(int(clash))
    try:
        conn.execute(sa.update(Metric).where(Metric.c.id == metric_id).values(**values))
    except sa.exc.IntegrityError:  # the transaction is rolled back as the error leaves it
        raise _same_metric(None) from None


def _same_metric(other: int | None) -> ConflictError:
    which = f"metric {other}" if other is not None else "another metric"
    return ConflictError(
        Issue(
            f"{which} of this name already has this prompt",
            field="item",
            hint=f"use {which}" if other is not None else "use that metric",
        )
    )


def metric_has_scores(conn: Connection, metric_id: int) -> bool:
    found = conn.execute(sa.select(Score.c.id).where(Score.c.metric_id == metric_id).limit(1))
    return found.first() is not None


def delete_metric(conn: Connection, metric_id: int) -> None:
    conn.execute(sa.delete(Metric).where(Metric.c.id == metric_id))
