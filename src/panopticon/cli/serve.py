"""``panopticon serve``: the REST API (OpenAPI at /api/docs), the dashboard (/ui/) and the
gateway (/v1/chat/completions, ...); ``--role`` picks some of them (roles combine)."""

from __future__ import annotations

import os

import typer

from panopticon.cli.output import console, handle_errors
from panopticon.errors import ConfigError, Issue
from panopticon.settings import load_settings

__all__ = ["serve"]

ROLES = ("api", "gateway")


@handle_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port."),
    role: str = typer.Option(
        "api,gateway",
        "--role",
        help="Comma-separated roles: api (REST API and dashboard), gateway (the "
        "OpenAI-compatible logging proxy). Default: both.",
    ),
) -> None:
    """Serve the API, the web dashboard and the gateway on the configured database."""
    import uvicorn

    from panopticon.gateway.app import serve_app

    roles = {r.strip() for r in role.split(",") if r.strip()}
    unknown = sorted(roles - set(ROLES))
    if unknown or not roles:
        raise ConfigError(
            Issue(
                f"unknown role(s): {', '.join(unknown) or '(none given)'}",
                field="--role",
                hint="use " + ", ".join(ROLES) + " (comma-separated to combine)",
            )
        )
    settings = load_settings()
    app, gateway = serve_app(settings, os.environ, roles)
    parts = []
    if "api" in roles:
        parts.append("dashboard /ui/, API docs /api/docs")
    if gateway is not None:
        parts.append(f"gateway: OpenAI base_url http://{host}:{port}/v1")
    console.print(
        f"Panopticon on http://{host}:{port}: {'; '.join(parts)}; database "
        f"{settings.display_database_url}",
        highlight=False,
    )
    # httptools and uvloop when installed (they are dependencies): the gateway's speed; no
    # access log line per request where the gateway serves (calls are logged as traces)
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
