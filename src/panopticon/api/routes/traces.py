"""The trace explorer's API: ``GET /api/traces`` (filtered keyset pages), one trace with its
span tree, a session, exports of a filter, traces into a dataset, and trace settings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from panopticon.api.deps import Admin, EngineDep, Member, Viewer
from panopticon.api.schemas import Moment
from panopticon.services import traces as service
from panopticon.services.traces import TraceFilters

__all__ = ["router"]

router = APIRouter(tags=["traces"])


class TraceSummary(BaseModel):
    id: str
    name: str | None
    session_id: str | None
    user_id: str | None
    tenant_id: str | None
    environment: str | None
    release: str | None
    tags: list[str] | None
    metadata: dict[str, Any] | None
    start_time: datetime
    end_time: datetime
    latency_ms: float
    status: str
    error: str | None
    span_count: int
    error_count: int
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    models: list[str] | None
    input_text: str | None = Field(description="The first 300 characters.")
    output_text: str | None


class TracePagePublic(BaseModel):
    items: list[TraceSummary]
    total: int
    total_exact: bool = Field(
        description="False: total is a lower bound (counting stops at `count_cap`)."
    )
    total_estimate: int | None = Field(
        default=None,
        description="When the count stopped at its cap, on PostgreSQL: the query planner's "
        "estimate of all the matches (from the table's statistics; an estimate, not a count).",
    )
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class SpanInTree(BaseModel):
    """A span as a trace's tree shows it: no messages, documents, values, attributes or
    events (``GET /api/traces/{trace_id}/spans/{span_id}`` has them)."""

    span_id: str
    parent_id: str | None
    depth: int
    kind: str
    name: str
    start_time: datetime
    end_time: datetime
    latency_ms: float
    ttft_ms: float | None
    status: str
    error: str | None
    model_requested: str | None
    model_served: str | None
    provider: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    reasoning_tokens: int | None
    cost_usd: float | None
    cost_source: str | None


class SpanPublic(SpanInTree):
    input_messages: list[dict[str, Any]] | None
    output_messages: list[dict[str, Any]] | None
    input_value: str | None
    output_value: str | None
    documents: list[dict[str, Any]] | None
    attributes: dict[str, Any] | None
    events: list[dict[str, Any]] | None


class ScoreOnTrace(BaseModel):
    id: Any
    name: str
    span_id: str | None
    value: float | None
    # the value on its metric's 0..1 scale; null when the metric has none
    normalized: float | None = None
    label: str | None
    passed: bool | None
    reasoning: str | None
    source: str
    # a guardrail verdict's stage (input, output) and the latency it added
    details: dict[str, Any] | None = None
    created_at: datetime


class LabelOnTrace(BaseModel):
    id: int
    name: str
    span_id: str | None
    annotator: str
    value: float | None
    passed: bool | None
    comment: str | None
    created_at: datetime


class TraceDetail(TraceSummary):
    spans: list[SpanPublic]
    scores: list[ScoreOnTrace]
    labels: list[LabelOnTrace]


class TraceTree(TraceSummary):
    spans: list[SpanInTree]
    scores: list[ScoreOnTrace]
    labels: list[LabelOnTrace]


class SpanDetail(SpanPublic):
    trace_id: str
    depth: int = 0
    scores: list[ScoreOnTrace]
    labels: list[LabelOnTrace]


class SessionTrace(TraceSummary):
    llm_spans: list[dict[str, Any]]


class SessionPublic(BaseModel):
    id: str
    traces: list[SessionTrace]


class DatasetFromTraces(BaseModel):
    dataset: str = Field(min_length=1, max_length=200)
    trace_ids: list[Annotated[str, Field(pattern="^[0-9a-f]{32}$")]] = Field(
        min_length=1, max_length=1000
    )


class DatasetAdded(BaseModel):
    dataset: str
    added: int
    size: int


class TraceSettingsPublic(BaseModel):
    retention_days: int | None = Field(default=None, ge=1, le=3650)
    redact: bool = False


async def filters(
    since: Annotated[
        Moment | None, Query(description="From this time (with its zone: ...Z).")
    ] = None,
    until: Annotated[
        Moment | None, Query(description="Before this time (with its zone: ...Z).")
    ] = None,
    model: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    tag: str | None = None,
    metadata_key: str | None = None,
    metadata_value: str | None = None,
    status: Literal["ok", "error"] | None = None,
    environment: str | None = None,
    min_latency_ms: Annotated[float | None, Query(ge=0)] = None,
    max_latency_ms: Annotated[float | None, Query(ge=0)] = None,
    min_cost: Annotated[float | None, Query(ge=0)] = None,
    max_cost: Annotated[float | None, Query(ge=0)] = None,
    score_name: str | None = None,
    min_score: float | None = None,
    max_score: float | None = None,
    span_kind: Literal[
        "llm", "embedding", "retrieval", "tool", "agent", "chain", "guardrail", "other"
    ]
    | None = None,
    text: Annotated[str | None, Query(max_length=200)] = None,
) -> TraceFilters:
    return TraceFilters(
        since=since,
        until=until,
        model=model,
        user_id=user_id,
        session_id=session_id,
        tag=tag,
        metadata_key=metadata_key,
        metadata_value=metadata_value,
        status=status,
        environment=environment,
        min_latency_ms=min_latency_ms,
        max_latency_ms=max_latency_ms,
        min_cost=min_cost,
        max_cost=max_cost,
        score_name=score_name,
        min_score=min_score,
        max_score=max_score,
        span_kind=span_kind,
        text=text,
    )


FiltersDep = Annotated[TraceFilters, Depends(filters)]


@router.get("/api/traces", response_model=TracePagePublic)
def list_traces(
    engine: EngineDep,
    caller: Viewer,
    f: FiltersDep,
    sort: Literal[
        "-start_time", "start_time", "-latency_ms", "latency_ms", "-cost_usd", "cost_usd"
    ] = "-start_time",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    count_cap: Annotated[
        int,
        Query(
            ge=0,
            le=service.COUNT_MAX,
            description="Count the matches up to this many (0: no count; the total is then "
            "a lower bound from the page). A first page that holds every match is counted "
            "exactly without a count.",
        ),
    ] = service.COUNT_CAP,
) -> TracePagePublic:
    page = service.find_traces(
        engine, caller.workspace_id, f, sort=sort, limit=limit, cursor=cursor, count_cap=count_cap
    )
    return TracePagePublic(
        items=[TraceSummary(**r) for r in page.items],
        total=page.total,
        total_exact=page.total_exact,
        total_estimate=page.total_estimate,
        next_cursor=page.next_cursor,
    )


@router.get(
    "/api/traces/export",
    summary="What a filter selects, as CSV, JSON Lines or Parquet",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "CSV (format=csv), JSON Lines (format=jsonl) or Parquet "
            "(format=parquet, with the `parquet` extra installed), streamed",
            "content": {media: {} for media in service.EXPORT_FORMATS.values()},
        },
        422: {"description": "format=parquet without pyarrow: the error names the extra"},
    },
)
def export(
    engine: EngineDep,
    caller: Viewer,
    f: FiltersDep,
    format: Literal["csv", "jsonl", "parquet"] = "jsonl",
) -> StreamingResponse:
    return StreamingResponse(
        service.export_traces(engine, caller.workspace_id, f, format),
        media_type=service.EXPORT_FORMATS[format],
        headers={"Content-Disposition": f'attachment; filename="traces.{format}"'},
    )


@router.get("/api/traces/{trace_id}", response_model=TraceDetail)
def get_trace(
    engine: EngineDep,
    caller: Viewer,
    trace_id: Annotated[str, Path(pattern="^[0-9a-fA-F]{32}$")],
) -> TraceDetail:
    return TraceDetail(**service.get_trace(engine, caller.workspace_id, trace_id))


@router.get(
    "/api/traces/{trace_id}/tree",
    response_model=TraceTree,
    summary="A trace's span tree without each span's details",
)
def get_trace_tree(
    engine: EngineDep,
    caller: Viewer,
    trace_id: Annotated[str, Path(pattern="^[0-9a-fA-F]{32}$")],
) -> TraceTree:
    """The trace, its scores and labels, and its spans in tree order with names, timings,
    status, models, tokens and cost: no messages, documents, values, attributes or events,
    which `GET /api/traces/{trace_id}/spans/{span_id}` returns for one span."""
    return TraceTree(**service.get_trace(engine, caller.workspace_id, trace_id, details=False))


@router.get("/api/traces/{trace_id}/spans/{span_id}", response_model=SpanDetail)
def get_span(
    engine: EngineDep,
    caller: Viewer,
    trace_id: Annotated[str, Path(pattern="^[0-9a-fA-F]{32}$")],
    span_id: Annotated[str, Path(pattern="^[0-9a-fA-F]{16}$")],
) -> SpanDetail:
    """One span whole: its input and output messages, documents, values, attributes and
    events, with its scores and people's labels."""
    return SpanDetail(**service.get_span(engine, caller.workspace_id, trace_id, span_id))


