"""What this is, whether it is healthy, and which roles it serves."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from panopticon import __version__
from panopticon.api.deps import EngineDep
from panopticon.services.health import database_problem

router = APIRouter(tags=["service"])


@router.get("/")
def root() -> dict[str, Any]:
    return {
        "name": "Panopticon",
        "version": __version__,
        "description": "Evaluate, compare and monitor LLMs.",
        "docs": "/api/docs",
        "health": "/health",
        "services": "/api/services",
    }


@router.get("/health", response_model=None)
def health(request: Request, engine: EngineDep) -> dict[str, Any] | JSONResponse:
    problem = database_problem(engine)
    if problem is not None:
        return JSONResponse(
            {"status": "unhealthy", "database": "unreachable", "error": problem}, status_code=503
        )
    found: dict[str, Any] = {
        "status": "ok",
        "database": engine.dialect.name,
        "version": __version__,
    }
    gateway_log = getattr(request.app.state, "gateway_log", None)
    if gateway_log is not None:  # `serve` with the gateway on the same port
        found["gateway_log"] = gateway_log()
    return found


@router.get("/api/services")
def services(request: Request) -> dict[str, Any]:
    """The roles this server serves and its endpoints by group, read off its own routes
    (the OpenAPI document), so it cannot fall behind them."""
    app = request.app
    groups: dict[str, list[str]] = {}
    for path, operations in app.openapi()["paths"].items():
        for operation in operations.values():
            for tag in operation.get("tags") or ["other"]:
                listed = groups.setdefault(tag, [])
                if path not in listed:
                    listed.append(path)
    roles = list(app.state.roles)
    gateway = getattr(app.state, "gateway_paths", None)
    if gateway:  # `serve` with the gateway on the same port
        roles.append("gateway")
        groups["gateway proxy"] = sorted(gateway)
    return {"roles": roles, "services": groups}
