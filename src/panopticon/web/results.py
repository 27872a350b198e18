"""Results with their filters and drill-down, and runs with live progress and export."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from panopticon.errors import ConfigError, Issue
from panopticon.services.access import Principal
from panopticon.services.exports import FORMATS, render_export, render_scores
from panopticon.services.registry import ModelRegistry
from panopticon.services.results import (
    SOURCE_FILTERS,
    ResultFilters,
    check_source,
    find_results,
    get_result,
    iter_results,
)
from panopticon.services.runs import (
    get_run,
    pairwise_results,
    read_totals,
    run_public,
    summarize_run,
    summary_rows,
)
from panopticon.web.common import (
    PAGE,
    bool_param,
    float_param,
    int_param,
    metric_names,
    principal_of,
    recent_runs,
    render,
)

router = APIRouter(prefix="/ui", include_in_schema=False)


# -- results --------------------------------------------------------------------------------

RESULT_FILTERS = ("source", "theme", "model", "metric", "run", "min", "max", "passed", "text")


def _filters(request: Request) -> ResultFilters:
    p = request.query_params
    return ResultFilters(
        theme=p.get("theme") or None,
        model=p.get("model") or None,
        metric=p.get("metric") or None,
        run_id=int_param(p.get("run"), "run"),
        min_score=float_param(p.get("min"), "min"),
        max_score=float_param(p.get("max"), "max"),
        passed=bool_param(p.get("passed")),
        text=(p.get("text") or "").strip() or None,
        source=check_source(p.get("source")),
    )


@router.get("/results")
def results(request: Request) -> Response:
    principal, session = principal_of(request)
    p = request.query_params
    params = {k: p.get(k, "") for k in RESULT_FILTERS}
    page = int_param(p.get("page"), "page") or 1
    filters = _filters(request)
    engine = request.app.state.engine
    found = find_results(engine, principal.workspace_id, filters, PAGE, (page - 1) * PAGE)
    context = {
        "rows": found.items,
        "total": found.total,
        "exact": found.exact,
        "page": page,
        "pages": max(1, math.ceil(found.total / PAGE)),
        "params": params,
        "query": lambda **changes: urlencode(
            {k: v for k, v in {**params, "page": page, **changes}.items() if v not in ("", None)}
        ),
        "export": urlencode({k: v for k, v in params.items() if v}),
        "sources": SOURCE_FILTERS,
    }
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "results":
        return render(request, "_results_table.html", context, principal=principal, session=session)
    models = [
        m["id"]
        for m in ModelRegistry(engine, principal.workspace_id, request.app.state.settings).all()
    ]
    if params["model"] and params["model"] not in models:
        # a production row's model (a served model's full name, "(several models)"), as the
        # Summary links to it: shown as the filter it is, not as "every model"
        models.append(params["model"])
    return render(
        request,
        "results.html",
        {
            **context,
            "runs": recent_runs(request, principal),
            "models": models,
            "metrics": metric_names(request, principal),
        },
        principal=principal,
        session=session,
    )


@router.get("/results/export")
def results_export(request: Request) -> Response:
    """The scores the results filters select, as a file (CSV, JSON or JSON lines)."""
    principal, _ = principal_of(request)
    fmt = request.query_params.get("format", "csv")
    if fmt not in FORMATS:
        raise ConfigError(
            Issue(f"unknown format '{fmt}'", field="format", hint="csv, jsonl or json")
        )
    rows = iter_results(request.app.state.engine, principal.workspace_id, _filters(request))
    return StreamingResponse(
        render_scores(fmt, rows),
        media_type=FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="scores.{fmt}"'},
    )


@router.get("/results/{result_id}")
def result(request: Request, result_id: str) -> Response:
    principal, session = principal_of(request)
    item = get_result(request.app.state.engine, principal.workspace_id, result_id)
    return render(request, "result.html", {"item": item}, principal=principal, session=session)


# -- runs -----------------------------------------------------------------------------------


@router.get("/runs")
def runs_page(request: Request) -> Response:
    principal, session = principal_of(request)
    return render(
        request,
        "runs.html",
        {"runs": recent_runs(request, principal)},
        principal=principal,
        session=session,
    )


def _progress(request: Request, principal: Principal, run_id: int) -> dict[str, Any]:
    engine = request.app.state.engine
    row = get_run(engine, principal.workspace_id, run_id)
    totals = read_totals(engine, row.id, row.planned)
    public = run_public(row)
    done = totals.answers + totals.failed
    return {
        "run": public,
        "totals": totals,
        "done": done,
        "percent": 100.0 * done / row.planned if row.planned else 100.0,
        "live": public["state"] in ("running", "pending"),
    }


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: int) -> Response:
    """The run's progress at once; its report's charts load just after (a large run's
    report takes longer than a page should)."""
    principal, session = principal_of(request)
    progress = _progress(request, principal, run_id)
    return render(
        request,
        "run.html",
        {**progress, "formats": list(FORMATS), "gates": _gates(request, principal, run_id)},
        principal=principal,
        session=session,
    )


def _gates(request: Request, principal: Principal, run_id: int) -> list[Any]:
    """The outcome of the suite's ``gates:`` once the run is done (none while it runs)."""
    from panopticon.services.gates import suite_gates

    engine = request.app.state.engine
    row = get_run(engine, principal.workspace_id, run_id)
    if not row.suite.get("gates") or row.status in ("running", "pending"):
        return []
    return suite_gates(summarize_run(engine, row.id), row.suite)


_REPORTS: dict[tuple[int, str], Any] = {}  # finished runs' charts: they no longer change


@router.get("/runs/{run_id}/report")
def run_report(request: Request, run_id: int) -> Response:
    principal, session = principal_of(request)
    from panopticon.reports.html import sections
    from panopticon.services.reports import report_data

    engine = request.app.state.engine
    row = get_run(engine, principal.workspace_id, run_id)
    key = (row.id, f"{row.status}:{row.finished_at}")
    charts = _REPORTS.get(key) if row.finished_at else None
    if charts is None:
        charts = sections(report_data(engine, row))
        if row.finished_at and row.status != "running":
            if len(_REPORTS) > 32:
                _REPORTS.clear()
            _REPORTS[key] = charts
    return render(request, "_report.html", {"charts": charts}, principal=principal, session=session)


@router.get("/runs/{run_id}/progress")
def run_progress(request: Request, run_id: int) -> Response:
    principal, session = principal_of(request)
    response = render(
        request,
        "_progress.html",
        _progress(request, principal, run_id),
        principal=principal,
        session=session,
    )
    return response


@router.get("/runs/{run_id}/export")
def run_export(request: Request, run_id: int) -> Response:
    principal, _ = principal_of(request)
    fmt = request.query_params.get("format", "csv")
    if fmt not in FORMATS:
        raise ConfigError(
            Issue(f"unknown format '{fmt}'", field="format", hint="csv, jsonl or json")
        )
    engine = request.app.state.engine
    row = get_run(engine, principal.workspace_id, run_id)
    data = render_export(
        fmt,
        run_public(row),
        summary_rows(engine, row.id),
        summarize_run(engine, row.id).as_dict(),
        pairwise_results(engine, row.id),
    )
    return Response(
        data,
        media_type=FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="run-{row.id}.{fmt}"'},
    )
