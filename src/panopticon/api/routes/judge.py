"""/api/judge: evaluate a query now, and read scores back with filters."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import StreamingResponse

from panopticon.api.deps import EngineDep, Id, Member, SettingsDep, Viewer
from panopticon.api.schemas import (
    CalibrationPublic,
    EvaluateQuery,
    EvaluateTheme,
    EvaluationPublic,
    JobPublic,
    Moment,
    PagePublic,
    ResultPublic,
)
from panopticon.errors import ConfigError, Issue
from panopticon.services.annotations import calibrate, calibrate_production
from panopticon.services.evaluate import evaluate_query
from panopticon.services.exports import FORMATS, render_scores
from panopticon.services.jobs import job_status, validate_theme_job
from panopticon.services.results import (
    ResultFilters,
    check_source,
    find_results,
    iter_results,
)
from panopticon.services.runs import get_run

router = APIRouter(prefix="/api/judge", tags=["judge"])


@router.post("/evaluate/query", response_model=EvaluationPublic)
async def evaluate(
    body: EvaluateQuery, request: Request, engine: EngineDep, settings: SettingsDep, caller: Member
) -> EvaluationPublic:
    result = await evaluate_query(
        engine,
        settings,
        caller.workspace_id,
        caller.workspace,
        request.app.state.env,
        body.model_dump(),
    )
    return EvaluationPublic(**asdict(result))


@router.post("/evaluate/theme", status_code=status.HTTP_202_ACCEPTED, response_model=JobPublic)
def evaluate_theme(
    body: EvaluateTheme, request: Request, engine: EngineDep, settings: SettingsDep, caller: Member
) -> JobPublic:
    """Start evaluating every query of a theme (up to ``limit``); returns the job at once."""
    payload = validate_theme_job(
        engine, caller.workspace_id, settings, request.app.state.env, body.model_dump()
    )
    job_id = request.app.state.jobs.submit_job(caller.workspace_id, "evaluate_theme", payload)
    return JobPublic(**asdict(job_status(engine, caller.workspace_id, job_id)))


# SOURCE_FILTERS, spelled out for the OpenAPI schema (a test keeps them equal)
SourceName = Literal["run", "production", "online", "guardrail", "human", "api"]


def result_filters(
    theme: Annotated[str | None, Query(max_length=200)] = None,
    model_id: Annotated[
        str | None,
        Query(max_length=200, description="A run's model, or the model a production span used."),
    ] = None,
    metric: Annotated[str | None, Query(max_length=200)] = None,
    run: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    since: Annotated[
        Moment | None, Query(description="From this time (with its zone: ...Z).")
    ] = None,
    until: Annotated[
        Moment | None, Query(description="Before this time (with its zone: ...Z).")
    ] = None,
    min_score: float | None = None,
    max_score: float | None = None,
    passed: bool | None = None,
    text: Annotated[
        str | None,
        Query(max_length=200, description="In the query or the answer (a span's input or output)."),
    ] = None,
    source: Annotated[
        SourceName | None,
        Query(
            description="run (scores of runs' answers), production (scores of traces and "
            "spans: online, guardrail, human, api), or one source by name; none: every score."
        ),
    ] = None,
) -> ResultFilters:
    return ResultFilters(
        theme,
        model_id,
        metric,
        run,
        since,
        until,
        min_score,
        max_score,
        passed,
        (text or "").strip() or None,
        source=check_source(source),
    )


FiltersDep = Annotated[ResultFilters, Depends(result_filters)]


@router.get("/results", response_model=PagePublic[ResultPublic])
def results(
    engine: EngineDep,
    caller: Viewer,
    filters: FiltersDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> PagePublic[ResultPublic]:
    """Scores, newest first: those of runs' answers and of production traces and spans
    together (``source`` narrows), each with its subject and source."""
    page = find_results(engine, caller.workspace_id, filters, limit, offset)
    return PagePublic[ResultPublic](
        items=[ResultPublic(**asdict(r)) for r in page.items],
        total=page.total,
        limit=limit,
        offset=offset,
        total_exact=page.exact,
    )


@router.get(
    "/results/export",
    summary="The scores a filter selects, as CSV, JSON or JSON Lines",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One row per score with its source (newest first, at most 100,000)",
            "content": {"text/csv": {}, "application/json": {}, "application/x-ndjson": {}},
        }
    },
)
def export_results(
    engine: EngineDep,
    caller: Viewer,
    filters: FiltersDep,
    format: Literal["csv", "json", "jsonl"] = "csv",
) -> StreamingResponse:
    return StreamingResponse(
        render_scores(format, iter_results(engine, caller.workspace_id, filters)),
        media_type=FORMATS[format],
        headers={"Content-Disposition": f'attachment; filename="scores.{format}"'},
    )


@router.get("/calibration", response_model=list[CalibrationPublic])
def calibration(
    engine: EngineDep,
    caller: Viewer,
    run: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="A run's labels.")] = None,
    source: Annotated[
        Literal["production", "online", "guardrail", "api"] | None,
        Query(description="People's labels on traces and spans against these scores."),
    ] = None,
) -> list[CalibrationPublic]:
    """How well each judge agrees with people, per metric: a run's answers (``run``), or
    production traces and spans (``source``, the default: production), where people's
    labels meet the online rules' (guardrails', clients') scores of the same span."""
    if run is not None and source is not None:
        raise ConfigError(Issue("give a run or a source, not both", field="source"))
    if run is not None:
        found = calibrate(engine, get_run(engine, caller.workspace_id, run).id)
    else:
        found = calibrate_production(engine, caller.workspace_id, source or "production")
    return [CalibrationPublic(**c.as_dict()) for c in found]


jobs_router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@jobs_router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: Id, engine: EngineDep, caller: Viewer) -> JobPublic:
    """A job's status and progress (answers done, failed, of total)."""
    return JobPublic(**asdict(job_status(engine, caller.workspace_id, job_id)))
