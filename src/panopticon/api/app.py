"""The API application. ``create_app(settings)`` builds it; nothing exists at import time."""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
from collections.abc import AsyncIterator, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
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
    ingest,
    judge,
    keys,
    metrics,
    models,
    online,
    production,
    queries,
    runs,
    traces,
)
from panopticon.api.schemas import ErrorPublic
from panopticon.services.runs import open_store
from panopticon.services.tasks import JobQueue, LocalQueue
from panopticon.settings import Settings

__all__ = ["ROLES", "create_app"]

log = logging.getLogger(__name__)

ROLES = ("api", "ingest")


def create_app(
    settings: Settings,
    env: Mapping[str, str] | None = None,
    roles: Collection[str] = ROLES,
) -> FastAPI:
    """``env`` is where the operator-allowed ``api_key_env`` variables are read (the CLI
    passes the process environment); no other variable of it is ever used. ``roles``:
    ``api`` (the REST API, the dashboard, jobs) and ``ingest`` (OTLP and the JSON trace
    API, with the trace writer)."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        from panopticon.errors import ConfigError, Issue

        raise ConfigError(
            Issue(
                f"unknown role(s) {', '.join(sorted(unknown)) or '(none)'}",
                field="--role",
                hint="use " + ", ".join(ROLES) + ", comma-separated",
            )
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # FastAPI builds each route's parameter models on first use, and the OpenAPI
        # document on first request: hundreds of ms that would hold up every other request
        # on the event loop. Done now, in a thread.
        await asyncio.to_thread(app.openapi)
        # A second lifespan of the same app while the first runs (a test client opened on
        # a served app, schemathesis' ASGI client) shares the first one's jobs, writer and
        # engine: it neither starts a second copy (two writer threads on one queue, of
        # which close() stopped one and waited a minute for the other) nor stops them.
        running = getattr(app.state, "lifespans", 0)
        app.state.lifespans = running + 1
        if running:
            try:
                yield
            finally:
                app.state.lifespans -= 1
            return
        jobs = getattr(app.state, "jobs", None)
        if jobs is not None:
            await jobs.start()
        writer = getattr(app.state, "trace_writer", None)
        if writer is not None:
            writer.start()
        try:
            yield
        finally:
            app.state.lifespans -= 1
            if writer is not None:  # everything acknowledged is written (or spooled)
                await asyncio.to_thread(writer.close)
            if jobs is not None:
                await jobs.stop()
            app.state.readers.shutdown(wait=False)
            pages = getattr(app.state, "pages", None)
            if pages is not None:
                await asyncio.to_thread(pages.close)
            await asyncio.to_thread(app.state.engine.dispose)

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
    app.state.roles = tuple(r for r in ROLES if r in roles)
    # made here, not at import; the job runner starts with the server (lifespan)
    app.state.engine = open_store(settings)
    # the hottest reads run here (deps.store_read); as many as the PostgreSQL pool's
    # connections, so that none waits for one
    app.state.readers = ThreadPoolExecutor(max_workers=10, thread_name_prefix="panopticon-read")
    install_error_handlers(app)
    if "api" in roles:  # inside RequestLimits: its checks come first
        from panopticon.api.fast import FastPaths
        from panopticon.services.fresh import FreshCache

        # pages of the hottest read, kept while nothing is committed (never stale)
        app.state.pages = FreshCache(app.state.engine)
        app.add_middleware(FastPaths, state=app.state)
    app.add_middleware(RequestLimits, max_body_bytes=settings.max_request_bytes)
    app.include_router(health.router)
    if "ingest" in roles:
        from panopticon.services.ingest import IngestService, build_trace_writer

        # one writer per process: the gateway, served with this app, writes through it too
        app.state.trace_writer = build_trace_writer(app.state.engine, settings)
        app.state.ingest = IngestService(app.state.engine, settings, app.state.trace_writer)
        app.include_router(ingest.router)
    if "api" in roles:
        jobs: JobQueue
        if settings.is_sqlite:  # one process: the server runs its jobs itself
            import panopticon.services.backfill
            import panopticon.services.jobs
            import panopticon.services.online_eval  # noqa: F401

            # the judging tasks of online evaluation get their own slots beside the jobs'
            jobs = LocalQueue(
                app.state.engine,
                settings,
                app.state.env,
                concurrency=4 + settings.online_workers,
            )
        else:  # PostgreSQL: jobs go to the shared queue; `panopticon worker` processes run them
            from panopticon.worker import QueueSubmitter, build_app

            jobs = QueueSubmitter(build_app(settings, app.state.env, sync=True), app.state.engine)
        app.state.jobs = jobs
        install_docs(app)
        for module in (
            queries,
            metrics,
            models,
            credentials,
            judge,
            runs,
            keys,
            online,
            production,
            cache,
            traces,
            gateway,
        ):
            app.include_router(module.router)
        app.include_router(judge.jobs_router)
        from panopticon.web import install as install_web

        install_web(app)  # the dashboard at /ui
    _share_openapi(app)
    return app


# One OpenAPI document per set of routes in a process: building it takes most of a second
# (every model's JSON schema), and apps of the same roles (`serve --workers` builds one per
# process; the test suite builds hundreds) have the same routes, so the same document. The
# roles decide the routes (create_app includes routers by role, nothing else): the key.
_OPENAPI: dict[tuple[Any, ...], dict[str, Any]] = {}
_OPENAPI_LOCK = threading.Lock()


def _share_openapi(app: FastAPI) -> None:
    build = app.openapi
    key = (app.title, app.version, app.openapi_url, tuple(app.state.roles))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            with _OPENAPI_LOCK:
                document = _OPENAPI.get(key)
                if document is None:
                    document = _OPENAPI[key] = build()
            app.openapi_schema = copy.deepcopy(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
