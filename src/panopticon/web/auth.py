"""Sign-in with an API key, sign-out, and switching between the session's workspaces.

Sign-in is CSRF-protected before any session exists: the form page sets a random
``panopticon_login`` cookie (SameSite=Strict) and the form carries its HMAC, so another site
cannot sign a browser in with the attacker's key. Sign-out checks the session's CSRF token
and ends the session on the server (its nonce is refused from then on)."""

from __future__ import annotations

import hmac
import secrets as random_tokens
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from panopticon.errors import ConfigError, Issue
from panopticon.services.access import (
    AuthError,
    authenticate,
    end_session,
    hash_key,
    session_ended,
)
from panopticon.web.common import (
    check_csrf,
    int_param,
    principal_of,
    read_form,
    render,
    secret,
    session_of,
)
from panopticon.web.session import COOKIE, MAX_AGE, Session, sign

router = APIRouter(prefix="/ui", include_in_schema=False)

LOGIN_COOKIE = "panopticon_login"


# -- sign-in ------------------------------------------------------------------------------


def _login_page(request: Request, error: str | None, target: str, status: int = 200) -> Response:
    token = request.cookies.get(LOGIN_COOKIE) or random_tokens.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {"error": error, "next": target, "login_csrf": sign(secret(request), "login:" + token)},
        status=status,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=24 * 3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/ui",
    )
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request, None, request.query_params.get("next", ""))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    target = form.get("next") or "/ui/"
    if not target.startswith("/ui/") or target.startswith("/ui//"):
        target = "/ui/"
    token = request.cookies.get(LOGIN_COOKIE, "")
    expected = sign(secret(request), "login:" + token)
    if not token or not hmac.compare_digest(str(form.get("csrf", "")), expected):
        return _login_page(
            request,
            "the sign-in form is stale or came from another site; sign in again",
            target,
            403,
        )
    try:
        principal = authenticate(
            request.app.state.engine, request.app.state.settings, form.get("key", "").strip()
        )
    except AuthError as exc:
        return _login_page(request, str(exc), target, 401)
    session = session_of(request)
    if session is None or session_ended(request.app.state.engine, session.nonce):
        session = Session()  # a signed-out session is never extended
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
    """End the session on the server, not only in this browser: a copy of the cookie is
    refused from now on."""
    session = session_of(request)
    if session is not None:
        form = await read_form(request)
        check_csrf(request, session, form)
        end_session(
            request.app.state.engine, session.nonce, datetime.fromtimestamp(session.expires, UTC)
        )
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
