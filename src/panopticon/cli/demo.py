"""``panopticon demo``: start the mock server and run the bundled demo suite against it."""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

import typer

from panopticon.cli.output import console, handle_errors
from panopticon.cli.run import run
from panopticon.settings import load_settings

__all__ = ["demo"]


@handle_errors
def demo(
    copy_to: Path | None = typer.Option(
        None,
        "--copy-to",
        help="Copy the demo suite into this folder (to edit it) instead of running it.",
    ),
) -> None:
    """Run the demo: three mock models, a judge, 16 questions, offline, over real HTTP."""
    source = resources.files("panopticon.examples").joinpath("demo")
    if copy_to is not None:
        copy_to.mkdir(parents=True, exist_ok=True)
        for name in ("suite.yaml", "queries.jsonl"):
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
    with (
        MockServer(MockConfig.demo()) as server,
        resources.as_file(source.joinpath("suite.yaml")) as suite,
    ):
        console.print(
            f"mock LLM server on {server.url} (3 models of known quality, 3% "
            "injected 429s); database: "
            f"{settings.resolved_database_url}",
            highlight=False,
        )
        os.environ["MOCK_URL"] = server.url
        try:
            run(suite=Path(suite), resume=None, no_cache=True, min_pass_rate=None, progress=True)
        finally:
            stats = server.stats.as_dict()
            console.print(
                f"the mock server answered {stats['answered']} requests "
                f"({stats['injected'].get('429', 0)} injected 429s were retried)",
                highlight=False,
            )
