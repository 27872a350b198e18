"""``panopticon view``: the dashboard on the local database, signed in by a one-time link
(like ``promptfoo view`` and ``inspect view``): nothing to copy, nothing stored.

It listens on the loopback interface only; the link's token works once, for two minutes;
the session's key lives in this process's memory and dies with it."""

from __future__ import annotations

import ipaddress
import os

import typer

from panopticon.cli.output import EXIT, console, err_console, handle_errors

__all__ = ["view"]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@handle_errors
def view(
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="The dashboard's port."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Loopback address only (127.0.0.1, ::1 or localhost)."
    ),
    browser: bool = typer.Option(
        True, "--browser/--no-browser", help="Open the link in a browser, when there is one."
    ),
) -> None:
    """Open the dashboard on the local database, signed in by a one-time link."""
    if not _loopback(host):
        err_console.print(
            f"[bold red]error:[/] panopticon view listens on this machine only, not on "
            f"'{host}'\n    fix: use `panopticon serve --host {host}` with API keys to share "
            "the dashboard",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT["usage"])
    from panopticon.cli.workers import port_free

    if not port_free(host, port):
        err_console.print(
            f"[bold red]error:[/] port {port} on {host} is in use\n    fix: choose another "
            "with --port",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT["usage"])
    import secrets
    import threading

    import uvicorn

    from panopticon.api.app import create_app
    from panopticon.settings import load_settings
    from panopticon.web.view import LINK_TTL_S, issue_link_token

    settings = load_settings()
    if not settings.api_key:  # a key for this process only, never shown: the link's
        # session holds its hash (an operator's PANOPTICON_API_KEY is used as it is)
        settings = settings.model_copy(update={"api_key": "view_" + secrets.token_urlsafe(32)})
    app = create_app(settings, env=os.environ)
    shown = f"[{host}]" if ":" in host else host
    link = f"http://{shown}:{port}/ui/link/{issue_link_token(app)}"
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))

    def announce() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if not server.started:
            return
        console.print(
            f"Dashboard on {settings.resolved_database_url}: open\n  {link}\n(the link "
            f"signs you in once, within {LINK_TTL_S:.0f} s; Ctrl-C stops)",
            highlight=False,
            soft_wrap=True,
        )
        if browser:
            import contextlib
            import webbrowser

            with contextlib.suppress(webbrowser.Error):  # none here: the link is printed
                webbrowser.get().open(link)

    threading.Thread(target=announce, daemon=True).start()
    server.run()
