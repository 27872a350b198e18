"""Every error is JSON that says what is wrong and, where it can, which field: never a 500
for bad input, never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from panopticon.errors import ConfigError, ConflictError, NotFoundError, PanopticonError
from panopticon.services.access import AuthError

__all__ = ["install_error_handlers"]

log = logging.getLogger(__name__)


def _body(items: list[dict[str, str | None]]) -> dict[str, object]:
    return {"error": items[0], "errors": items}


async def _page(
    request: Request, status: int, items: list[dict[str, str | None]]
) -> Response | None:
    """Errors on the web UI's pages are pages, not JSON. Rendered in the thread pool (a
    template, the session's signing key read from disk the first time): never on the loop."""
    render_error = getattr(request.app.state, "render_page_error", None)
    if render_error is None or not request.url.path.startswith("/ui"):
        return None
    first = items[0]
    message = first["message"] or "error"
    if first.get("field"):
        message = f"{first['field']}: {message}"
    page: Response = await run_in_threadpool(
        render_error, request, status, message, first.get("hint")
    )
    return page


# what a value matching each of the API's patterns is, in words (Pydantic's message names
# the regular expression alone)
_PATTERNS = {
    r"^[0-9a-f]{32}$": (
        "must be a trace id: 32 lowercase hexadecimal digits",
        "the gateway returns it in the x-panopticon-trace-id header; OTLP trace ids are the same",
    ),
    r"^[0-9a-f]{16}$": ("must be a span id: 16 lowercase hexadecimal digits", None),
}


def _issue(e: Any) -> dict[str, str | None]:
    loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")]
    message, hint = str(e.get("msg", "invalid")).removeprefix("Value error, "), None
    ctx = e.get("ctx")
    if e.get("type") == "string_pattern_mismatch" and isinstance(ctx, dict):
        known = _PATTERNS.get(str(ctx.get("pattern")))
        if known is not None:
            message = f"{known[0]}, not {e.get('input')!r}"[:300]
            hint = known[1]
    return {"message": message, "field": ".".join(loc) or None, "hint": hint}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        items = [_issue(e) for e in exc.errors()]
        items = items or [{"message": "invalid request", "field": None, "hint": None}]
        return (await _page(request, 422, items)) or JSONResponse(_body(items), status_code=422)

    @app.exception_handler(AuthError)
    async def auth(request: Request, exc: AuthError) -> Response:
        items: list[dict[str, str | None]] = [
            {"message": str(exc), "field": "X-API-Key", "hint": None}
        ]
        if request.url.path.startswith("/ui"):
            items[0]["field"] = None
        return (await _page(request, exc.status, items)) or JSONResponse(
            _body(items), status_code=exc.status
        )

    @app.exception_handler(NotFoundError)
    async def missing(request: Request, exc: NotFoundError) -> Response:
        items: list[dict[str, str | None]] = [{"message": str(exc), "field": None, "hint": None}]
        return (await _page(request, 404, items)) or JSONResponse(_body(items), status_code=404)

    @app.exception_handler(ConfigError)
    async def config(request: Request, exc: ConfigError) -> Response:
        items: list[dict[str, str | None]] = [
            {"message": i.message, "field": i.field, "hint": i.hint} for i in exc.issues
        ]
        status = 409 if isinstance(exc, ConflictError) else 422
        return (await _page(request, status, items)) or JSONResponse(
            _body(items), status_code=status
        )

    @app.exception_handler(PanopticonError)
    async def other(request: Request, exc: PanopticonError) -> Response:
        log.warning("request failed: %s", exc)
        items: list[dict[str, str | None]] = [{"message": str(exc), "field": None, "hint": None}]
        return (await _page(request, 503, items)) or JSONResponse(_body(items), status_code=503)

    @app.exception_handler(HTTPException)
    async def http(request: Request, exc: HTTPException) -> Response:
        items: list[dict[str, str | None]] = [
            {"message": str(exc.detail), "field": None, "hint": None}
        ]
        return (await _page(request, exc.status_code, items)) or JSONResponse(
            _body(items), status_code=exc.status_code
        )