@router.get("/api/sessions/{session_id}", response_model=SessionPublic)
def get_session(engine: EngineDep, caller: Viewer, session_id: str) -> SessionPublic:
    traces = service.get_session(engine, caller.workspace_id, session_id)
    return SessionPublic(id=session_id, traces=[SessionTrace(**t) for t in traces])


@router.post("/api/traces/dataset", response_model=DatasetAdded)
def to_dataset(body: DatasetFromTraces, engine: EngineDep, caller: Member) -> DatasetAdded:
    added, size = service.add_to_dataset(engine, caller.workspace_id, body.dataset, body.trace_ids)
    return DatasetAdded(dataset=body.dataset, added=added, size=size)


@router.get("/api/trace-settings", response_model=TraceSettingsPublic)
def get_settings(engine: EngineDep, caller: Viewer) -> TraceSettingsPublic:
    retention, redact = service.trace_settings(engine, caller.workspace_id)
    return TraceSettingsPublic(retention_days=retention, redact=redact)


@router.put("/api/trace-settings", response_model=TraceSettingsPublic)
def put_settings(
    body: TraceSettingsPublic, engine: EngineDep, caller: Admin
) -> TraceSettingsPublic:
    service.update_trace_settings(engine, caller.workspace_id, body.retention_days, body.redact)
    return body
