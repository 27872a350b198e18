"""/api/metrics: the prompts, grouped by theme (``type``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from panopticon.api.deps import EngineDep, Id, Member, SettingsDep, Viewer
from panopticon.api.schemas import (
    MetricCreate,
    MetricMatch,
    MetricPublic,
    MetricUpdate,
    PagePublic,
    SearchPublic,
)
from panopticon.services.catalog import MetricCatalog
from panopticon.services.search import Search

router = APIRouter(prefix="/api/metrics", tags=["metrics"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MetricPublic)
def create_metric(
    body: MetricCreate,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    caller: Member,
) -> MetricPublic:
    row = MetricCatalog(engine, caller.workspace_id).create(body.model_dump())
    Search(engine, settings, request.app.state.env, caller.workspace_id).index_quietly(
        "metric", [row["id"]]
    )
    return MetricPublic(**row)


@router.get("", response_model=PagePublic[MetricPublic])
def list_metrics(
    engine: EngineDep,
    caller: Viewer,
    type: Annotated[str | None, Query(max_length=200, description="Category.")] = None,
    text: Annotated[str | None, Query(max_length=1000, description="Substring.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> PagePublic[MetricPublic]:
    page = MetricCatalog(engine, caller.workspace_id).list(
        type=type, text=text, limit=limit, offset=offset
    )
    return PagePublic[MetricPublic](
        items=[MetricPublic(**i) for i in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/search", response_model=SearchPublic[MetricMatch])
def search_metrics(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    caller: Viewer,
    q: Annotated[str, Query(min_length=1, max_length=10_000)],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
) -> SearchPublic[MetricMatch]:
    """Nearest metrics by meaning (embeddings), or by matching words when no embedding
    endpoint is configured; ``mode`` says which."""
    catalog = MetricCatalog(engine, caller.workspace_id)
    mode, note, hits = Search(engine, settings, request.app.state.env, caller.workspace_id).search(
        "metric", q, k
    )
    return SearchPublic[MetricMatch](
        mode=mode,
        note=note,
        items=[MetricMatch(**catalog.get(row_id), score=score) for row_id, score in hits],
    )


@router.get("/{metric_id}", response_model=MetricPublic)
def get_metric(metric_id: Id, engine: EngineDep, caller: Viewer) -> MetricPublic:
    return MetricPublic(**MetricCatalog(engine, caller.workspace_id).get(metric_id))


@router.patch("/{metric_id}", response_model=MetricPublic)
def update_metric(
    metric_id: Id, body: MetricUpdate, engine: EngineDep, caller: Member
) -> MetricPublic:
    return MetricPublic(
        **MetricCatalog(engine, caller.workspace_id).update(
            metric_id, body.model_dump(exclude_unset=True)
        )
    )


@router.delete("/{metric_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_metric(metric_id: Id, engine: EngineDep, caller: Member) -> Response:
    MetricCatalog(engine, caller.workspace_id).delete(metric_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
