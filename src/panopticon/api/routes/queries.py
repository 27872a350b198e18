"""/api/queries: the prompts, grouped by theme (``type``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from panopticon.api.deps import EngineDep, Id, Member, Viewer
from panopticon.api.schemas import PagePublic, QueryCreate, QueryPublic, QueryUpdate
from panopticon.services.catalog import QueryCatalog

router = APIRouter(prefix="/api/queries", tags=["queries"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=QueryPublic)
def create_query(body: QueryCreate, engine: EngineDep, caller: Member) -> QueryPublic:
    return QueryPublic(**QueryCatalog(engine, caller.workspace_id).create(body.model_dump()))


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
