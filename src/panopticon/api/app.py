"""The API application. ``create_app(settings)`` builds it; nothing exists at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from panopticon import __version__
from panopticon.api.docs import install_docs
from panopticon.api.errors import install_error_handlers
from panopticon.api.limits import RequestLimits
from panopticon.api.routes import (
    cache,
    credentials,
    gateway,
    health,
    judge,
    keys,
    metrics,
    models,
    online,
    queries,
    runs,
)
from panopticon.api.schemas import ErrorPublic
from panopticon.services.jobs import JobRunner
from panopticon.services.runs import open_store
from panopticon.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings, env: Mapping[str, str] | None = None) -> FastAPI:
    """``env`` is where the operator-allowed ``api_key_env`` variables are read (the CLI
    passes the process environment); no other variable of it is ever used."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.jobs.start()
        try:
            yield
        finally:
            await app.state.jobs.stop()
            app.state.engine.dispose()

    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorPublic, "description": text}
        for code, text in (
            (400, "The body cannot be read (not UTF-8 JSON, or nested too deeply)"),
            (401, "No API key, or an unknown or revoked one"),
            (403, "The key's role may not do this"),
            (404, "Not in this workspace"),
            (409, "Clashes with stored data"),
            (413, "The body is larger than the server's limit (max_request_bytes)"),
            (422, "Invalid input; the error names the field"),
            (503, "The database or a provider cannot be reached"),
        )
    }
    app = FastAPI(
        title="Panopticon",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # install_docs: Swagger UI from files in the package, not a CDN
        openapi_url="/api/openapi.json",
        redoc_url=None,
        responses=errors,
    )
    app.state.settings = settings
    app.state.env = settings.allowed_environment(env or {})
    # made here, not at import; the job runner starts with the server (lifespan)
    app.state.engine = open_store(settings)
    if settings.is_sqlite:  # one process: the server runs its jobs itself
        app.state.jobs = JobRunner(app.state.engine, settings, app.state.env)
    else:  # PostgreSQL: jobs go to the shared queue; `panopticon worker` processes run them
        from panopticon.worker import QueueSubmitter, build_app

        app.state.jobs = QueueSubmitter(build_app(settings, app.state.env, sync=True))
    install_error_handlers(app)
    install_docs(app)
    app.add_middleware(RequestLimits, max_body_bytes=settings.max_request_bytes)
    for module in (
        health,
        queries,
        metrics,
        models,
        credentials,
        judge,
        runs,
        keys,
        online,
        cache,
        gateway,
    ):
        app.include_router(module.router)
    app.include_router(judge.jobs_router)
    from panopticon.web import install as install_web

    install_web(app)  # the dashboard at /ui
    return app
