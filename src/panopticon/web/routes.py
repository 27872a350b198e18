"""The pages. Each handler reads its parameters, calls services, renders a template.

Errors are shown, never swallowed: bad input re-renders its form with the message and
the field; a missing row or a role that may not is a page that says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError

from panopticon import __version__
from panopticon.api.schemas import (
    MetricCreate,
    MetricUpdate,
    ModelCreate,
    ProviderCreate,
    ProviderUpdate,
    QueryCreate,
    QueryUpdate,
)
from panopticon.errors import ConfigError, Issue, NotFoundError, PanopticonError
from panopticon.services import dashboard
from panopticon.services.access import AuthError, Principal, authenticate, authenticate_hash
from panopticon.services.annotations import calibrate, label_result
from panopticon.services.catalog import MetricCatalog, QueryCatalog
from panopticon.services.compare import compare_models, compare_runs
from panopticon.services.exports import FORMATS, render_export
from panopticon.services.registry import ModelRegistry
from panopticon.services.results import ResultFilters, find_results, get_result
from panopticon.services.runs import (
    get_run,
    list_runs,
    read_totals,
    run_public,
    summarize_run,
    summary_rows,
)
from panopticon.services.search import Search
from panopticon.web.session import COOKIE, MAX_AGE, Session, load_secret

__all__ = ["install", "render_error"]

HERE = Path(__file__).parent
PAGE = 50
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["version"] = __version__
templates.env.filters["tojson_attr"] = lambda v: json.dumps(v, default=str)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
)

router = APIRouter(prefix="/ui", include_in_schema=False)


# -- plumbing ---------------------------------------------------------------------------


def _secret(request: Request) -> bytes:
    app = request.app
    if getattr(app.state, "web_secret", None) is None:
        app.state.web_secret = load_secret(app.state.settings)
    secret: bytes = app.state.web_secret
    return secret


def _session(request: Request) -> Session | None:
    return Session.decode(_secret(request), request.cookies.get(COOKIE))


class SignIn(Exception):
    """Not signed in (or the key was revoked): go to the sign-in page."""


def _principal(request: Request) -> tuple[Principal, Session]:
    session = _session(request)
    if session is None or session.active_hash is None:
        raise SignIn()
    try:
        principal = authenticate_hash(
            request.app.state.engine, request.app.state.settings, session.active_hash
        )
    except AuthError:
        raise SignIn() from None
    return principal, session


def _check_csrf(request: Request, session: Session, form: dict[str, Any]) -> None:
    token = request.headers.get("X-CSRF-Token") or form.get("csrf")
    if token != session.csrf_token(_secret(request)):
        raise AuthError("the form is stale or came from another site; reload the page", 403)


def _render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    principal: Principal | None = None,
    session: Session | None = None,
) -> HTMLResponse:
    ctx = {
        "request": request,
        "principal": principal,
        "session": session,
        "csrf": session.csrf_token(_secret(request)) if session else "",
        "path": request.url.path,
        **context,
    }
    response = templates.TemplateResponse(request, template, ctx, status_code=status)
    response.headers["Content-Security-Policy"] = CSP
    return response


def render_error(request: Request, status: int, message: str, hint: str | None = None) -> Response:
    """An error as a page (or, for htmx, as the fragment it swaps in)."""
    if request.headers.get("HX-Request"):
        return HTMLResponse(
            templates.get_template("_error.html").render(message=message, hint=hint),
            status_code=200,  # htmx swaps 2xx only: the message replaces the target
            headers={"HX-Reswap": "innerHTML"},
        )
    session = _session(request)
    return _render(
        request,
        "error.html",
        {"status": status, "message": message, "hint": hint},
        status=status,
        session=session,
    )


Handler = Callable[..., Any]


async def _form(request: Request) -> dict[str, Any]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _clean(form: dict[str, str], *keys: str) -> dict[str, Any]:
    """Form fields as a body: blanks dropped (they mean 'not given')."""
    return {k: form[k].strip() for k in keys if form.get(k, "").strip() != ""}


def _issues(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or None, "message": e["msg"]}
        for e in exc.errors()
    ]


def _validate(model: type[BaseModel], body: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ConfigError([Issue(i["message"], field=i["field"]) for i in _issues(exc)]) from None


def _json_field(form: dict[str, str], key: str) -> dict[str, Any] | None:
    raw = form.get(key, "").strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            Issue(f"not valid JSON: {exc.msg} at character {exc.pos}", field=key)
        ) from None
    if not isinstance(value, dict):
        raise ConfigError(Issue('must be a JSON object, like {"lang": "en"}', field=key))
    return value


def _int(value: str | None, field: str, *, minimum: int = 1) -> int | None:
    if value is None or value.strip() == "":
        return None
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(Issue(f"'{value}' is not a whole number", field=field)) from None
    if n < minimum or n > 2_147_483_647:
        raise ConfigError(Issue(f"must be at least {minimum}", field=field))
    return n


def _float(value: str | None, field: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        f = float(value)
    except ValueError:
        raise ConfigError(Issue(f"'{value}' is not a number", field=field)) from None
    if not math.isfinite(f):
        raise ConfigError(Issue("must be a finite number", field=field))
    return f


def _bool(value: str | None) -> bool | None:
    return {"true": True, "pass": True, "false": False, "fail": False}.get((value or "").lower())


def _runs(request: Request, principal: Principal) -> list[dict[str, Any]]:
    return list_runs(request.app.state.engine, principal.workspace_id, limit=200)


def _run_param(
    request: Request, principal: Principal, runs: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The run a page looks at: ?run=ID, else the newest run with results."""
    chosen = _int(request.query_params.get("run"), "run")
    if chosen is not None:
        found = next((r for r in runs if r["id"] == chosen), None)
        if found is None:  # older than the list: read it (a 404 if it is not ours)
            return run_public(get_run(request.app.state.engine, principal.workspace_id, chosen))
        return found
    return next((r for r in runs if r["status"] != "pending"), runs[0] if runs else None)


