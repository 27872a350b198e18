"""Summary, model comparison, theme analysis and trends."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from panopticon.errors import ConfigError, Issue
from panopticon.services import dashboard
from panopticon.services.compare import (
    Comparison,
    compare_models,
    compare_runs,
    with_production,
)
from panopticon.services.results import SOURCE_FILTERS
from panopticon.services.runs import (
    get_run,
)
from panopticon.web.common import (
    int_param,
    metric_names,
    principal_of,
    recent_runs,
    render,
    run_param,
)

router = APIRouter(prefix="/ui", include_in_schema=False)


# finished runs' paired comparisons (production scores, which go on arriving, are added to
# each answer, never cached)
_PAIRED: dict[tuple[Any, ...], list[Comparison]] = {}

# -- summary ------------------------------------------------------------------------------


@router.get("/")
def summary(request: Request) -> Response:
    principal, session = principal_of(request)
    days = int_param(request.query_params.get("days"), "days") or 30
    data = dashboard.overview(request.app.state.engine, principal.workspace_id, days)
    runs = recent_runs(request, principal)[:8]
    chart_models = {
        "labels": [m.label for m in data.models],
        "values": [m.mean for m in data.models],
        "low": [m.low for m in data.models],
        "high": [m.high for m in data.models],
    }
    chart_runs = {
        "labels": data.runs_per_day.days,
        "series": [{"label": s.status, "values": s.counts} for s in data.runs_per_day.series],
    }
    return render(
        request,
        "summary.html",
        {"data": data, "runs": runs, "chart_models": chart_models, "chart_runs": chart_runs},
        principal=principal,
        session=session,
    )


# -- model comparison -----------------------------------------------------------------------


@router.get("/compare")
def compare(request: Request) -> Response:
    principal, session = principal_of(request)
    engine = request.app.state.engine
    runs = recent_runs(request, principal)
    run = run_param(request, principal, runs)
    data = dashboard.model_metrics(engine, principal.workspace_id, run["id"] if run else None)
    production = dashboard.model_metrics(engine, principal.workspace_id, None, "production")
    panels = [
        {
            "metric": metric,
            "labels": data.models,
            "values": [_attr(data.cells, m, metric, "mean") for m in data.models],
            "low": [_attr(data.cells, m, metric, "low") for m in data.models],
            "high": [_attr(data.cells, m, metric, "high") for m in data.models],
        }
        for metric in data.metrics
    ]
    radar = {
        "labels": data.metrics,
        "series": [
            {
                "label": m,
                "values": [_attr(data.cells, m, metric, "mean") for metric in data.metrics],
            }
            for m in data.models
        ],
    }
    p = request.query_params
    a, b = p.get("a"), p.get("b")
    run_a, run_b = int_param(p.get("run_a"), "run_a"), int_param(p.get("run_b"), "run_b")
    paired = ""
    if (a and b) or (run_a and run_b):  # the comparison loads just after the page
        paired = urlencode({k: v for k, v in p.items() if k in ("run", "a", "b", "run_a", "run_b")})
    return render(
        request,
        "compare.html",
        {
            "runs": runs,
            "run": run,
            "data": data,
            "production": production,
            "panels": panels,
            "radar": radar,
            "a": a,
            "b": b,
            "run_a": run_a,
            "run_b": run_b,
            "paired": paired,
        },
        principal=principal,
        session=session,
    )


@router.get("/compare/paired")
def compare_paired(request: Request) -> Response:
    """Two models of a run, or two runs, item by item (a fragment of the compare page)."""
    principal, session = principal_of(request)
    engine = request.app.state.engine
    p = request.query_params
    a, b = p.get("a"), p.get("b")
    run_id = int_param(p.get("run"), "run")
    run_a, run_b = int_param(p.get("run_a"), "run_a"), int_param(p.get("run_b"), "run_b")
    if a and b and run_id:
        run = get_run(engine, principal.workspace_id, run_id)
        key: tuple[Any, ...] = ("models", run.id, a, b, run.finished_at)
        comparisons = _PAIRED.get(key) if run.finished_at else None
        if comparisons is None:
            comparisons = [compare_models(engine, run.id, a, b)]
    elif run_a and run_b:
        ra = get_run(engine, principal.workspace_id, run_a)
        rb = get_run(engine, principal.workspace_id, run_b)
        key = ("runs", ra.id, rb.id, ra.finished_at, rb.finished_at)
        comparisons = _PAIRED.get(key) if ra.finished_at and rb.finished_at else None
        if comparisons is None:
            comparisons = compare_runs(engine, ra.id, rb.id)
    else:
        raise ConfigError(Issue("choose two models of a run, or two runs", field="a"))
    if all(k is not None for k in key):  # finished runs: the comparison no longer changes
        if len(_PAIRED) > 64:
            _PAIRED.clear()
        _PAIRED[key] = comparisons
    return render(
        request,
        "_paired.html",
        {
            "comparisons": [
                c.as_dict() for c in with_production(engine, principal.workspace_id, comparisons)
            ]
        },
        principal=principal,
        session=session,
    )


def _attr(cells: dict[tuple[str, str], Any], a: str, b: str, name: str) -> Any:
    cell = cells.get((a, b))
    return getattr(cell, name) if cell is not None else None


# -- theme analysis -------------------------------------------------------------------------


@router.get("/themes")
def themes(request: Request) -> Response:
    principal, session = principal_of(request)
    runs = recent_runs(request, principal)
    run = run_param(request, principal, runs)
    metric = request.query_params.get("metric") or None
    data = dashboard.heatmap(
        request.app.state.engine, principal.workspace_id, run["id"] if run else None, metric
    )
    return render(
        request,
        "themes.html",
        {
            "runs": runs,
            "run": run,
            "metric": metric,
            "metrics": metric_names(request, principal),
            "data": data,
        },
        principal=principal,
        session=session,
    )


# -- trends ---------------------------------------------------------------------------------


@router.get("/trends")
def trends(request: Request) -> Response:
    principal, session = principal_of(request)
    metrics = metric_names(request, principal)
    metric = request.query_params.get("metric") or (metrics[0] if metrics else None)
    days = int_param(request.query_params.get("days"), "days") or 30
    source = request.query_params.get("source") or None
    data = dashboard.trends(request.app.state.engine, principal.workspace_id, metric, days, source)
    return render(
        request,
        "trends.html",
        {
            "metrics": metrics,
            "metric": metric,
            "days": days,
            "source": source,
            "sources": SOURCE_FILTERS,
            "data": data,
            "chart": asdict(data),
        },
        principal=principal,
        session=session,
    )
