"""The query and metric catalogs: browse, search, create, edit, delete."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from panopticon.errors import ConfigError
from panopticon.services.access import AuthError, Principal
from panopticon.services.catalog import MetricCatalog, QueryCatalog
from panopticon.web.common import (
    PAGE,
    check_csrf,
    error_context,
    int_param,
    principal_of,
    read_form,
    render,
)
from panopticon.web.session import Session

router = APIRouter(prefix="/ui", include_in_schema=False)


# -- queries and metrics ----------------------------------------------------------------------


def _catalog(request: Request, principal: Principal, kind: str) -> QueryCatalog | MetricCatalog:
    """The queries or the metrics of the caller's workspace: the same operations."""
    state = request.app.state
    if kind == "query":
        return QueryCatalog(state.engine, state.settings, state.env, principal.workspace_id)
    return MetricCatalog(state.engine, state.settings, state.env, principal.workspace_id)


@router.get("/queries")
def queries(request: Request) -> Response:
    principal, session = principal_of(request)
    return _catalog_page(request, principal, session, "query", None)


def _catalog_page(
    request: Request,
    principal: Principal,
    session: Session,
    kind: str,
    error: dict[str, Any] | None,
    form: dict[str, str] | None = None,
) -> Response:
    p = request.query_params
    page = int_param(p.get("page"), "page") or 1
    search = (p.get("q") or "").strip()
    catalog = _catalog(request, principal, kind)
    mode = note = None
    scores: dict[int, float] = {}
    items: list[Any]
    if search:
        mode, note, hits = catalog.search(search, 20)
        items = [catalog.get(i) for i, _ in hits]
        scores = dict(hits)
        total = len(items)
    else:
        text = (p.get("text") or "").strip() or None
        group = (p.get("type") or "").strip() or None
        offset = (page - 1) * PAGE
        if isinstance(catalog, QueryCatalog):
            queries = catalog.list(theme=group, text=text, limit=PAGE, offset=offset)
            items, total = list(queries.items), queries.total
        else:
            metrics = catalog.list(type=group, text=text, limit=PAGE, offset=offset)
            items, total = list(metrics.items), metrics.total
    return render(
        request,
        "catalog.html",
        {
            "kind": kind,
            "items": items,
            "total": total,
            "page": page,
            "pages": max(1, math.ceil(total / PAGE)),
            "search": search,
            "mode": mode,
            "note": note,
            "scores": scores,
            "params": {k: p.get(k, "") for k in ("text", "type")},
            "error": error,
            "form": form or {},
        },
        status=422 if error else 200,
        principal=principal,
        session=session,
    )


async def _create(request: Request, kind: str) -> Response:
    principal, session = principal_of(request)
    form = await read_form(request)
    check_csrf(request, session, form)
    try:
        principal.require("member")
        row_id = _catalog(request, principal, kind).save_form(form)
    except (ConfigError, AuthError) as exc:
        return _catalog_page(request, principal, session, kind, error_context(exc), form)
    return RedirectResponse(f"/ui/{_plural(kind)}/{row_id}?saved=1", status_code=303)


def _plural(kind: str) -> str:
    return "queries" if kind == "query" else "metrics"


@router.post("/queries")
async def create_query(request: Request) -> Response:
    return await _create(request, "query")


@router.get("/metrics")
def metrics(request: Request) -> Response:
    principal, session = principal_of(request)
    return _catalog_page(request, principal, session, "metric", None)


@router.post("/metrics")
async def create_metric(request: Request) -> Response:
    return await _create(request, "metric")


def _item_page(
    request: Request,
    principal: Principal,
    session: Session,
    kind: str,
    item_id: int,
    error: dict[str, Any] | None = None,
) -> Response:
    item = _catalog(request, principal, kind).get(item_id)
    return render(
        request,
        "item.html",
        {
            "kind": kind,
            "item": item,
            "error": error,
            "saved": request.query_params.get("saved") == "1",
        },
        status=422 if error else 200,
        principal=principal,
        session=session,
    )


@router.get("/queries/{item_id}")
def query_page(request: Request, item_id: int) -> Response:
    principal, session = principal_of(request)
    return _item_page(request, principal, session, "query", item_id)


@router.get("/metrics/{item_id}")
def metric_page(request: Request, item_id: int) -> Response:
    principal, session = principal_of(request)
    return _item_page(request, principal, session, "metric", item_id)


async def _update(request: Request, kind: str, item_id: int) -> Response:
    principal, session = principal_of(request)
    form = await read_form(request)
    check_csrf(request, session, form)
    catalog = _catalog(request, principal, kind)
    try:
        principal.require("member")
        if form.get("action") == "delete":
            catalog.delete(item_id)
            return RedirectResponse(f"/ui/{_plural(kind)}", status_code=303)
        catalog.save_form(form, item_id)
    except (ConfigError, AuthError) as exc:
        return _item_page(request, principal, session, kind, item_id, error_context(exc))
    return RedirectResponse(f"/ui/{_plural(kind)}/{item_id}?saved=1", status_code=303)


@router.post("/queries/{item_id}")
async def update_query(request: Request, item_id: int) -> Response:
    return await _update(request, "query", item_id)


@router.post("/metrics/{item_id}")
async def update_metric(request: Request, item_id: int) -> Response:
    return await _update(request, "metric", item_id)
