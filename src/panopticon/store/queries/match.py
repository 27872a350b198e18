"""Filters that every listing shares: substring search (LIKE with its wildcards escaped)
and metadata filters, done by the database on SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = ["contains", "json_text", "like_pattern", "metadata_matches"]

ESCAPE = "\\"


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE's own wildcards (``%``, ``_``) and the escape matching themselves."""
    escaped = text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return f"%{escaped}%"


def contains(column: sa.ColumnElement[Any], text: str) -> sa.ColumnElement[bool]:
    """Case-insensitive substring match of ``text`` taken literally: every LIKE goes
    through here, so no caller forgets the escaping."""
    return column.ilike(like_pattern(text), escape=ESCAPE)


def json_text(column: sa.ColumnElement[Any], key: str, dialect: str) -> sa.ColumnElement[str]:
    """The text of a top-level string field of a JSON column (NULL when absent)."""
    if dialect == "postgresql":
        return column.op("->>", return_type=sa.Text)(sa.literal(key, sa.String))
    return sa.func.json_extract(column, sa.literal("$." + key, sa.String))


def metadata_matches(
    column: sa.ColumnElement[Any], key: str, value: str | None, dialect: str
) -> sa.ColumnElement[bool]:
    """The JSON object in ``column`` has ``key`` (with this value, when given). A string
    value is compared as itself; any other as its JSON text (``3``, ``true``, ``null``).

    Any key is safe: it is a bound value, never part of a JSON path."""
    if dialect == "postgresql":
        k = sa.literal(key, sa.String)
        has = column.op("?")(k)
        if value is None:
            return has
        field = column.op("->")(k)
        as_text = sa.case(
            (sa.func.jsonb_typeof(field) == "string", column.op("->>", return_type=sa.Text)(k)),
            else_=sa.cast(field, sa.Text),
        )
        return sa.and_(has, sa.type_coerce(as_text, sa.Text) == sa.literal(value, sa.Text))
    each = sa.func.json_each(column).table_valued("key", "type", "atom", "value").alias("meta")
    where: list[sa.ColumnElement[bool]] = [each.c.key == key]
    if value is not None:
        as_text = sa.case(
            (each.c.type == "text", each.c.atom),
            (each.c.type.in_(("integer", "real")), sa.cast(each.c.atom, sa.Text)),
            (each.c.type.in_(("true", "false", "null")), each.c.type),
            else_=each.c.value,  # objects and arrays: their JSON text
        )
        where.append(sa.type_coerce(as_text, sa.Text) == sa.literal(value, sa.Text))
    return sa.exists(sa.select(sa.literal(1)).select_from(each).where(*where))
