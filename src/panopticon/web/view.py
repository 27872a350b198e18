"""Sign-in by a one-time link, for ``panopticon view`` (the local dashboard with no key to
copy). The link's token works once and for ``LINK_TTL_S`` seconds; only an app that
``panopticon view`` made has tokens, so on ``panopticon serve`` the route is a 404."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from panopticon.services.access import authenticate, hash_key, session_ended
from panopticon.web.auth import _login_page, _set_cookie
from panopticon.web.common import session_of
from panopticon.web.session import Session

__all__ = ["LINK_TTL_S", "issue_link_token", "router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

LINK_TTL_S = 120.0


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_link_token(app: FastAPI, *, ttl_s: float = LINK_TTL_S) -> str:
    """A new one-time token (only its hash is kept, in memory)."""
    token = secrets.token_urlsafe(32)
    tokens: dict[str, float] = getattr(app.state, "view_tokens", None) or {}
    tokens[_digest(token)] = time.monotonic() + ttl_s
    app.state.view_tokens = tokens
    return token


def _redeem(request: Request, token: str) -> bool:
    tokens: dict[str, float] | None = getattr(request.app.state, "view_tokens", None)
    if tokens is None:
        raise HTTPException(404)
    digest = _digest(token)
    now = time.monotonic()
    for known in list(tokens):
        if tokens[known] < now:
            del tokens[known]  # expired: forget it
    match = next((k for k in tokens if hmac.compare_digest(k, digest)), None)
    if match is None:
        return False
    del tokens[match]  # once only
    return True


@router.get("/link/{token}")
def sign_in_by_link(request: Request, token: str) -> Response:
    settings = request.app.state.settings
    if not _redeem(request, token) or not settings.api_key:
        return _login_page(
            request,
            "this sign-in link was used already or has expired; run `panopticon view` again "
            "for a new one",
            "/ui/",
            403,
        )
    principal = authenticate(request.app.state.engine, settings, settings.api_key)
    session = session_of(request)
    if session is None or session_ended(request.app.state.engine, session.nonce):
        session = Session()  # a signed-out session is never extended
    session.add(hash_key(settings.api_key), principal.workspace, principal.role)
    response = RedirectResponse("/ui/", status_code=303)
    _set_cookie(request, response, session)
    return response
