"""Builds the gateway (``create_gateway``) and the ASGI app that serves the chosen roles
(``serve_app``): the gateway's paths go straight to its raw ASGI handler, everything else
to the API's FastAPI app, so ``panopticon serve`` runs both in one process and
``serve --role gateway`` runs the gateway alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.routing import Match

from panopticon.gateway.limits import SpendTracker
from panopticon.gateway.log_process import ProcessSink
from panopticon.gateway.logging import BatchingSink, ListSink, QueuedSink, TraceSink
from panopticon.gateway.proxy import Gateway, GatewayOptions, Receive, Scope, Send
from panopticon.gateway.routing import KeyTable, RouteTable
from panopticon.services.database import Engine
from panopticon.services.ingest import IngestService, build_trace_writer
from panopticon.settings import Settings

__all__ = ["create_gateway", "serve_app"]


def create_gateway(
    settings: Settings,
    env: Mapping[str, str],
    engine: Engine,
    *,
    sink: TraceSink | None = None,
    ingest: IngestService | None = None,
) -> Gateway:
    """The gateway on ``engine``. Without ``sink``, calls go to a writer process of their own
    (:class:`ProcessSink`, ``gateway_log_writer = "process"``), or to a
    :class:`BatchingSink` that hands them to ``ingest``'s trace writer in this process
    (required then; whoever serves the gateway starts and closes that writer, as
    :func:`serve_app` does)."""
    if sink is None:
        if settings.gateway_logging and settings.gateway_log_writer == "process":
            sink = ProcessSink(settings)
        elif settings.gateway_logging:
            if ingest is None:
                raise TypeError("create_gateway logs through a trace writer: pass ingest=")
            sink = BatchingSink(ingest)
        else:
            sink = ListSink(keep=False)
    gateway = Gateway(
        KeyTable(engine, settings.gateway_key_ttl_s),
        # only the operator-allowed variables are kept, as the API keeps them
        RouteTable(engine, settings, settings.allowed_environment(env), settings.gateway_key_ttl_s),
        SpendTracker(engine),
        sink,
        GatewayOptions(
            logging=settings.gateway_logging,
            allow_private_urls=settings.allow_private_urls,
        ),
    )
    return gateway


class _Combined:
    """Gateway paths to the gateway, the rest to ``api`` (or a 404 when there is none)."""

    def __init__(
        self,
        gateway: Gateway,
        api: Any | None,
        engine: Engine | None = None,
        ingest: IngestService | None = None,
    ) -> None:
        self.gateway = gateway
        self.api = api
        self.sink = gateway.sink
        self.own_engine = engine  # the gateway's alone: disposed when it stops
        # the gateway's own trace writer, when no ingest role in this process has one
        self.own_ingest = ingest
        self.paths = gateway.paths
        # /v1 paths the API serves (OTLP ingestion), by path: asked of the API's own routes
        # (their matching, not their attributes: FastAPI nests included routers), once per path
        self._api_v1: dict[str, bool] = {}

    def _api_serves(self, scope: Scope) -> bool:
        path: str = scope["path"]
        served = self._api_v1.get(path)
        if served is None:
            # a path the API has with another method is the API's too (its 405)
            served = self.api is not None and any(
                route.matches(scope)[0] is not Match.NONE for route in self.api.routes
            )
            if len(self._api_v1) < 4096:  # made-up paths cannot grow it without end
                self._api_v1[path] = served
        return served

    def _is_gateway(self, scope: Scope) -> bool:
        path: str = scope["path"]
        # every /v1 path the API does not serve is the gateway's, whose 404 names its routes
        return path in self.paths or (path.startswith("/v1/") and not self._api_serves(scope))

    def log_counts(self) -> dict[str, Any]:
        """How the gateway's call log is doing: calls not yet durable, written, failed,
        dropped (counts of this process since it started); never the last error (the
        health checks that show them are unauthenticated, and errors may quote data)."""
        sink = self.sink
        log: dict[str, Any] = {"enabled": not isinstance(sink, ListSink)}
        if isinstance(sink, QueuedSink):
            log.update(
                writer="thread",
                pending=sink.pending,
                written=sink.written,
                failed=sink.failed,
                dropped=sink.dropped,
            )
        if isinstance(sink, ProcessSink):
            log.update(writer="process", writer_restarts=sink.restarts)
        return log

    def health(self) -> dict[str, Any]:
        """The gateway's own health (``GET /health`` where no API serves it)."""
        return {"status": "ok", "roles": ["gateway"], "log": self.log_counts()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and self.api is None and scope["path"] == "/health":
            import orjson

            await self.gateway._send_json(send, 200, orjson.dumps(self.health()))
        elif kind == "http" and self._is_gateway(scope):
            await self.gateway(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        elif self.api is not None:
            await self.api(scope, receive, send)
        elif kind == "http":
            await self.gateway(scope, receive, send)  # its 404 names the routes it serves

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start the gateway (and its log writer) with the API's lifespan, stop it after."""
        import asyncio

        if self.api is None:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self._start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self._stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        inbox: asyncio.Queue[Any] = asyncio.Queue()

        async def api_receive() -> Any:
            return await inbox.get()

        async def api_send(message: Any) -> None:
            await send(message)

        first = await receive()
        await self._start()
        await inbox.put(first)
        task = asyncio.create_task(self.api(scope, api_receive, api_send))
        while True:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self._stop()
                await inbox.put(message)
                await task
                return
            await inbox.put(message)

    async def _start(self) -> None:
        if self.own_ingest is not None:
            self.own_ingest.writer.start()
        if isinstance(self.sink, QueuedSink):
            self.sink.start()
        await self.gateway.startup()

    async def _stop(self) -> None:
        """Stop taking calls, hand every logged call to the writer, and (when the writer is
        the gateway's own) write or spool them all; a shared writer is closed by the API's
        lifespan, which runs after this."""
        import asyncio

        await self.gateway.shutdown()
        if isinstance(self.sink, QueuedSink):
            await asyncio.to_thread(self.sink.close)
        if self.own_ingest is not None:
            await asyncio.to_thread(self.own_ingest.writer.close)
        if self.own_engine is not None:
            await asyncio.to_thread(self.own_engine.dispose)


def serve_app(
    settings: Settings,
    env: Mapping[str, str],
    roles: set[str],
    *,
    ingest: IngestService | None = None,
) -> tuple[Any, Gateway | None]:
    """The ASGI app for ``roles`` (api, ingest, gateway): (app, its gateway if any).

    With ``gateway_log_writer = "process"`` the gateway logs through a writer process of its
    own. Else it logs through ``ingest``'s trace writer when given, else through the ingest
    role's when this process serves that role too (one writer per process), else through
    one made here on the store. One given or made here is started and closed with the app
    (after the gateway has handed it every call); the ingest role's with the API."""
    api = None
    engine: Engine | None = None
    served = [r for r in ("api", "ingest") if r in roles]
    if served:
        from panopticon.api.app import create_app

        api = create_app(settings, env=env, roles=served)
        engine = api.state.engine
    if "gateway" not in roles:
        return api, None
    own = None
    if engine is None:
        from panopticon.services.runs import open_store

        engine = own = open_store(settings)
    own_ingest = ingest
    if ingest is None and api is not None:
        ingest = getattr(api.state, "ingest", None)
    in_process = settings.gateway_logging and settings.gateway_log_writer == "thread"
    if ingest is None and in_process:
        ingest = own_ingest = IngestService(engine, settings, build_trace_writer(engine, settings))
    gateway = create_gateway(settings, env, engine, ingest=ingest)
    combined = _Combined(gateway, api, own, own_ingest)
    if api is not None:  # GET /api/services lists the gateway's routes too
        api.state.gateway_paths = sorted(gateway.paths)
        api.state.gateway_log = combined.log_counts  # and GET /health its log's counts
    return combined, gateway
