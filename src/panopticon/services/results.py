"""Reading scores back: filtered, paged, always inside one workspace."""

from __future__ import annotations

import uuid
from typing import Any

from panopticon.errors import NotFoundError
from panopticon.store.engine import Engine
from panopticon.store.queries.results import ResultFilters, result_detail, search_scores

__all__ = ["ResultFilters", "find_results", "get_result"]


def find_results(
    engine: Engine, workspace_id: int, filters: ResultFilters, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int, bool]:
    with engine.connect() as conn:
        return search_scores(conn, workspace_id, filters, limit, offset)


def get_result(engine: Engine, workspace_id: int, result_id: str) -> dict[str, Any]:
    """One answer of this workspace with its scores and labels; NotFoundError otherwise."""
    try:
        rid = uuid.UUID(result_id)
    except ValueError:
        raise NotFoundError(f"'{result_id}' is not a result id") from None
    with engine.connect() as conn:
        found = result_detail(conn, workspace_id, rid)
    if found is None:
        raise NotFoundError(f"no result {result_id} in this workspace")
    return found
