"""/api/judge: evaluate a query now, and read scores back with filters."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from pydantic import AwareDatetime

from panopticon.api.deps import EngineDep, Id, Member, SettingsDep, Viewer
from panopticon.api.schemas import (
    EvaluateQuery,
    EvaluateTheme,
    EvaluationPublic,
    JobPublic,
    PagePublic,
    ResultPublic,
)
from panopticon.services.evaluate import evaluate_query
from panopticon.services.jobs import create_theme_job, job_status
from panopticon.services.results import ResultFilters, find_results

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
    job_id = create_theme_job(
        engine, caller.workspace_id, settings, request.app.state.env, body.model_dump()
    )
    request.app.state.jobs.submit(job_id)
    return JobPublic(**job_status(engine, caller.workspace_id, job_id))


@router.get("/results", response_model=PagePublic[ResultPublic])
def results(
    engine: EngineDep,
    caller: Viewer,
    theme: Annotated[str | None, Query(max_length=200)] = None,
    model_id: Annotated[str | None, Query(max_length=200)] = None,
    metric: Annotated[str | None, Query(max_length=200)] = None,
    run: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="From this time (with its zone: ...Z).")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Before this time (with its zone: ...Z).")
    ] = None,
    min_score: float | None = None,
    max_score: float | None = None,
    passed: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> PagePublic[ResultPublic]:
    filters = ResultFilters(
        theme, model_id, metric, run, since, until, min_score, max_score, passed
    )
    page = find_results(engine, caller.workspace_id, filters, limit, offset)
    return PagePublic[ResultPublic](
        items=[ResultPublic(**asdict(r)) for r in page.items],
        total=page.total,
        limit=limit,
        offset=offset,
        total_exact=page.exact,
    )


jobs_router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@jobs_router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: Id, engine: EngineDep, caller: Viewer) -> JobPublic:
    """A job's status and progress (answers done, failed, of total)."""
    return JobPublic(**job_status(engine, caller.workspace_id, job_id))
