"""/api/metrics: the workspace's metrics (a judge prompt or a heuristic with its settings),
grouped by ``type``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from panopticon.api.deps import Id, Member, SettingsDep, Viewer
from panopticon.api.schemas import (
    MetricCreate,
    MetricMatch,
    MetricPublic,
    MetricUpdate,
    PagePublic,
    SearchPublic,
)
from panopticon.services.catalog import MetricCatalog
from panopticon.settings import Settings

router = APIRouter(prefix="/api/metrics", tags=["metrics"])


def _catalog(request: Request, settings: Settings, workspace_id: int) -> MetricCatalog:
    state = request.app.state
    return MetricCatalog(state.engine, settings, state.env, workspace_id)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MetricPublic)
def create_metric(
    body: MetricCreate, request: Request, settings: SettingsDep, caller: Member
) -> MetricPublic:
    """Stores the metric (the same definition once) and embeds it for search."""
    return MetricPublic(**asdict(_catalog(request, settings, caller.workspace_id).create(body)))


@router.get("", response_model=PagePublic[MetricPublic])
def list_metrics(
    request: Request,
    settings: SettingsDep,
    caller: Viewer,
    type: Annotated[str | None, Query(max_length=200, description="Category.")] = None,
    text: Annotated[str | None, Query(max_length=1000, description="Substring.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> PagePublic[MetricPublic]:
    page = _catalog(request, settings, caller.workspace_id).list(
        type=type, text=text, limit=limit, offset=offset
    )
    return PagePublic[MetricPublic](
        items=[MetricPublic(**asdict(i)) for i in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/search", response_model=SearchPublic[MetricMatch])
def search_metrics(
    request: Request,
    settings: SettingsDep,
    caller: Viewer,
    q: Annotated[str, Query(min_length=1, max_length=10_000)],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
) -> SearchPublic[MetricMatch]:
    """Nearest metrics by meaning (embeddings), or by matching words when no embedding
    endpoint is configured; ``mode`` says which."""
    catalog = _catalog(request, settings, caller.workspace_id)
    mode, note, hits = catalog.search(q, k)
    return SearchPublic[MetricMatch](
        mode=mode,
        note=note,
        items=[MetricMatch(**asdict(catalog.get(row_id)), score=score) for row_id, score in hits],
    )


@router.get("/{metric_id}", response_model=MetricPublic)
def get_metric(
    metric_id: Id, request: Request, settings: SettingsDep, caller: Viewer
) -> MetricPublic:
    return MetricPublic(**asdict(_catalog(request, settings, caller.workspace_id).get(metric_id)))


@router.patch("/{metric_id}", response_model=MetricPublic)
def update_metric(
    metric_id: Id, body: MetricUpdate, request: Request, settings: SettingsDep, caller: Member
) -> MetricPublic:
    """Changes what is given; a new prompt is a new version, embedded again for search."""
    catalog = _catalog(request, settings, caller.workspace_id)
    return MetricPublic(**asdict(catalog.update(metric_id, body)))


@router.delete("/{metric_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_metric(
    metric_id: Id, request: Request, settings: SettingsDep, caller: Member
) -> Response:
    _catalog(request, settings, caller.workspace_id).delete(metric_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
