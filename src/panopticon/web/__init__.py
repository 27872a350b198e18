"""The web UI served by ``panopticon serve`` at ``/ui``: server-rendered pages (Jinja2),
htmx for interaction, Chart.js vendored (no CDN). Pages call the same services as the
JSON API; sign-in is with an API key, then a signed session cookie.

One module per page group, each with its own router, installed here: ``auth`` (sign-in),
``view`` (sign-in by the one-time link of ``panopticon view``),
``analysis`` (summary, comparison, themes, trends), ``results`` (results and runs),
``answers`` (every model's answer to a query, side by side),
``annotate``, ``catalog`` (queries and metrics), ``registry`` (models and providers),
``online`` (online-evaluation rules), ``traces`` (the trace explorer), ``gateway``
(gateway keys), ``cache`` (the answer cache: stats, clear, expire);
``common`` holds what they share."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from panopticon.web import (
    analysis,
    annotate,
    answers,
    auth,
    cache,
    catalog,
    gateway,
    online,
    registry,
    results,
    traces,
    view,
)
from panopticon.web.common import HERE, SignIn, render_error

__all__ = ["install", "render_error"]

ROUTERS = (
    auth,
    view,
    analysis,
    results,
    answers,
    annotate,
    catalog,
    registry,
    online,
    traces,
    gateway,
    cache,
)


def install(app: FastAPI) -> None:
    """Mount the pages and their static files on the API's app."""
    for module in ROUTERS:
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")
    # the API's error handlers show errors under /ui as pages through this
    app.state.render_page_error = render_error

    @app.exception_handler(SignIn)
    async def sign_in(request: Request, exc: SignIn) -> Response:
        target = "/ui/login?" + urlencode({"next": request.url.path})
        if request.headers.get("HX-Request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
