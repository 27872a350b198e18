"""/api/runs: runs, their summaries, exports and comparisons; start a suite as a job."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status

from panopticon.api.deps import MAX_ID, EngineDep, Id, Member, SettingsDep, Viewer
from panopticon.api.schemas import (
    ComparisonPublic,
    JobPublic,
    QueryAnswersPublic,
    RunCreate,
    RunDetail,
    RunPublic,
)
from panopticon.errors import ConfigError, Issue
from panopticon.services.answers import answers_side_by_side
from panopticon.services.compare import (
    compare_models,
    compare_prompts,
    compare_runs,
    with_production,
)
from panopticon.services.exports import FORMATS, render_export
from panopticon.services.gates import suite_gates
from panopticon.services.jobs import job_status, validate_suite_job
from panopticon.services.runs import (
    get_run,
    list_runs,
    pairwise_results,
    run_public,
    summarize_run,
    summary_rows,
)

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.get("", response_model=list[RunPublic])
def runs(
    engine: EngineDep, caller: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> list[RunPublic]:
    return [RunPublic(**r) for r in list_runs(engine, caller.workspace_id, limit)]


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobPublic)
def start_run(
    body: RunCreate, request: Request, engine: EngineDep, settings: SettingsDep, caller: Member
) -> JobPublic:
    """Validate the suite, then run it as a job (see /api/jobs/{id}). Its models name
    registered models (by id) or providers; see the README's Security section."""
    payload = validate_suite_job(
        engine, caller.workspace_id, settings, request.app.state.env, body.suite
    )
    job_id = request.app.state.jobs.submit_job(caller.workspace_id, "run_suite", payload)
    return JobPublic(**asdict(job_status(engine, caller.workspace_id, job_id)))


@router.get("/compare", response_model=list[ComparisonPublic])
def compare_two_runs(
    engine: EngineDep,
    caller: Viewer,
    a: Annotated[int, Query(ge=1, le=MAX_ID)],
    b: Annotated[int, Query(ge=1, le=MAX_ID)],
    min_effect: Annotated[float, Query(ge=0, le=1)] = 0.05,
) -> list[ComparisonPublic]:
    """Each model the two runs share, item by item (as `panopticon compare A B`); the
    models' production scores beside, unpaired (`production`, `production_note`)."""
    run_a, run_b = get_run(engine, caller.workspace_id, a), get_run(engine, caller.workspace_id, b)
    return [
        ComparisonPublic(**c.as_dict())
        for c in with_production(
            engine,
            caller.workspace_id,
            compare_runs(engine, run_a.id, run_b.id, min_effect=min_effect),
        )
    ]


@router.get("/{run_id}", response_model=RunDetail)
def run_detail(run_id: Id, engine: EngineDep, caller: Viewer) -> RunDetail:
    row = get_run(engine, caller.workspace_id, run_id)
    summary = summarize_run(engine, row.id)
    return RunDetail(
        **run_public(row),
        suite=row.suite,
        summary=summary.as_dict(),
        gates=[g.as_dict() for g in suite_gates(summary, row.suite)],
    )


@router.get("/{run_id}/compare", response_model=ComparisonPublic)
def compare_two_models(
    run_id: Id,
    engine: EngineDep,
    caller: Viewer,
    models: Annotated[str, Query(min_length=3, max_length=400, description="A,B")],
    min_effect: Annotated[float, Query(ge=0, le=1)] = 0.05,
) -> ComparisonPublic:
    row = get_run(engine, caller.workspace_id, run_id)
    names = [m.strip() for m in models.split(",") if m.strip()]
    if len(names) != 2:
        raise ConfigError(Issue("give two model ids", field="models", hint="models=a,b"))
    (found,) = with_production(
        engine,
        caller.workspace_id,
        [compare_models(engine, row.id, names[0], names[1], min_effect=min_effect, field="models")],
    )
    return ComparisonPublic(**found.as_dict())


@router.get("/{run_id}/compare-prompts", response_model=list[ComparisonPublic])
def compare_two_prompts(
    run_id: Id,
    engine: EngineDep,
    caller: Viewer,
    prompts: Annotated[str, Query(min_length=3, max_length=400, description="A,B")],
    min_effect: Annotated[float, Query(ge=0, le=1)] = 0.05,
) -> list[ComparisonPublic]:
    """Two prompt variants of a run, on each model that ran both (model@A against
    model@B), as `panopticon compare RUN --prompts A,B`; the model's production scores
    beside, unpaired (`production`, `production_note`)."""
    row = get_run(engine, caller.workspace_id, run_id)
    names = [p.strip() for p in prompts.split(",") if p.strip()]
    if len(names) != 2:
        raise ConfigError(Issue("give two prompt ids", field="prompts", hint="prompts=a,b"))
    return [
        ComparisonPublic(**c.as_dict())
        for c in with_production(
            engine,
            caller.workspace_id,
            compare_prompts(engine, row.id, names[0], names[1], min_effect=min_effect),
        )
    ]


@router.get("/{run_id}/answers", response_model=list[QueryAnswersPublic])
def answers(
    run_id: Id,
    engine: EngineDep,
    caller: Viewer,
    query: Annotated[
        str | None, Query(max_length=200, description="One query: dataset id, FILE:LINE or number.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Queries per page.")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> list[QueryAnswersPublic]:
    """Every model's (and prompt variant's) answer to each query, side by side, a page of
    queries at a time (in run order)."""
    row = get_run(engine, caller.workspace_id, run_id)
    page, _ = answers_side_by_side(engine, row.id, query=query, offset=offset, limit=limit)
    return [QueryAnswersPublic(**qa.as_dict()) for qa in page]


@router.get(
    "/{run_id}/export",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}, "text/csv": {}, "application/x-ndjson": {}}}
    },
)
def export(
    run_id: Id, engine: EngineDep, caller: Viewer, format: Literal["json", "jsonl", "csv"] = "json"
) -> Response:
    """Every result with its scores, as `panopticon export`."""
    row = get_run(engine, caller.workspace_id, run_id)
    data = render_export(
        format,
        run_public(row),
        summary_rows(engine, row.id),
        summarize_run(engine, row.id).as_dict(),
        pairwise_results(engine, row.id),
    )
    return Response(data, media_type=FORMATS[format])
