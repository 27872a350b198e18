"""/api/metrics: the prompts, grouped by theme (``type``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from panopticon.api.deps import EngineDep, Id, Member, Viewer
from panopticon.api.schemas import MetricCreate, MetricPublic, MetricUpdate, PagePublic
from panopticon.services.catalog import MetricCatalog

router = APIRouter(prefix="/api/metrics", tags=["metrics"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MetricPublic)
def create_metric(body: MetricCreate, engine: EngineDep, caller: Member) -> MetricPublic:
    return MetricPublic(**MetricCatalog(engine, caller.workspace_id).create(body.model_dump()))


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