def _metric_names(request: Request, principal: Principal) -> list[str]:
    page = MetricCatalog(request.app.state.engine, principal.workspace_id).list(limit=10_000)
    return sorted({m["name"] for m in page.items})


# -- sign-in ------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request) -> Response:
    return _render(
        request, "login.html", {"error": None, "next": request.query_params.get("next", "")}
    )


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    target = form.get("next") or "/ui/"
    if not target.startswith("/ui"):
        target = "/ui/"
    try:
        principal = authenticate(
            request.app.state.engine, request.app.state.settings, form.get("key", "").strip()
        )
    except AuthError as exc:
        return _render(
            request,
            "login.html",
            {"error": str(exc), "next": target},
            status=401,
        )
    from panopticon.services.access import hash_key

    session = _session(request) or Session()
    session.add(hash_key(form["key"].strip()), principal.workspace, principal.role)
    response = RedirectResponse(target, status_code=303)
    _set_cookie(request, response, session)
    return response


def _set_cookie(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.encode(_secret(request)),
        max_age=MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/ui",
    )


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


@router.post("/workspace")
async def switch_workspace(request: Request) -> Response:
    """Switch between the keys (and so the workspaces) this session signed in with."""
    _, session = _principal(request)
    form = await _form(request)
    _check_csrf(request, session, form)
    index = _int(form.get("key"), "key", minimum=0)
    if index is None or index >= len(session.keys):
        raise ConfigError(Issue("no such key in this session", field="key"))
    session.active = index
    response = RedirectResponse("/ui/", status_code=303)
    _set_cookie(request, response, session)
    return response


# -- summary ------------------------------------------------------------------------------


@router.get("/")
def summary(request: Request) -> Response:
    principal, session = _principal(request)
    days = _int(request.query_params.get("days"), "days") or 30
    data = dashboard.overview(request.app.state.engine, principal.workspace_id, days)
    runs = _runs(request, principal)[:8]
    chart_models = {
        "labels": [m["model"] for m in data["models"]],
        "values": [m["mean"] for m in data["models"]],
        "low": [m["low"] for m in data["models"]],
        "high": [m["high"] for m in data["models"]],
    }
    chart_runs = {
        "labels": data["runs_per_day"]["days"],
        "series": [
            {"label": s["status"], "values": s["counts"]} for s in data["runs_per_day"]["series"]
        ],
    }
    return _render(
        request,
        "summary.html",
        {"data": data, "runs": runs, "chart_models": chart_models, "chart_runs": chart_runs},
        principal=principal,
        session=session,
    )


# -- model comparison -----------------------------------------------------------------------


