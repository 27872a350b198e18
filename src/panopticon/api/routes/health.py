"""What this is, whether it is healthy, and which roles it serves."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from panopticon import __version__
from panopticon.api.deps import EngineDep
from panopticon.services.health import database_problem

router = APIRouter(tags=["service"])

ENDPOINTS = {
    "queries": ["/api/queries", "/api/queries/{id}"],
    "metrics": ["/api/metrics", "/api/metrics/{id}"],
    "models": [
        "/api/models",
        "/api/models/{id}",
        "/api/providers",
        "/api/providers/{id}",
        "/api/completion",
    ],
    "credentials": ["/api/credentials", "/api/credentials/{name}"],
    "judge": ["/api/judge/evaluate/query", "/api/judge/evaluate/theme", "/api/judge/results"],
    "jobs": ["/api/jobs/{id}"],
    "runs": [
        "/api/runs",
        "/api/runs/{id}",
        "/api/runs/{id}/export",
        "/api/runs/{id}/compare",
        "/api/runs/compare",
    ],
    "keys": ["/api/keys", "/api/keys/{id}"],
}


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
def health(engine: EngineDep) -> dict[str, Any] | JSONResponse:
    problem = database_problem(engine)
    if problem is not None:
        return JSONResponse(
            {"status": "unhealthy", "database": "unreachable", "error": problem}, status_code=503
        )
    return {"status": "ok", "database": engine.dialect.name, "version": __version__}


@router.get("/api/services")
def services() -> dict[str, Any]:
    return {"roles": ["api"], "services": ENDPOINTS}
