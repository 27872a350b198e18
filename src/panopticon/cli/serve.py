"""``panopticon serve``: the REST API (OpenAPI at /api/docs) and the dashboard (/ui/)."""

from __future__ import annotations

import os

import typer

from panopticon.cli.output import console, handle_errors
from panopticon.settings import load_settings

__all__ = ["serve", "worker_app"]

# how the parent tells its worker processes their roles (uvicorn starts them by import)
_ROLES_VAR = "PANOPTICON__SERVE_ROLES"


def worker_app() -> object:
    """The app of one worker process of ``serve --workers N``."""
    from panopticon.api.app import create_app

    roles = os.environ.get(_ROLES_VAR, "api,ingest").split(",")
    return create_app(load_settings(), env=os.environ, roles=roles)


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
    workers: int = typer.Option(
        1,
        min=1,
        max=64,
        help="Server processes sharing the port (ingestion is CPU-bound: one per core).",
    ),
) -> None:
    """Serve the API and the web dashboard on the configured database."""
    import uvicorn

    from panopticon.api.app import create_app

    settings = load_settings()
    roles = [r.strip() for r in role.split(",") if r.strip()]
    if workers > 1 and "api" in roles and settings.is_sqlite:
        from panopticon.errors import ConfigError, Issue

        raise ConfigError(
            Issue(
                "several workers with the api role need PostgreSQL (each would run the "
                "embedded job runner)",
                field="--workers",
                hint="use --role ingest, or PANOPTICON_DATABASE_URL=postgresql://...",
            )
        )
    app = create_app(settings, env=os.environ, roles=roles)
    where = []
    if "api" in roles:
        where.append("dashboard /ui/, API docs /api/docs")
    if "ingest" in roles:
        where.append("OTLP traces /v1/traces")
    console.print(
        f"Panopticon on http://{host}:{port}: {', '.join(where)}; database "
        f"{settings.display_database_url}",
        highlight=False,
    )
    if workers > 1:
        os.environ[_ROLES_VAR] = ",".join(roles)
        uvicorn.run(
            "panopticon.cli.serve:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="info",
        )
        return
    uvicorn.run(app, host=host, port=port, log_level="info")
