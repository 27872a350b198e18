"""``panopticon db``: the schema."""

from __future__ import annotations

import typer

from panopticon.cli.output import console, handle_errors
from panopticon.settings import load_settings

app = typer.Typer(
    help="Database schema: upgrade, current.", no_args_is_help=True, add_completion=False
)


@app.command("upgrade")
@handle_errors
def upgrade_cmd() -> None:
    """Apply migrations up to the newest (safe to run repeatedly)."""
    from panopticon.services.database import migrate

    before, after = migrate(load_settings())
    if before.up_to_date:
        console.print(f"{after.url}: already at revision {after.head}", highlight=False)
    else:
        console.print(
            f"{after.url}: upgraded from {before.revision or 'empty'} to {after.head}",
            highlight=False,
        )
    for note in after.notes:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)


@app.command("current")
@handle_errors
def current_cmd() -> None:
    """Show the schema revision of the database in use."""
    from panopticon.services.database import schema_state

    state = schema_state(load_settings())
    note = "up to date" if state.up_to_date else f"this code needs {state.head}"
    console.print(f"{state.url}: revision {state.revision or 'none'} ({note})", highlight=False)
