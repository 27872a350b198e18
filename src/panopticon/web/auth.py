"""Sign-in with an API key, sign-out, and switching between the session's workspaces."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from panopticon.errors import ConfigError, Issue
from panopticon.services.access import AuthError, authenticate
from panopticon.web.common import (
    check_csrf,
    int_param,
    principal_of,
    read_form,
    render,
    secret,
    session_of,
)
from panopticon.web.session import COOKIE, MAX_AGE, Session

router = APIRouter(prefix="/ui", include_in_schema=False)


# -- sign-in ------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request) -> Response:
    return render(
        request, "login.html", {"error": None, "next": request.query_params.get("next", "")}
    )


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    target = form.get("next") or "/ui/"
    if not target.startswith("/ui"):
        target = "/ui/"
    try:
        principal = authenticate(
            request.app.state.engine, request.app.state.settings, form.get("key", "").strip()
        )
    except AuthError as exc:
        return render(
            request,
            "login.html",
            {"error": str(exc), "next": target},
            status=401,
        )
    from panopticon.services.access import hash_key

    session = session_of(request) or Session()
    session.add(hash_key(form["key"].strip()), principal.workspace, principal.role)
    response = RedirectResponse(target, status_code=303)
    _set_cookie(request, response, session)
    return response


def _set_cookie(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.encode(secret(request)),
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
    _, session = principal_of(request)
    form = await read_form(request)
    check_csrf(request, session, form)
    index = int_param(form.get("key"), "key", minimum=0)
    if index is None or index >= len(session.keys):
        raise ConfigError(Issue("no such key in this session", field="key"))
    session.active = index
    response = RedirectResponse("/ui/", status_code=303)
    _set_cookie(request, response, session)
    return response
