"""``panopticon db``: the schema."""

from __future__ import annotations

import typer

from panopticon.cli.output import console, handle_errors
from panopticon.settings import load_settings
from panopticon.store.engine import HEAD_REVISION, create_engine, current_revision, upgrade

app = typer.Typer(
    help="Database schema: upgrade, current.", no_args_is_help=True, add_completion=False
)


@app.command("upgrade")
@handle_errors
def upgrade_cmd() -> None:
    """Apply migrations up to the newest (safe to run repeatedly)."""
    settings = load_settings()
    engine = create_engine(settings)
    try:
        before = current_revision(engine)
        upgrade(engine)
        url = engine.url.render_as_string(hide_password=True)
    finally:
        engine.dispose()
    if before == HEAD_REVISION:
        console.print(f"{url}: already at revision {HEAD_REVISION}", highlight=False)
    else:
        console.print(
            f"{url}: upgraded from {before or 'empty'} to {HEAD_REVISION}", highlight=False
        )


@app.command("current")
@handle_errors
def current_cmd() -> None:
    """Show the schema revision of the database in use."""
    engine = create_engine(load_settings())
    try:
        rev = current_revision(engine)
    finally:
        engine.dispose()
    note = "up to date" if rev == HEAD_REVISION else f"this code needs {HEAD_REVISION}"
    console.print(
        f"{engine.url.render_as_string(hide_password=True)}: revision {rev or 'none'} ({note})",
        highlight=False,
    )
