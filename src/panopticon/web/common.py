"""What every page shares: the templates, the session and principal, forms, errors."""

from __future__ import annotations

import hmac
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from panopticon import __version__
from panopticon.errors import ConfigError, Issue, PanopticonError
from panopticon.providers.pricing import cost_text
from panopticon.services.access import AuthError, Principal, authenticate_hash, session_ended
from panopticon.services.catalog import MetricCatalog
from panopticon.services.runs import (
    get_run,
    list_runs,
    run_public,
)
from panopticon.web.session import COOKIE, Session, load_secret

HERE = Path(__file__).parent
PAGE = 50
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["version"] = __version__
templates.env.globals["cost_text"] = cost_text
templates.env.filters["tojson_attr"] = lambda v: json.dumps(v, default=str)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
)


# -- plumbing ---------------------------------------------------------------------------


def secret(request: Request) -> bytes:
    app = request.app
    if getattr(app.state, "web_secret", None) is None:
        app.state.web_secret = load_secret(app.state.settings)
    secret: bytes = app.state.web_secret
    return secret


def session_of(request: Request) -> Session | None:
    return Session.decode(secret(request), request.cookies.get(COOKIE))


class SignIn(Exception):
    """Not signed in (or the key was revoked): go to the sign-in page."""


def principal_of(request: Request) -> tuple[Principal, Session]:
    session = session_of(request)
    if session is None or session.active_hash is None:
        raise SignIn()
    if session_ended(request.app.state.engine, session.nonce):  # signed out
        raise SignIn()
    try:
        principal = authenticate_hash(
            request.app.state.engine, request.app.state.settings, session.active_hash
        )
    except AuthError:
        raise SignIn() from None
    return principal, session


def check_csrf(request: Request, session: Session, form: dict[str, Any]) -> None:
    token = request.headers.get("X-CSRF-Token") or form.get("csrf") or ""
    if not hmac.compare_digest(str(token), session.csrf_token(secret(request))):
        raise AuthError("the form is stale or came from another site; reload the page", 403)


def render(
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
        "csrf": session.csrf_token(secret(request)) if session else "",
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
    session = session_of(request)
    return render(
        request,
        "error.html",
        {"status": status, "message": message, "hint": hint},
        status=status,
        session=session,
    )


Handler = Callable[..., Any]


async def read_form(request: Request) -> dict[str, Any]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def posted(request: Request, handler: Callable[..., Response], *args: Any) -> Response:
    """A form post: the body is read on the event loop, then ``handler(request, form,
    *args)`` (database, embeddings, templates) runs in the thread pool, so that a slow
    call never holds up other requests."""
    form = await read_form(request)
    return await run_in_threadpool(handler, request, form, *args)


def clean(form: dict[str, str], *keys: str) -> dict[str, Any]:
    """Form fields as a body: blanks dropped (they mean 'not given')."""
    return {k: form[k].strip() for k in keys if form.get(k, "").strip() != ""}


def issues_of(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or None, "message": e["msg"]}
        for e in exc.errors()
    ]


def validate(model: type[BaseModel], body: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ConfigError([Issue(i["message"], field=i["field"]) for i in issues_of(exc)]) from None


def json_field(form: dict[str, str], key: str) -> dict[str, Any] | None:
    raw = form.get(key, "").strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            Issue(f"not valid JSON: {exc.msg} at character {exc.pos}", field=key)
        ) from None
    except RecursionError:
        raise ConfigError(Issue("nested too deeply", field=key)) from None
    if not isinstance(value, dict):
        raise ConfigError(Issue('must be a JSON object, like {"lang": "en"}', field=key))
    return value


def int_param(value: str | None, field: str, *, minimum: int = 1) -> int | None:
    if value is None or value.strip() == "":
        return None
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(Issue(f"'{value}' is not a whole number", field=field)) from None
    if n < minimum or n > 2_147_483_647:
        raise ConfigError(Issue(f"must be at least {minimum}", field=field))
    return n


def float_param(value: str | None, field: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        f = float(value)
    except ValueError:
        raise ConfigError(Issue(f"'{value}' is not a number", field=field)) from None
    if not math.isfinite(f):
        raise ConfigError(Issue("must be a finite number", field=field))
    return f


def bool_param(value: str | None) -> bool | None:
    return {"true": True, "pass": True, "false": False, "fail": False}.get((value or "").lower())


def recent_runs(request: Request, principal: Principal) -> list[dict[str, Any]]:
    return list_runs(request.app.state.engine, principal.workspace_id, limit=200)


def run_param(
    request: Request, principal: Principal, runs: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The run a page looks at: ?run=ID, else the newest run with results."""
    chosen = int_param(request.query_params.get("run"), "run")
    if chosen is not None:
        found = next((r for r in runs if r["id"] == chosen), None)
        if found is None:  # older than the list: read it (a 404 if it is not ours)
            return run_public(get_run(request.app.state.engine, principal.workspace_id, chosen))
        return found
    return next((r for r in runs if r["status"] != "pending"), runs[0] if runs else None)


def metric_names(request: Request, principal: Principal) -> list[str]:
    state = request.app.state
    catalog = MetricCatalog(state.engine, state.settings, state.env, principal.workspace_id)
    return sorted({m.name for m in catalog.list(limit=10_000).items})


def error_context(exc: PanopticonError) -> dict[str, Any]:
    if isinstance(exc, ConfigError):
        first = exc.issues[0]
        # every problem at once, as the CLI and the API report them; the first leads
        issues = [
            {"message": i.message, "field": i.field, "hint": i.hint, "line": i.line}
            for i in exc.issues
        ]
        return {
            "message": first.message,
            "field": first.field,
            "hint": first.hint,
            "issues": issues,
        }
    return {"message": str(exc), "field": None, "hint": None, "issues": []}
