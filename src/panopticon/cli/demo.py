"""``panopticon demo``: start the mock server and run the bundled demo suite against it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from importlib import resources
from pathlib import Path

import typer

from panopticon.cli.output import console, handle_errors
from panopticon.cli.run import run
from panopticon.errors import ConfigError, Issue
from panopticon.settings import load_settings

__all__ = ["demo"]

# the demo suite's default base_url (examples/demo/suite.yaml): its models keep one address,
# so the registry points where `panopticon mock-server --profile demo` serves, and a second
# demo finds the first one's answers in the cache (the cache keys on the base_url)
DEMO_MOCK_PORT = 8765
_DEMO_FILES = ("suite.yaml", "queries.jsonl")


@handle_errors
def demo(
    copy_to: Path | None = typer.Option(
        None,
        "--copy-to",
        help="Copy the demo suite into this folder (to edit it) instead of running it.",
    ),
    serve: bool = typer.Option(
        True, "--serve/--no-serve", help="Then serve the dashboard until Ctrl-C."
    ),
    port: int = typer.Option(8000, help="The dashboard's port."),
    mock_port: int = typer.Option(
        DEMO_MOCK_PORT,
        "--mock-port",
        help="The mock server's port. The demo's models are registered at it, and stored "
        "answers are reused by the next demo on the same port.",
    ),
) -> None:
    """Run the demo: three mock models, a judge, 16 questions, offline, over real HTTP;
    then serve the dashboard on the results."""
    source = resources.files("panopticon.examples").joinpath("demo")
    if copy_to is not None:
        _check_copy_target(copy_to)
        copy_to.mkdir(parents=True, exist_ok=True)
        for name in _DEMO_FILES:
            shutil.copyfile(str(source.joinpath(name)), copy_to / name)
        console.print(
            f"copied the demo suite to {copy_to}/suite.yaml; run it with "
            f"`panopticon mock-server --profile demo` and `panopticon run "
            f"{copy_to}/suite.yaml`",
            highlight=False,
        )
        return
    from panopticon.mockllm.behaviour import MockConfig
    from panopticon.mockllm.server import MockServer  # aiohttp.web: only when needed

    settings = load_settings()
    listener = _listen(port) if serve else None  # a busy port is said before the run, not after
    with (
        MockServer(MockConfig.demo(), port=_mock_port(mock_port)) as server,
        resources.as_file(source.joinpath("suite.yaml")) as suite,
    ):
        console.print(
            f"mock LLM server on {server.url} (3 models of known quality, 3% "
            "injected 429s); database: "
            f"{settings.display_database_url}",
            highlight=False,
        )
        os.environ["MOCK_URL"] = server.url
        try:
            run(
                suite=Path(suite),
                resume=None,
                no_cache=False,  # the same mock as last time: stored answers are reused
                min_pass_rate=None,
                progress=True,
                progress_every=10.0,
                limit=None,
                filters=[],
                dry_run=False,
                threshold=[],
                baseline=None,
                fail_on_regression=False,
                junit=None,
            )
        except typer.Exit as done:
            if done.exit_code:
                raise
        finally:
            stats = server.stats.as_dict()
            console.print(
                f"the mock server answered {stats['answered']} requests "
                f"({stats['injected'].get('429', 0)} injected 429s were retried)",
                highlight=False,
            )
        if listener is not None:
            _serve(listener)  # the mock stays up: the demo's models can be called from the UI


def _check_copy_target(folder: Path) -> None:
    """``--copy-to`` writes a folder the user then edits: copying again must not replace
    their edits in silence, and a path that is a file is said, not a traceback."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            Issue(
                f"{folder} is a file, not a folder",
                field="--copy-to",
                hint="give a folder to copy the demo suite into, e.g. --copy-to mysuite/",
            )
        )
    present = [name for name in _DEMO_FILES if (folder / name).exists()]
    if present:
        raise ConfigError(
            Issue(
                f"{folder} already holds {' and '.join(present)}; copying the demo again "
                "would replace your edits",
                field="--copy-to",
                hint=f"copy into another folder, or delete {' and '.join(present)} there first",
            )
        )


def _mock_port(port: int) -> int:
    """``port`` when it is free, else any free port (said: the demo's models then move, and
    nothing is reused from an earlier demo)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            console.print(
                f"[yellow]port {port} is busy:[/] the mock server takes another, so the demo's "
                "models are re-pointed there and answers stored by earlier demos are not "
                "reused (--mock-port chooses the port)",
                highlight=False,
            )
            return 0
    return port


def _listen(port: int) -> socket.socket:
    """The dashboard's socket, bound now: the port is ours before the demo runs. It listens
    at once, so a browser opened on the printed address waits for the server, not refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            Issue(
                f"cannot serve the dashboard on port {port}: {exc.strerror or exc}",
                field="--port",
                hint=f"another program uses it: give another port (panopticon demo --port "
                f"{port + 1}), or run without the dashboard (--no-serve)",
            )
        ) from None
    return sock


def _serve(sock: socket.socket) -> None:
    import secrets

    import uvicorn

    from panopticon.api.app import create_app

    settings = load_settings()
    key = settings.api_key
    if key is None:  # a key for this session only: nothing is stored
        key = "demo_" + secrets.token_urlsafe(16)
        settings = settings.model_copy(update={"api_key": key})
    app = create_app(settings, env=os.environ)
    port = sock.getsockname()[1]
    console.print(
        f"\n[bold]Dashboard: http://127.0.0.1:{port}/ui/[/bold]  (sign in with the key "
        f"[bold]{key}[/bold]; API docs at /api/docs; Ctrl-C stops)",
        highlight=False,
        soft_wrap=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    # uvicorn shuts down on Ctrl-C, then raises it again for the caller: stopping the
    # dashboard is how the demo ends, not an error (make would report one)
    with sock, contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    console.print(
        f"dashboard stopped; the demo's results stay in {settings.display_database_url} "
        "(`panopticon view` opens them again)",
        highlight=False,
        soft_wrap=True,
    )
