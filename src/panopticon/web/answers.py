"""The answers page: every model's (and prompt variant's) answer to each query of a run,
side by side, from the same service as ``GET /api/runs/{id}/answers`` and
``panopticon show RUN --answers``."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from fastapi.responses import Response

from panopticon.services.answers import answers_side_by_side
from panopticon.services.runs import get_run, run_public
from panopticon.web.common import int_param, principal_of, render

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

PER_PAGE = 10  # queries a page: each shows every model's answer in full


@router.get("/runs/{run_id}/answers")
def answers_page(request: Request, run_id: int) -> Response:
    principal, session = principal_of(request)
    engine = request.app.state.engine
    row = get_run(engine, principal.workspace_id, run_id)
    query = (request.query_params.get("query") or "").strip() or None
    page = int_param(request.query_params.get("page"), "page") or 1
    shown, total = answers_side_by_side(
        engine, row.id, query=query, offset=(page - 1) * PER_PAGE, limit=PER_PAGE
    )
    pages = max(1, math.ceil(total / PER_PAGE))
    arms = sorted({a.model for qa in shown for a in qa.answers})
    return render(
        request,
        "answers.html",
        {
            "run": run_public(row),
            "queries": shown,
            "total": total,
            "arms": arms,
            "page": page,
            "pages": pages,
            "query": query,
        },
        principal=principal,
        session=session,
    )
