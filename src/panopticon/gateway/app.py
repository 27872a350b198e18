"""Builds the gateway (``create_gateway``) and the ASGI app that serves the chosen roles
(``serve_app``): the gateway's paths go straight to its raw ASGI handler, everything else
to the API's FastAPI app, so ``panopticon serve`` runs both in one process and
``serve --role gateway`` runs the gateway alone."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from panopticon.gateway.limits import SpendTracker
from panopticon.gateway.logging import BatchingSink, JsonlTraceWriter, ListSink, TraceSink
from panopticon.gateway.proxy import Gateway, GatewayOptions, Receive, Scope, Send
from panopticon.gateway.routing import KeyTable, RouteTable
from panopticon.services.database import Engine
from panopticon.settings import Settings

__all__ = ["create_gateway", "gateway_log_path", "serve_app"]


def gateway_log_path(settings: Settings) -> Path:
    """ADAPTER: where calls are logged until the trace store (issue 11) is in main."""
    return settings.home / "gateway" / "traces.jsonl"


def create_gateway(
    settings: Settings,
    env: Mapping[str, str],
    engine: Engine,
    *,
    sink: TraceSink | None = None,
) -> Gateway:
    """The gateway on ``engine``. Without ``sink``, calls go to a :class:`BatchingSink`
    spooling under ``home/spool/gateway`` (started and closed with the gateway)."""
    if sink is None:
        if settings.gateway_logging:
            sink = BatchingSink(
                JsonlTraceWriter(gateway_log_path(settings)),
                settings.home / "spool" / "gateway",
            )
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
        self, gateway: Gateway, api: Any | None, sink: TraceSink, engine: Engine | None = None
    ) -> None:
        self.gateway = gateway
        self.api = api
        self.sink = sink
        self.own_engine = engine  # the gateway's alone: disposed when it stops
        self.paths = gateway.paths
        # the API's own /v1 paths (OTLP ingestion) stay the API's; every other /v1 path is
        # the gateway's, whose 404 names the routes it serves
        self.api_v1 = (
            {getattr(r, "path", "") for r in getattr(api, "routes", [])}
            if api is not None
            else set()
        )

    def _is_gateway(self, path: str) -> bool:
        return path in self.paths or (path.startswith("/v1/") and path not in self.api_v1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and self._is_gateway(scope["path"]):
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
        if isinstance(self.sink, BatchingSink):
            self.sink.start()
        await self.gateway.startup()

    async def _stop(self) -> None:
        import asyncio

        await self.gateway.shutdown()
        if isinstance(self.sink, BatchingSink):
            await asyncio.to_thread(self.sink.close)
        if self.own_engine is not None:
            self.own_engine.dispose()


def serve_app(
    settings: Settings, env: Mapping[str, str], roles: set[str]
) -> tuple[Any, Gateway | None]:
    """The ASGI app for ``roles`` (api, ingest, gateway): (app, its gateway if any)."""
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
    gateway = create_gateway(settings, env, engine)
    return _Combined(gateway, api, gateway.sink, own), gateway
