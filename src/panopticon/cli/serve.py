"""``panopticon serve``: the REST API (OpenAPI at /api/docs), the dashboard (/ui/) and the
gateway (/v1/chat/completions, ...); ``--role`` picks some of them (roles combine)."""

from __future__ import annotations

import os

import typer

from panopticon.cli.output import console, handle_errors
from panopticon.errors import ConfigError, Issue
from panopticon.settings import load_settings

__all__ = ["serve", "worker_app"]

# how the parent tells its worker processes their roles (uvicorn starts them by import)
_ROLES_VAR = "PANOPTICON__SERVE_ROLES"


def worker_app() -> object:
    """The app of one worker process of ``serve --workers N``."""
    from panopticon.api.app import create_app

    roles = os.environ.get(_ROLES_VAR, "api,ingest").split(",")
    return settle_heap(create_app(load_settings(), env=os.environ, roles=roles))


def settle_heap(app: object) -> object:
    """What start-up made (modules, routes, models, the OpenAPI document) is moved out of
    the cyclic garbage collector's sight (``gc.freeze``): each of its collections of the
    oldest generation otherwise walks all of it again while requests make garbage. That
    was about a sixth of ingestion's CPU per span (``bench/bench_ingest_cpu.py``). Only a
    server process does this (a test process makes many apps and must collect them)."""
    import gc

    build = getattr(app, "openapi", None)
    if callable(build):
        build()  # cached on the app: the lifespan's call finds it made
    gc.collect()
    gc.freeze()
    return app


ROLES = ("api", "ingest", "gateway")


@handle_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port."),
    role: str = typer.Option(
        "api,ingest,gateway",
        "--role",
        help="What to serve, comma-separated: api (REST API, dashboard, jobs), ingest "
        "(OTLP /v1/traces and the JSON trace API), gateway (the OpenAI-compatible logging "
        "proxy). Default: all three.",
    ),
    workers: int = typer.Option(
        1,
        min=1,
        max=64,
        help="Server processes sharing the port (ingestion is CPU-bound: one per core).",
    ),
) -> None:
    """Serve the API, the web dashboard and the gateway on the configured database."""
    import uvicorn

    from panopticon.gateway.app import serve_app

    roles = [r.strip() for r in role.split(",") if r.strip()]
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise ConfigError(
            Issue(
                f"unknown role(s): {', '.join(unknown) or '(none given)'}",
                field="--role",
                hint="use " + ", ".join(ROLES) + " (comma-separated to combine)",
            )
        )
    settings = load_settings()
    if workers > 1 and "api" in roles and settings.is_sqlite:
        raise ConfigError(
            Issue(
                "several workers with the api role need PostgreSQL (each would run the "
                "embedded job runner)",
                field="--workers",
                hint="use --role ingest, or PANOPTICON_DATABASE_URL=postgresql://...",
            )
        )
    if workers > 1 and "gateway" in roles:
        # the default roles include the gateway: say how to split them, and give each
        # gateway replica a port of its own (a second server on one port is refused)
        others = ",".join(r for r in roles if r != "gateway")
        split = f"panopticon serve --role {others} --workers {workers}, and " if others else ""
        raise ConfigError(
            Issue(
                "--workers is for the api and ingest roles; run more gateway replicas "
                "behind a load balancer instead",
                field="--workers",
                hint=split + "one `panopticon serve --role gateway --port PORT` per core, "
                "each on a port of its own",
            )
        )
    from panopticon.cli.workers import port_free

    if not port_free(host, port):
        raise ConfigError(
            Issue(
                f"port {port} on {host} is in use (another server, perhaps a Panopticon "
                f"already serving: http://{host}:{port}/health says)",
                field="--port",
                hint="choose another with --port, or stop the server that holds it",
            )
        )
    app, gateway = serve_app(settings, os.environ, set(roles))
    where = []
    if "api" in roles:
        where.append("dashboard /ui/, API docs /api/docs")
    if "ingest" in roles:
        where.append("OTLP traces /v1/traces")
    if gateway is not None:
        where.append(f"gateway: OpenAI base_url http://{host}:{port}/v1")
    console.print(
        f"Panopticon on http://{host}:{port}: {'; '.join(where)}; database "
        f"{settings.display_database_url}",
        highlight=False,
    )
    if workers > 1:
        os.environ[_ROLES_VAR] = ",".join(roles)
        from panopticon.cli.workers import reuse_port_supported, run_workers

        if reuse_port_supported():  # a socket per process: connections spread over them
            run_workers("panopticon.cli.serve:worker_app", host, port, workers, log_level="info")
            return
        uvicorn.run(
            "panopticon.cli.serve:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="info",
        )
        return
    # no access log line per request where the gateway serves (calls are logged as traces)
    settle_heap(app)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=gateway is None,
        # per request, where the gateway serves: no X-Forwarded-For rewriting of the scope
        # and no Server header (uvicorn checks each header with two regular expressions)
        proxy_headers=gateway is None,
        server_header=gateway is None,
    )
