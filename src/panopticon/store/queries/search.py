"""What semantic search reads and writes: rows to embed, their vectors, and the nearest
rows (by pgvector in PostgreSQL when the extension is there), or rows sharing a word."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.store.queries.match import contains, json_text
from panopticon.store.tables import Metric, Query

__all__ = [
    "has_pgvector",
    "nearest_by_pgvector",
    "rows_to_embed",
    "rows_with_any_word",
    "save_vectors",
    "vectors",
]

_TABLES = {"query": Query, "metric": Metric}
MAX_WORDS = 32  # a search's distinct words looked for in the database


def _text(kind: str, row: Any) -> str:
    if kind == "query":
        return str(row.text)
    return str((row.definition or {}).get("prompt") or row.name)


def rows_to_embed(
    conn: Connection, kind: str, workspace_id: int, model: str, ids: list[int] | None
) -> list[tuple[int, str]]:
    """(id, text) of these rows, or of every row without a vector from ``model``."""
    table = _TABLES[kind]
    q = sa.select(table).where(table.c.workspace_id == workspace_id)
    if ids is not None:
        q = q.where(table.c.id.in_(ids))
    else:
        q = q.where(sa.or_(table.c.embedding.is_(None), table.c.embedding_model != model))
    return [(int(r.id), _text(kind, r)) for r in conn.execute(q)]


def save_vectors(
    conn: Connection, kind: str, model: str, vectors: list[tuple[int, list[float]]]
) -> None:
    table = _TABLES[kind]
    for row_id, vector in vectors:
        conn.execute(
            sa.update(table)
            .where(table.c.id == row_id)
            .values(embedding=vector, embedding_model=model)
        )


def vectors(
    conn: Connection, kind: str, workspace_id: int, model: str
) -> list[tuple[int, list[float]]]:
    table = _TABLES[kind]
    q = sa.select(table.c.id, table.c.embedding).where(
        table.c.workspace_id == workspace_id, table.c.embedding_model == model
    )
    return [(int(r.id), r.embedding) for r in conn.execute(q)]


def has_pgvector(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    found = conn.scalar(sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'vector'"))
    return bool(found)


def nearest_by_pgvector(
    conn: Connection, kind: str, workspace_id: int, model: str, vector: list[float], k: int
) -> list[tuple[int, float]]:
    """Cosine distance computed in the database: the vectors never leave it."""
    table = _TABLES[kind]
    literal = "[" + ",".join(repr(float(x)) for x in vector) + "]"
    distance: sa.ColumnElement[float] = sa.literal_column(
        "(embedding::text)::vector <=> CAST(:q AS vector)"
    )
    q = (
        sa.select(table.c.id, (1 - distance).label("score"))
        .where(table.c.workspace_id == workspace_id, table.c.embedding_model == model)
        .order_by(distance, table.c.id)
        .limit(k)
    )
    return [(int(r.id), float(r.score)) for r in conn.execute(q, {"q": literal})]


def rows_with_any_word(
    conn: Connection, kind: str, workspace_id: int, words: list[str]
) -> list[tuple[int, str]]:
    """(id, text) of the rows whose text contains one of ``words`` (the first MAX_WORDS):
    the database narrows the workspace to the candidates, which are then ranked."""
    table = _TABLES[kind]
    if not words:
        return []
    column = (
        Query.c.text
        if kind == "query"
        else json_text(Metric.c.definition, "prompt", conn.dialect.name)
    )
    matches = [contains(column, w) for w in words[:MAX_WORDS]]
    if kind == "metric":
        matches += [contains(Metric.c.name, w) for w in words[:MAX_WORDS]]
    q = sa.select(table).where(table.c.workspace_id == workspace_id, sa.or_(*matches))
    return [(int(r.id), _text(kind, r)) for r in conn.execute(q)]
