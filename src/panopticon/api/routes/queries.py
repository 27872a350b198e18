"""/api/queries: the prompts, grouped by theme (``type``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from panopticon.api.deps import EngineDep, Id, Member, SettingsDep, Viewer
from panopticon.api.schemas import (
    PagePublic,
    QueryCreate,
    QueryMatch,
    QueryPublic,
    QueryUpdate,
    SearchPublic,
)
from panopticon.services.catalog import QueryCatalog
from panopticon.services.search import Search

router = APIRouter(prefix="/api/queries", tags=["queries"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=QueryPublic)
def create_query(
    body: QueryCreate,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    caller: Member,
) -> QueryPublic:
    row = QueryCatalog(engine, caller.workspace_id).create(body.model_dump())
    Search(engine, settings, request.app.state.env, caller.workspace_id).index_quietly(
        "query", [row["id"]]
    )
    return QueryPublic(**row)


@router.get("", response_model=PagePublic[QueryPublic])
def list_queries(
    engine: EngineDep,
    caller: Viewer,
    theme: Annotated[str | None, Query(max_length=200)] = None,
    text: Annotated[str | None, Query(max_length=1000, description="Substring.")] = None,
    metadata_key: Annotated[str | None, Query(max_length=200)] = None,
    metadata_value: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> PagePublic[QueryPublic]:
    page = QueryCatalog(engine, caller.workspace_id).list(
        theme=theme,
        text=text,
        meta_key=metadata_key,
        meta_value=metadata_value,
        limit=limit,
        offset=offset,
    )
    return PagePublic[QueryPublic](
        items=[QueryPublic(**i) for i in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/search", response_model=SearchPublic[QueryMatch])
def search_queries(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    caller: Viewer,
    q: Annotated[str, Query(min_length=1, max_length=10_000)],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
) -> SearchPublic[QueryMatch]:
    """Nearest queries by meaning (embeddings), or by matching words when no embedding
    endpoint is configured; ``mode`` says which."""
    catalog = QueryCatalog(engine, caller.workspace_id)
    mode, note, hits = Search(engine, settings, request.app.state.env, caller.workspace_id).search(
        "query", q, k
    )
    return SearchPublic[QueryMatch](
        mode=mode,
        note=note,
        items=[QueryMatch(**catalog.get(row_id), score=score) for row_id, score in hits],
    )


@router.get("/{query_id}", response_model=QueryPublic)
def get_query(query_id: Id, engine: EngineDep, caller: Viewer) -> QueryPublic:
    return QueryPublic(**QueryCatalog(engine, caller.workspace_id).get(query_id))


@router.patch("/{query_id}", response_model=QueryPublic)
def update_query(query_id: Id, body: QueryUpdate, engine: EngineDep, caller: Member) -> QueryPublic:
    return QueryPublic(
        **QueryCatalog(engine, caller.workspace_id).update(
            query_id, body.model_dump(exclude_unset=True)
        )
    )


@router.delete("/{query_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_query(query_id: Id, engine: EngineDep, caller: Member) -> Response:
    QueryCatalog(engine, caller.workspace_id).delete(query_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
