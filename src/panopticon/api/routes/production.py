"""/api/production: production scores (online rules, guardrails, people's labels, outside
clients) per model, source and metric, with the dashboard's numbers and intervals."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from panopticon.api.deps import EngineDep, Viewer
from panopticon.api.schemas import Moment, ProductionHeatmapPublic, ProductionSummaryPublic
from panopticon.services.dashboard import MAX_DAYS
from panopticon.services.production import (
    ProductionFilters,
    production_filters,
    production_heatmap,
    production_summary,
)

router = APIRouter(prefix="/api/production", tags=["production scores"])

# "production" (every production source) and PRODUCTION_SOURCES, spelled out for the
# OpenAPI schema (a test keeps them equal)
ProductionSource = Literal["production", "online", "guardrail", "human", "api"]


async def filters(
    days: Annotated[
        int | None,
        Query(ge=1, le=MAX_DAYS, description="The last days (the dashboard's period)."),
    ] = None,
    since: Annotated[
        Moment | None, Query(description="From this time (with its zone: ...Z); not with days.")
    ] = None,
    model: Annotated[
        str | None,
        Query(
            max_length=200,
            description="One model, as the rows name it (the span's model served, else "
            "requested; a trace's own score: the trace's model).",
        ),
    ] = None,
    metric: Annotated[str | None, Query(max_length=200, description="One metric, by name.")] = None,
    source: Annotated[
        ProductionSource | None,
        Query(description="One production source; production or none: every one."),
    ] = None,
) -> ProductionFilters:
    return production_filters(days=days, since=since, model=model, metric=metric, source=source)


FiltersDep = Annotated[ProductionFilters, Depends(filters)]


@router.get("/summary", response_model=ProductionSummaryPublic)
def summary(engine: EngineDep, caller: Viewer, f: FiltersDep) -> ProductionSummaryPublic:
    """Production scores apart from the runs': totals per source, and per model and source
    (over every quality metric, and per metric) the mean and pass rate with 95% intervals
    clustered by trace, 'too few' for one trace, and what a group without values holds."""
    return ProductionSummaryPublic.model_validate(
        asdict(production_summary(engine, caller.workspace_id, f))
    )


@router.get("/heatmap", response_model=ProductionHeatmapPublic)
def heatmap(engine: EngineDep, caller: Viewer, f: FiltersDep) -> ProductionHeatmapPublic:
    """Model (source) x metric cells of production scores, each row with its cell over
    every quality metric (the themes heatmap's 'production' column)."""
    return ProductionHeatmapPublic.model_validate(
        asdict(production_heatmap(engine, caller.workspace_id, f))
    )
