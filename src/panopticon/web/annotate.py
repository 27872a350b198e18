"""People's labels on results and the judges' calibration against them."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from panopticon.errors import ConfigError, Issue
from panopticon.services.annotations import calibrate, calibrate_production, label_result
from panopticon.services.results import ResultFilters, ScoreRow, find_results
from panopticon.services.runs import (
    get_run,
    run_public,
)
from panopticon.web.common import (
    bool_param,
    check_csrf,
    float_param,
    int_param,
    metric_names,
    posted,
    principal_of,
    recent_runs,
    render,
    run_param,
    templates,
)

router = APIRouter(prefix="/ui", include_in_schema=False)


# -- annotation -----------------------------------------------------------------------------


@router.get("/annotate")
def annotate(request: Request) -> Response:
    principal, session = principal_of(request)
    engine = request.app.state.engine
    runs = recent_runs(request, principal)
    run = run_param(request, principal, runs)
    metric = request.query_params.get("metric") or None
    page = int_param(request.query_params.get("page"), "page") or 1
    rows: list[ScoreRow] = []
    total = 0
    if run is not None:
        found = find_results(
            engine,
            principal.workspace_id,
            ResultFilters(run_id=run["id"], metric=metric),
            20,
            (page - 1) * 20,
        )
        rows, total = found.items, found.total
    return render(
        request,
        "annotate.html",
        {
            "runs": runs,
            "run": run,
            "metric": metric,
            "metrics": metric_names(request, principal),
            "rows": rows,
            "total": total,
            "page": page,
            "pages": max(1, math.ceil(total / 20)),
            "calibration": [c.as_dict() for c in calibrate(engine, run["id"])] if run else [],
            "production": [
                c.as_dict() for c in calibrate_production(engine, principal.workspace_id)
            ],
            "annotator": f"web:{principal.workspace}:{principal.key_id or 'admin'}",
        },
        principal=principal,
        session=session,
    )


@router.post("/annotate")
async def save_label(request: Request) -> Response:
    return await posted(request, _save_label)


def _save_label(request: Request, form: dict[str, Any]) -> Response:
    principal, session = principal_of(request)
    check_csrf(request, session, form)
    principal.require("member")
    annotator = (form.get("annotator") or "").strip() or f"key {principal.key_id or 'admin'}"
    replaced = label_result(
        request.app.state.engine,
        principal.workspace_id,
        form.get("result_id", ""),
        form.get("metric", ""),
        annotator[:200],
        value=float_param(form.get("value"), "value"),
        passed=bool_param(form.get("passed")),
        comment=(form.get("comment") or "").strip()[:10_000] or None,
    )
    response = HTMLResponse(
        templates.get_template("_saved.html").render(replaced=replaced),
        headers={"HX-Trigger": "labelSaved"},
    )
    return response


@router.get("/annotate/calibration")
def calibration(request: Request) -> Response:
    principal, session = principal_of(request)
    run_id = int_param(request.query_params.get("run"), "run")
    if run_id is None:
        raise ConfigError(Issue("which run?", field="run"))
    run = get_run(request.app.state.engine, principal.workspace_id, run_id)
    return render(
        request,
        "_calibration.html",
        {
            "calibration": [c.as_dict() for c in calibrate(request.app.state.engine, run.id)],
            "run": run_public(run),
        },
        principal=principal,
        session=session,
    )
