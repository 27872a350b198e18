"""Every error is JSON that says what is wrong and, where it can, which field: never a 500
for bad input, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from panopticon.errors import ConfigError, NotFoundError, PanopticonError
from panopticon.services.access import AuthError
from panopticon.services.catalog import ConflictError

__all__ = ["install_error_handlers"]

log = logging.getLogger(__name__)


def _body(items: list[dict[str, str | None]]) -> dict[str, object]:
    return {"error": items[0], "errors": items}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")]
            items.append(
                {
                    "message": str(e.get("msg", "invalid")),
                    "field": ".".join(loc) or None,
                    "hint": None,
                }
            )
        return JSONResponse(
            _body(items or [{"message": "invalid request", "field": None, "hint": None}]),
            status_code=422,
        )

    @app.exception_handler(AuthError)
    async def auth(request: Request, exc: AuthError) -> JSONResponse:
        return JSONResponse(
            _body([{"message": str(exc), "field": "X-API-Key", "hint": None}]),
            status_code=exc.status,
        )

    @app.exception_handler(NotFoundError)
    async def missing(request: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse(
            _body([{"message": str(exc), "field": None, "hint": None}]), status_code=404
        )

    @app.exception_handler(ConfigError)
    async def config(request: Request, exc: ConfigError) -> JSONResponse:
        items = [{"message": i.message, "field": i.field, "hint": i.hint} for i in exc.issues]
        status = 409 if isinstance(exc, ConflictError) else 422
        return JSONResponse(_body(items), status_code=status)

    @app.exception_handler(PanopticonError)
    async def other(request: Request, exc: PanopticonError) -> JSONResponse:
        log.warning("request failed: %s", exc)
        return JSONResponse(
            _body([{"message": str(exc), "field": None, "hint": None}]), status_code=503
        )

    @app.exception_handler(HTTPException)
    async def http(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            _body([{"message": str(exc.detail), "field": None, "hint": None}]),
            status_code=exc.status_code,
        )