@router.get("/compare")
def compare(request: Request) -> Response:
    principal, session = _principal(request)
    engine = request.app.state.engine
    runs = _runs(request, principal)
    run = _run_param(request, principal, runs)
    data = dashboard.model_metrics(engine, principal.workspace_id, run["id"] if run else None)
    panels = [
        {
            "metric": metric,
            "labels": data["models"],
            "values": [_attr(data["cells"], m, metric, "mean") for m in data["models"]],
            "low": [_attr(data["cells"], m, metric, "low") for m in data["models"]],
            "high": [_attr(data["cells"], m, metric, "high") for m in data["models"]],
        }
        for metric in data["metrics"]
    ]
    radar = {
        "labels": data["metrics"],
        "series": [
            {
                "label": m,
                "values": [_attr(data["cells"], m, metric, "mean") for metric in data["metrics"]],
            }
            for m in data["models"]
        ],
    }
    p = request.query_params
    a, b = p.get("a"), p.get("b")
    run_a, run_b = _int(p.get("run_a"), "run_a"), _int(p.get("run_b"), "run_b")
    paired = ""
    if (a and b) or (run_a and run_b):  # the comparison loads just after the page
        paired = urlencode({k: v for k, v in p.items() if k in ("run", "a", "b", "run_a", "run_b")})
    return _render(
        request,
        "compare.html",
        {
            "runs": runs,
            "run": run,
            "data": data,
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
    principal, session = _principal(request)
    engine = request.app.state.engine
    p = request.query_params
    a, b = p.get("a"), p.get("b")
    run_id = _int(p.get("run"), "run")
    run_a, run_b = _int(p.get("run_a"), "run_a"), _int(p.get("run_b"), "run_b")
    if a and b and run_id:
        run = get_run(engine, principal.workspace_id, run_id)
        key: tuple[Any, ...] = ("models", run.id, a, b, run.finished_at)
        comparisons = _PAIRED.get(key) if run.finished_at else None
        if comparisons is None:
            comparisons = [compare_models(engine, run.id, a, b).as_dict()]
    elif run_a and run_b:
        ra = get_run(engine, principal.workspace_id, run_a)
        rb = get_run(engine, principal.workspace_id, run_b)
        key = ("runs", ra.id, rb.id, ra.finished_at, rb.finished_at)
        comparisons = _PAIRED.get(key) if ra.finished_at and rb.finished_at else None
        if comparisons is None:
            comparisons = [c.as_dict() for c in compare_runs(engine, ra.id, rb.id)]
    else:
        raise ConfigError(Issue("choose two models of a run, or two runs", field="a"))
    if all(k is not None for k in key):  # finished runs: the comparison no longer changes
        if len(_PAIRED) > 64:
            _PAIRED.clear()
        _PAIRED[key] = comparisons
    return _render(
        request,
        "_paired.html",
        {"comparisons": comparisons},
        principal=principal,
        session=session,
    )


def _attr(cells: dict[tuple[str, str], Any], a: str, b: str, name: str) -> Any:
    cell = cells.get((a, b))
    return getattr(cell, name) if cell is not None else None


# -- theme analysis -------------------------------------------------------------------------


@router.get("/themes")
def themes(request: Request) -> Response:
    principal, session = _principal(request)
    runs = _runs(request, principal)
    run = _run_param(request, principal, runs)
    metric = request.query_params.get("metric") or None
    data = dashboard.heatmap(
        request.app.state.engine, principal.workspace_id, run["id"] if run else None, metric
    )
    return _render(
        request,
        "themes.html",
        {
            "runs": runs,
            "run": run,
            "metric": metric,
            "metrics": _metric_names(request, principal),
            "data": data,
        },
        principal=principal,
        session=session,
    )


# -- results --------------------------------------------------------------------------------

RESULT_FILTERS = ("theme", "model", "metric", "run", "min", "max", "passed", "text")


@router.get("/results")
def results(request: Request) -> Response:
    principal, session = _principal(request)
    p = request.query_params
    params = {k: p.get(k, "") for k in RESULT_FILTERS}
    page = _int(p.get("page"), "page") or 1
    filters = ResultFilters(
        theme=p.get("theme") or None,
        model=p.get("model") or None,
        metric=p.get("metric") or None,
        run_id=_int(p.get("run"), "run"),
        min_score=_float(p.get("min"), "min"),
        max_score=_float(p.get("max"), "max"),
        passed=_bool(p.get("passed")),
        text=(p.get("text") or "").strip() or None,
    )
    engine = request.app.state.engine
    rows, total, exact = find_results(
        engine, principal.workspace_id, filters, PAGE, (page - 1) * PAGE
    )
    context = {
        "rows": rows,
        "total": total,
        "exact": exact,
        "page": page,
        "pages": max(1, math.ceil(total / PAGE)),
        "params": params,
        "query": lambda **changes: urlencode(
            {k: v for k, v in {**params, "page": page, **changes}.items() if v not in ("", None)}
        ),
    }
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "results":
        return _render(
            request, "_results_table.html", context, principal=principal, session=session
        )
    models = [m["id"] for m in ModelRegistry(engine, principal.workspace_id).all()]
    return _render(
        request,
        "results.html",
        {
            **context,
            "runs": _runs(request, principal),
            "models": models,
            "metrics": _metric_names(request, principal),
        },
        principal=principal,
        session=session,
    )


@router.get("/results/{result_id}")
def result(request: Request, result_id: str) -> Response:
    principal, session = _principal(request)
    item = get_result(request.app.state.engine, principal.workspace_id, result_id)
    return _render(request, "result.html", {"item": item}, principal=principal, session=session)


# -- runs -----------------------------------------------------------------------------------


@router.get("/runs")
def runs_page(request: Request) -> Response:
    principal, session = _principal(request)
    return _render(
        request,
        "runs.html",
        {"runs": _runs(request, principal)},
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
    principal, session = _principal(request)
    progress = _progress(request, principal, run_id)
    return _render(
        request,
        "run.html",
        {**progress, "formats": list(FORMATS)},
        principal=principal,
        session=session,
    )


_REPORTS: dict[tuple[int, str], Any] = {}  # finished runs' charts: they no longer change
_PAIRED: dict[tuple[Any, ...], list[dict[str, Any]]] = {}  # and their comparisons


@router.get("/runs/{run_id}/report")
def run_report(request: Request, run_id: int) -> Response:
    principal, session = _principal(request)
    from panopticon.reports.data import build_report
    from panopticon.reports.html import sections

    engine = request.app.state.engine
    row = get_run(engine, principal.workspace_id, run_id)
    key = (row.id, f"{row.status}:{row.finished_at}")
    charts = _REPORTS.get(key) if row.finished_at else None
    if charts is None:
        charts = sections(build_report(engine, row))
        if row.finished_at and row.status != "running":
            if len(_REPORTS) > 32:
                _REPORTS.clear()
            _REPORTS[key] = charts
    return _render(
        request, "_report.html", {"charts": charts}, principal=principal, session=session
    )


@router.get("/runs/{run_id}/progress")
def run_progress(request: Request, run_id: int) -> Response:
    principal, session = _principal(request)
    response = _render(
        request,
        "_progress.html",
        _progress(request, principal, run_id),
        principal=principal,
        session=session,
    )
    return response


@router.get("/runs/{run_id}/export")
def run_export(request: Request, run_id: int) -> Response:
    principal, _ = _principal(request)
    fmt = request.query_params.get("format", "csv")
    if fmt not in FORMATS:
        raise ConfigError(
            Issue(f"unknown format '{fmt}'", field="format", hint="csv, jsonl or json")
        )
    engine = request.app.state.engine
    row = get_run(engine, principal.workspace_id, run_id)
    data = render_export(
        fmt, run_public(row), summary_rows(engine, row.id), summarize_run(engine, row.id).as_dict()
    )
    return Response(
        data,
        media_type=FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="run-{row.id}.{fmt}"'},
    )


# -- trends ---------------------------------------------------------------------------------


@router.get("/trends")
def trends(request: Request) -> Response:
    principal, session = _principal(request)
    metrics = _metric_names(request, principal)
    metric = request.query_params.get("metric") or (metrics[0] if metrics else None)
    days = _int(request.query_params.get("days"), "days") or 30
    data = dashboard.trends(request.app.state.engine, principal.workspace_id, metric, days)
    return _render(
        request,
        "trends.html",
        {"metrics": metrics, "metric": metric, "days": days, "data": data},
        principal=principal,
        session=session,
    )


# -- annotation -----------------------------------------------------------------------------


@router.get("/annotate")
def annotate(request: Request) -> Response:
    principal, session = _principal(request)
    engine = request.app.state.engine
    runs = _runs(request, principal)
    run = _run_param(request, principal, runs)
    metric = request.query_params.get("metric") or None
    page = _int(request.query_params.get("page"), "page") or 1
    rows: list[dict[str, Any]] = []
    total = 0
    if run is not None:
        rows, total, _ = find_results(
            engine,
            principal.workspace_id,
            ResultFilters(run_id=run["id"], metric=metric),
            20,
            (page - 1) * 20,
        )
    return _render(
        request,
        "annotate.html",
        {
            "runs": runs,
            "run": run,
            "metric": metric,
            "metrics": _metric_names(request, principal),
            "rows": rows,
            "total": total,
            "page": page,
            "pages": max(1, math.ceil(total / 20)),
            "calibration": [c.as_dict() for c in calibrate(engine, run["id"])] if run else [],
            "annotator": f"web:{principal.workspace}:{principal.key_id or 'admin'}",
        },
        principal=principal,
        session=session,
    )


@router.post("/annotate")
async def save_label(request: Request) -> Response:
    principal, session = _principal(request)
    form = await _form(request)
    _check_csrf(request, session, form)
    principal.require("member")
    annotator = (form.get("annotator") or "").strip() or f"key {principal.key_id or 'admin'}"
    replaced = label_result(
        request.app.state.engine,
        principal.workspace_id,
        form.get("result_id", ""),
        form.get("metric", ""),
        annotator[:200],
        value=_float(form.get("value"), "value"),
        passed=_bool(form.get("passed")),
        comment=(form.get("comment") or "").strip()[:10_000] or None,
    )
    response = HTMLResponse(
        templates.get_template("_saved.html").render(replaced=replaced),
        headers={"HX-Trigger": "labelSaved"},
    )
    return response


@router.get("/annotate/calibration")
def calibration(request: Request) -> Response:
    principal, session = _principal(request)
    run_id = _int(request.query_params.get("run"), "run")
    if run_id is None:
        raise ConfigError(Issue("which run?", field="run"))
    run = get_run(request.app.state.engine, principal.workspace_id, run_id)
    return _render(
        request,
        "_calibration.html",
        {
            "calibration": [c.as_dict() for c in calibrate(request.app.state.engine, run.id)],
            "run": run_public(run),
        },
        principal=principal,
        session=session,
    )


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
    principal, session = _principal(request)
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
    page = _int(p.get("page"), "page") or 1
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
    return _render(
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


def _error_context(exc: PanopticonError) -> dict[str, Any]:
    if isinstance(exc, ConfigError):
        first = exc.issues[0]
        return {"message": first.message, "field": first.field, "hint": first.hint}
    return {"message": str(exc), "field": None, "hint": None}


def _catalog_body(kind: str, form: dict[str, str], *, update: bool) -> dict[str, Any]:
    body = _clean(form, "item", "type", "expected", "context", "name")
    metadata = _json_field(form, "metadata")
    if metadata is not None:
        body["metadata"] = metadata
    if kind == "metric" and not update:
        body.pop("expected", None), body.pop("context", None)
        threshold = _float(form.get("threshold"), "threshold")
        if threshold is not None:
            body["threshold"] = threshold
        low, high = _float(form.get("scale_low"), "scale"), _float(form.get("scale_high"), "scale")
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
    return _validate(model, body).model_dump(exclude_unset=update)


async def _create(request: Request, kind: str) -> Response:
    principal, session = _principal(request)
    form = await _form(request)
    _check_csrf(request, session, form)
    try:
        principal.require("member")
        row = _catalog(request, principal, kind).create(_catalog_body(kind, form, update=False))
    except (ConfigError, AuthError) as exc:
        return _catalog_page(request, principal, session, kind, _error_context(exc), form)
    _searcher(request, principal).index_quietly(kind, [row["id"]])
    return RedirectResponse(f"/ui/{_plural(kind)}/{row['id']}?saved=1", status_code=303)


def _plural(kind: str) -> str:
    return "queries" if kind == "query" else "metrics"


@router.post("/queries")
async def create_query(request: Request) -> Response:
    return await _create(request, "query")


@router.get("/metrics")
def metrics(request: Request) -> Response:
    principal, session = _principal(request)
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
    return _render(
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
    principal, session = _principal(request)
    return _item_page(request, principal, session, "query", item_id)


@router.get("/metrics/{item_id}")
def metric_page(request: Request, item_id: int) -> Response:
    principal, session = _principal(request)
    return _item_page(request, principal, session, "metric", item_id)


async def _update(request: Request, kind: str, item_id: int) -> Response:
    principal, session = _principal(request)
    form = await _form(request)
    _check_csrf(request, session, form)
    catalog = _catalog(request, principal, kind)
    try:
        principal.require("member")
        if form.get("action") == "delete":
            catalog.delete(item_id)
            return RedirectResponse(f"/ui/{_plural(kind)}", status_code=303)
        catalog.update(item_id, _catalog_body(kind, form, update=True))
    except (ConfigError, AuthError) as exc:
        return _item_page(request, principal, session, kind, item_id, _error_context(exc))
    _searcher(request, principal).index_quietly(kind, [item_id])
    return RedirectResponse(f"/ui/{_plural(kind)}/{item_id}?saved=1", status_code=303)


@router.post("/queries/{item_id}")
async def update_query(request: Request, item_id: int) -> Response:
    return await _update(request, "query", item_id)


@router.post("/metrics/{item_id}")
async def update_metric(request: Request, item_id: int) -> Response:
    return await _update(request, "metric", item_id)


# -- models and providers ----------------------------------------------------------------------


def _registry_page(
    request: Request,
    principal: Principal,
    session: Session,
    error: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    registry = ModelRegistry(request.app.state.engine, principal.workspace_id)
    return _render(
        request,
        "models.html",
        {
            "models": registry.all(),
            "providers": registry.providers(),
            "error": error,
            "form": form or {},
        },
        status=422 if error else 200,
        principal=principal,
        session=session,
    )


@router.get("/models")
def models(request: Request) -> Response:
    principal, session = _principal(request)
    return _registry_page(request, principal, session)


@router.post("/models")
async def models_action(request: Request) -> Response:
    """Register a model, delete one, or add, edit or delete a provider (admins)."""
    principal, session = _principal(request)
    form = await _form(request)
    _check_csrf(request, session, form)
    registry = ModelRegistry(request.app.state.engine, principal.workspace_id)
    action = form.get("action", "")
    try:
        principal.require("admin")
        if action == "add-model":
            body = _clean(form, "id", "provider", "model", "base_url", "api_key_env")
            concurrency = _int(form.get("concurrency"), "concurrency")
            if concurrency is not None:
                body["concurrency"] = concurrency
            price_in = _float(form.get("price_input"), "price_input")
            price_out = _float(form.get("price_output"), "price_output")
            if price_in is not None or price_out is not None:
                body["price"] = {"input": price_in or 0.0, "output": price_out or 0.0}
            params = _json_field(form, "params")
            if params is not None:
                body["params"] = params
            registry.upsert(_validate(ModelCreate, body).model_dump(exclude_none=True))
        elif action == "delete-model":
            registry.delete(form.get("id", ""))
        elif action == "add-provider":
            body = _clean(form, "name", "kind", "base_url", "api_key_env")
            registry.create_provider(_validate(ProviderCreate, body).model_dump())
        elif action == "edit-provider":
            pid = _int(form.get("provider_id"), "provider_id")
            body = {k: (form.get(k) or "").strip() or None for k in ("base_url", "api_key_env")}
            registry.update_provider(pid or 0, _validate(ProviderUpdate, body).model_dump())
        elif action == "delete-provider":
            registry.delete_provider(_int(form.get("provider_id"), "provider_id") or 0)
        else:
            raise ConfigError(Issue(f"unknown action '{action}'", field="action"))
    except (ConfigError, AuthError, NotFoundError) as exc:
        return _registry_page(request, principal, session, _error_context(exc), form)
    return RedirectResponse("/ui/models?saved=1", status_code=303)


# -- installation ------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Mount the pages and their static files on the API's app."""
    app.include_router(router)
    from panopticon.web.traces import router as traces_router

    app.include_router(traces_router)  # the trace explorer's pages
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")

    @app.exception_handler(SignIn)
    async def sign_in(request: Request, exc: SignIn) -> Response:
        target = "/ui/login?" + urlencode({"next": request.url.path})
        if request.headers.get("HX-Request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
