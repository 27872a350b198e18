"""``panopticon keys``: API keys, shown once, stored hashed, revocable."""

from __future__ import annotations

import typer

from panopticon.cli.output import console, handle_errors
from panopticon.cli.tables import FORMAT_HELP, check_format, show_rows
from panopticon.services.access import create_key, list_keys, revoke_key
from panopticon.services.database import workspace_id
from panopticon.services.runs import store
from panopticon.settings import load_settings

app = typer.Typer(
    help="API keys: create, list, revoke.", no_args_is_help=True, add_completion=False
)


@app.command("create")
@handle_errors
def create_cmd(
    workspace: str = typer.Option(
        "default", "--workspace", "-w", help="Workspace (created if new)."
    ),
    role: str = typer.Option("member", "--role", help="admin, member or viewer."),
    name: str = typer.Option("cli", "--name", help="A label to recognise the key by."),
    scope: str | None = typer.Option(
        None, "--scope", help="'ingest': the key may only send traces and scores."
    ),
) -> None:
    """Create a key. It is printed once; only its hash is stored."""
    with store(load_settings()) as engine:
        key_id, key = create_key(engine, workspace, role, name, scope)
    scoped = f", scope {scope}: it may only send traces, logs and scores" if scope else ""
    console.print(f"key {key_id} ({role} of workspace '{workspace}'{scoped}):", highlight=False)
    console.print(key, highlight=False, soft_wrap=True)
    console.print("Store it now: it cannot be shown again. Send it as the X-API-Key header.")


@app.command("list")
@handle_errors
def list_cmd(
    workspace: str | None = typer.Option(None, "--workspace", "-w"),
    fmt: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
) -> None:
    """List keys (never the keys themselves)."""
    check_format(fmt)
    with store(load_settings()) as engine:
        ws = workspace_id(engine, workspace, create=False) if workspace else None
        rows = list_keys(engine, ws)
    show_rows(
        console,
        ["id", "workspace", "name", "role", "scope", "prefix", "created", "last used", "state"],
        [
            [
                k.id,
                k.workspace,
                k.name,
                k.role,
                k.scope or "all",
                k.prefix + "...",
                f"{k.created_at:%Y-%m-%d}",
                f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "-",
                "revoked" if k.revoked_at else "active",
            ]
            for k in rows
        ],
        fmt,
        key="keys",
    )


@app.command("revoke")
@handle_errors
def revoke_cmd(key_id: int = typer.Argument(...)) -> None:
    """Revoke a key; requests with it are refused from now on."""
    with store(load_settings()) as engine:
        revoke_key(engine, key_id)
    console.print(f"key {key_id} revoked")
