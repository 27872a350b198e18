"""The README documents every command, setting, suite key and metric type."""

from __future__ import annotations

from pathlib import Path

import typer

from panopticon.cli import app
from panopticon.evaluation.suite import ModelSpec, QueryFileSpec, QuerySpec, Suite
from panopticon.judges import metric_types
from panopticon.settings import ENV_PREFIX, Settings

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def command_paths() -> list[str]:
    root = typer.main.get_command(app)
    ctx = typer.Context(root)
    paths = []
    for name in root.list_commands(ctx):  # type: ignore[attr-defined]
        cmd = root.get_command(ctx, name)  # type: ignore[attr-defined]
        subcommands = getattr(cmd, "commands", None)
        if subcommands:
            paths += [f"{name} {sub}" for sub in subcommands]
        else:
            paths.append(name)
    assert "run" in paths and "db upgrade" in paths
    return paths


def test_every_command_is_in_the_readme() -> None:
    missing = [p for p in command_paths() if f"panopticon {p}" not in README]
    assert missing == []


def test_every_setting_is_in_the_readme() -> None:
    missing = [f for f in Settings.model_fields if f"`{ENV_PREFIX}{f.upper()}`" not in README]
    assert missing == []


def test_every_suite_key_and_metric_type_is_in_the_readme() -> None:
    keys = {
        *Suite.model_fields,
        *ModelSpec.model_fields,
        *QuerySpec.model_fields,
        *QueryFileSpec.model_fields,
    }
    missing = sorted(k for k in keys if f"`{k}`" not in README)
    assert missing == []
    assert [t for t in metric_types() if f"`{t}`" not in README] == []
