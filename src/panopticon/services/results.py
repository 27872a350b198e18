"""Reading scores back: filtered, paged, always inside one workspace."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from panopticon.store.queries.results import ResultFilters, search_scores

__all__ = ["ResultFilters", "find_results"]


def find_results(
    engine: Engine, workspace_id: int, filters: ResultFilters, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int, bool]:
    with engine.connect() as conn:
        return search_scores(conn, workspace_id, filters, limit, offset)
