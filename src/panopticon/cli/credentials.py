"""``panopticon credentials``: a workspace's provider keys, stored encrypted.

The secret is read from a hidden prompt, or from standard input when it is not a terminal
(``printf %s "$KEY" | panopticon credentials set NAME``); never from the command line,
where it would land in the shell's history and the process list.
"""

from __future__ import annotations

import sys

import typer

from panopticon.cli.output import console, handle_errors
from panopticon.cli.tables import FORMAT_HELP, check_format, show_rows
from panopticon.errors import ConfigError, Issue
from panopticon.settings import load_settings

app = typer.Typer(
    help="Provider keys of a workspace: set, list, delete (stored encrypted).",
    no_args_is_help=True,
)

WORKSPACE = typer.Option(None, "--workspace", "-w", help="Default: PANOPTICON_WORKSPACE.")


def _read_secret() -> str:
    if sys.stdin.isatty():
        secret = str(typer.prompt("secret", hide_input=True, confirmation_prompt=False))
    else:
        secret = sys.stdin.readline()
    secret = secret.strip()
    if not secret:
        raise ConfigError(
            Issue(
                "no secret given",
                field="secret",
                hint='type it at the prompt, or pipe it: printf %s "$KEY" | '
                "panopticon credentials set NAME",
            )
        )
    return secret


@app.command("set")
@handle_errors
def set_cmd(
    name: str = typer.Argument(..., help="The credential's name, as providers name it."),
    workspace: str | None = WORKSPACE,
) -> None:
    """Store (or replace) a credential; the secret is read from a prompt or stdin."""
    from panopticon.services.credentials import Credentials
    from panopticon.services.database import workspace_id
    from panopticon.services.runs import store

    settings = load_settings()
    ws_name = workspace or settings.workspace
    secret = _read_secret()
    with store(settings) as engine:
        ws = workspace_id(engine, ws_name)
        created = Credentials(engine, ws, settings).set(name, secret)
    console.print(
        f"credential '{name}' {'stored' if created else 'replaced'} in workspace '{ws_name}'",
        highlight=False,
    )


@app.command("list")
@handle_errors
def list_cmd(
    workspace: str | None = WORKSPACE,
    fmt: str | None = typer.Option(None, "--format", "-f", help=FORMAT_HELP),
) -> None:
    """List credentials: names, dates and the providers using them (never a secret)."""
    from panopticon.services.credentials import Credentials
    from panopticon.services.database import workspace_id
    from panopticon.services.runs import store

    check_format(fmt)
    settings = load_settings()
    with store(settings) as engine:
        ws = workspace_id(engine, workspace or settings.workspace, create=False)
        rows = Credentials(engine, ws, settings).list()
    show_rows(
        console,
        ["name", "created", "updated", "used by"],
        [
            [
                r.name,
                f"{r.created_at:%Y-%m-%d %H:%M}",
                f"{r.updated_at:%Y-%m-%d %H:%M}",
                ", ".join(r.providers) or "-",
            ]
            for r in rows
        ],
        fmt,
        key="credentials",
    )


@app.command("delete")
@handle_errors
def delete_cmd(name: str = typer.Argument(...), workspace: str | None = WORKSPACE) -> None:
    """Delete a credential that no provider uses."""
    from panopticon.services.credentials import Credentials
    from panopticon.services.database import workspace_id
    from panopticon.services.runs import store

    settings = load_settings()
    with store(settings) as engine:
        ws = workspace_id(engine, workspace or settings.workspace, create=False)
        Credentials(engine, ws, settings).delete(name)
    console.print(f"credential '{name}' deleted", highlight=False)


@app.command("new-key")
@handle_errors
def new_key_cmd() -> None:
    """Print a new encryption key for PANOPTICON_ENCRYPTION_KEY."""
    from panopticon.services.credentials import new_key

    console.print(new_key(), highlight=False, soft_wrap=True)


@app.command("rotate")
@handle_errors
def rotate_cmd() -> None:
    """Re-encrypt every credential with the first key of PANOPTICON_ENCRYPTION_KEY."""
    from panopticon.services.credentials import rotate
    from panopticon.services.runs import store

    settings = load_settings()
    with store(settings) as engine:
        n = rotate(engine, settings)
    console.print(
        f"{n} credential(s) re-encrypted with the first key; the others can now be removed",
        highlight=False,
    )
