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
) -> None:
    """Serve the API and the web dashboard on the configured database."""
    import uvicorn

    from panopticon.api.app import create_app

    settings = load_settings()
    app = create_app(settings, env=os.environ)
    console.print(
        f"Panopticon on http://{host}:{port}: dashboard /ui/, API docs /api/docs; database "
        f"{settings.display_database_url}",
        highlight=False,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
