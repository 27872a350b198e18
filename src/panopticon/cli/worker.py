"""``panopticon worker``: run jobs from the shared queue (PostgreSQL)."""

from __future__ import annotations

import asyncio
import os

import typer

from panopticon.cli.output import console, handle_errors
from panopticon.errors import ConfigError, Issue
from panopticon.settings import load_settings

__all__ = ["worker"]


@handle_errors
def worker(
    concurrency: int = typer.Option(
        1, "--concurrency", min=1, max=64, help="Jobs run at once by this process."
    ),
    heartbeat: float = typer.Option(
        10.0, "--heartbeat", min=0.1, help="Seconds between this worker's heartbeats."
    ),
    stalled_after: float = typer.Option(
        30.0,
        "--stalled-after",
        min=0.5,
        help="A worker silent this long is dead: its jobs are retried (and resume their runs).",
    ),
) -> None:
    """Take evaluation jobs from the queue; run as many workers, anywhere, as you need."""
    settings = load_settings()
    if settings.is_sqlite:
        raise ConfigError(
            Issue(
                "workers share a PostgreSQL queue; the embedded SQLite database has none",
                field="PANOPTICON_DATABASE_URL",
                hint="with SQLite, `panopticon serve` runs jobs itself",
            )
        )
    from panopticon.worker import QUEUE, build_app, ensure_schema, retry_stalled_jobs

    app = build_app(settings, settings.allowed_environment(os.environ))

    async def main() -> None:
        await ensure_schema(app)
        console.print(
            f"worker: taking jobs from queue '{QUEUE}' (concurrency {concurrency})", highlight=False
        )
        async with app.open_async():
            rescue = asyncio.create_task(retry_stalled_jobs(app, stalled_after))
            try:
                await app.run_worker_async(
                    queues=[QUEUE],
                    concurrency=concurrency,
                    update_heartbeat_interval=heartbeat,
                    stalled_worker_timeout=stalled_after,
                    # our own job rows keep every job's status; the queue keeps failures
                    # only (online evaluation's tick alone is a job a second)
                    delete_jobs="successful",
                )
            finally:
                rescue.cancel()

    asyncio.run(main())
