"""/api/queries: the workspace's queries (prompts with metadata), grouped by ``theme``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from panopticon.api.deps import Id, Member, SettingsDep, Viewer
from panopticon.api.schemas import (
    PagePublic,
    QueryCreate,
    QueryMatch,
    QueryPublic,
    QueryUpdate,
    SearchPublic,
)
from panopticon.services.catalog import QueryCatalog
from panopticon.settings import Settings

router = APIRouter(prefix="/api/queries", tags=["queries"])


def _catalog(request: Request, settings: Settings, workspace_id: int) -> QueryCatalog:
    state = request.app.state
    return QueryCatalog(state.engine, settings, state.env, workspace_id)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=QueryPublic)
def create_query(
    body: QueryCreate, request: Request, settings: SettingsDep, caller: Member
) -> QueryPublic:
    """Stores the query (the same content once) and embeds it for search."""
    return QueryPublic(**asdict(_catalog(request, settings, caller.workspace_id).create(body)))


@router.get("", response_model=PagePublic[QueryPublic])
def list_queries(
    request: Request,
    settings: SettingsDep,
    caller: Viewer,
    theme: Annotated[str | None, Query(max_length=200)] = None,
    text: Annotated[str | None, Query(max_length=1000, description="Substring.")] = None,
    metadata_key: Annotated[str | None, Query(max_length=200)] = None,
    metadata_value: Annotated[
        str | None,
        Query(
            max_length=1000,
            description="With metadata_key: a string value as itself, any other as its JSON "
            "text (3, true, null).",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> PagePublic[QueryPublic]:
    page = _catalog(request, settings, caller.workspace_id).list(
        theme=theme,
        text=text,
        meta_key=metadata_key,
        meta_value=metadata_value,
        limit=limit,
        offset=offset,
    )
    return PagePublic[QueryPublic](
        items=[QueryPublic(**asdict(i)) for i in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/search", response_model=SearchPublic[QueryMatch])
def search_queries(
    request: Request,
    settings: SettingsDep,
    caller: Viewer,
    q: Annotated[str, Query(min_length=1, max_length=10_000)],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
) -> SearchPublic[QueryMatch]:
    """Nearest queries by meaning (embeddings), or by matching words when no embedding
    endpoint is configured; ``mode`` says which."""
    catalog = _catalog(request, settings, caller.workspace_id)
    mode, note, hits = catalog.search(q, k)
    return SearchPublic[QueryMatch](
        mode=mode,
        note=note,
        items=[QueryMatch(**asdict(catalog.get(row_id)), score=score) for row_id, score in hits],
    )


@router.get("/{query_id}", response_model=QueryPublic)
def get_query(query_id: Id, request: Request, settings: SettingsDep, caller: Viewer) -> QueryPublic:
    return QueryPublic(**asdict(_catalog(request, settings, caller.workspace_id).get(query_id)))


@router.patch("/{query_id}", response_model=QueryPublic)
def update_query(
    query_id: Id, body: QueryUpdate, request: Request, settings: SettingsDep, caller: Member
) -> QueryPublic:
    """Changes what is given; a new text is embedded again for search."""
    catalog = _catalog(request, settings, caller.workspace_id)
    return QueryPublic(**asdict(catalog.update(query_id, body)))


@router.delete("/{query_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_query(query_id: Id, request: Request, settings: SettingsDep, caller: Member) -> Response:
    _catalog(request, settings, caller.workspace_id).delete(query_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
