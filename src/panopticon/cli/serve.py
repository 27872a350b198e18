"""``panopticon serve``: the REST API (OpenAPI at /api/docs) and the dashboard (/ui/)."""

from __future__ import annotations

import os

import typer

from panopticon.cli.output import console, handle_errors
from panopticon.settings import load_settings

__all__ = ["serve"]


@handle_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port."),
    role: str = typer.Option(
        "api,ingest",
        "--role",
        help="What to serve, comma-separated: api (REST API, dashboard, jobs), ingest "
        "(OTLP /v1/traces and the JSON trace API).",
    ),
) -> None:
    """Serve the API and the web dashboard on the configured database."""
    import uvicorn

    from panopticon.api.app import create_app

    settings = load_settings()
    roles = [r.strip() for r in role.split(",") if r.strip()]
    app = create_app(settings, env=os.environ, roles=roles)
    where = []
    if "api" in roles:
        where.append("dashboard /ui/, API docs /api/docs")
    if "ingest" in roles:
        where.append("OTLP traces /v1/traces")
    console.print(
        f"Panopticon on http://{host}:{port}: {', '.join(where)}; database "
        f"{settings.resolved_database_url}",
        highlight=False,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
