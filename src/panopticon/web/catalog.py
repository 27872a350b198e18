"""The query and metric catalogs: browse, search, create, edit, delete."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from panopticon.api.schemas import (
    MetricCreate,
    MetricUpdate,
    QueryCreate,
    QueryUpdate,
)
from panopticon.errors import ConfigError
from panopticon.services.access import AuthError, Principal
from panopticon.services.catalog import MetricCatalog, QueryCatalog
from panopticon.services.search import Search
from panopticon.web.common import (
    PAGE,
    check_csrf,
    clean,
    error_context,
    float_param,
    int_param,
    json_field,
    principal_of,
    read_form,
    render,
    validate,
)
from panopticon.web.session import Session

router = APIRouter(prefix="/ui", include_in_schema=False)


# -- queries and metrics ----------------------------------------------------------------------


def _searcher(request: Request, principal: Principal) -> Search:
    state = request.app.state
    return Search(state.engine, state.settings, state.env, principal.workspace_id)


def _catalog(request: Request, principal: Principal, kind: str) -> QueryCatalog | MetricCatalog:
    """The queries or the metrics of the caller's workspace: the same operations."""
    engine = request.app.state.engine
    if kind == "query":
        return QueryCatalog(engine, principal.workspace_id)
    return MetricCatalog(engine, principal.workspace_id)


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
    if search:
        mode, note, hits = _searcher(request, principal).search(kind, search, 20)
        items = [catalog.get(i) for i, _ in hits]
        scores = dict(hits)
        total = len(items)
    else:
        text = (p.get("text") or "").strip() or None
        group = (p.get("type") or "").strip() or None
        if isinstance(catalog, QueryCatalog):
            listing = catalog.list(theme=group, text=text, limit=PAGE, offset=(page - 1) * PAGE)
        else:
            listing = catalog.list(type=group, text=text, limit=PAGE, offset=(page - 1) * PAGE)
        items, total = listing.items, listing.total
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


def _catalog_body(kind: str, form: dict[str, str], *, update: bool) -> dict[str, Any]:
    body = clean(form, "item", "type", "expected", "context", "name")
    metadata = json_field(form, "metadata")
    if metadata is not None:
        body["metadata"] = metadata
    if kind == "metric" and not update:
        body.pop("expected", None), body.pop("context", None)
        threshold = float_param(form.get("threshold"), "threshold")
        if threshold is not None:
            body["threshold"] = threshold
        low, high = (
            float_param(form.get("scale_low"), "scale"),
            float_param(form.get("scale_high"), "scale"),
        )
        if low is not None and high is not None:
            body["scale"] = (low, high)
    elif kind == "metric":
        body = {k: v for k, v in body.items() if k in ("item", "type", "metadata")}
    else:
        body.pop("name", None)
    model: type[BaseModel]
    if kind == "query":
        model = QueryUpdate if update else QueryCreate
    else:
        model = MetricUpdate if update else MetricCreate
    return validate(model, body).model_dump(exclude_unset=update)


async def _create(request: Request, kind: str) -> Response:
    principal, session = principal_of(request)
    form = await read_form(request)
    check_csrf(request, session, form)
    try:
        principal.require("member")
        row = _catalog(request, principal, kind).create(_catalog_body(kind, form, update=False))
    except (ConfigError, AuthError) as exc:
        return _catalog_page(request, principal, session, kind, error_context(exc), form)
    _searcher(request, principal).index_quietly(kind, [row["id"]])
    return RedirectResponse(f"/ui/{_plural(kind)}/{row['id']}?saved=1", status_code=303)


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
        catalog.update(item_id, _catalog_body(kind, form, update=True))
    except (ConfigError, AuthError) as exc:
        return _item_page(request, principal, session, kind, item_id, error_context(exc))
    _searcher(request, principal).index_quietly(kind, [item_id])
    return RedirectResponse(f"/ui/{_plural(kind)}/{item_id}?saved=1", status_code=303)


@router.post("/queries/{item_id}")
async def update_query(request: Request, item_id: int) -> Response:
    return await _update(request, "query", item_id)


@router.post("/metrics/{item_id}")
async def update_metric(request: Request, item_id: int) -> Response:
    return await _update(request, "metric", item_id)
