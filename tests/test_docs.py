"""The README documents every command, setting, suite key and metric type."""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import typer
import yaml

from panopticon.cli import app
from panopticon.errors import ConfigError
from panopticon.evaluation.suite import ModelSpec, QueryFileSpec, QuerySpec, Suite, load_suite
from panopticon.judges import metric_types
from panopticon.settings import ENV_PREFIX, Settings

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
PYPROJECT = (Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8")


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


def blocks(language: str) -> list[tuple[int, str]]:
    """The README's fenced blocks in ``language``, with the line each starts on."""
    found = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", README, re.S | re.M):
        if m.group(1) == language:
            found.append((README[: m.start()].count("\n") + 2, m.group(2)))
    return found


def test_every_yaml_block_parses_and_every_suite_in_one_validates(tmp_path: Path) -> None:
    assert blocks("yaml"), "the README shows a suite"
    for line, text in blocks("yaml") + blocks("yml"):
        data = yaml.safe_load(text)  # a block that is not YAML fails here, with its line
        if not (isinstance(data, dict) and "models" in data and "queries" in data):
            continue
        folder = tmp_path / f"block-{line}"
        folder.mkdir()
        for entry in data["queries"]:  # the files it names, with one valid row each
            if isinstance(entry, dict) and "file" in entry:
                row = '{"text": "q", "expected": "a", "context": "c"}\n'
                if entry["file"].endswith(".csv"):
                    row = "text,expected,context\nq,a,c\n"
                (folder / entry["file"]).write_text(row)
        (folder / "suite.yaml").write_text(text)
        env = {v: "test-key" for v in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY")}
        try:
            load_suite(folder / "suite.yaml", env)
        except ConfigError as exc:
            raise AssertionError(f"README.md:{line}: the suite is invalid:\n{exc}") from None


def test_a_readme_suite_with_a_reference_metric_gives_each_inline_query_its_answer() -> None:
    """A `reference` metric scores a query against its `expected`: the first suite had an
    inline query without one, so every run of it recorded a score error per model that no
    resume could fix, and a gate on that metric could not pass."""
    for line, text in blocks("yaml"):
        data = yaml.safe_load(text)
        if not (isinstance(data, dict) and "models" in data and "queries" in data):
            continue
        if not any(m.get("type") == "reference" for m in data.get("metrics") or []):
            continue
        for query in data["queries"]:
            if isinstance(query, dict) and "file" not in query:
                assert "expected" in query, f"README.md:{line}: {query} has no 'expected'"


def _command(root: Any, words: list[str]) -> tuple[Any, list[str], str]:
    """The command ``words`` names (descending into groups), its arguments, its name."""
    ctx = typer.Context(root)
    command, path = root, "panopticon"
    while words and hasattr(command, "list_commands"):
        sub = command.get_command(ctx, words[0])
        assert sub is not None, f"no command '{path} {words[0]}'"
        command, path, words = sub, f"{path} {words[0]}", words[1:]
    return command, words, path


def test_every_shell_block_is_valid_and_names_real_commands_options_and_targets() -> None:
    root = typer.main.get_command(app)
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    extras = set(tomllib.loads(PYPROJECT)["project"]["optional-dependencies"])
    shell = blocks("sh") + blocks("bash") + blocks("shell")
    assert shell, "the README shows commands"
    for line, text in shell:
        syntax = subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True)
        assert syntax.returncode == 0, f"README.md:{line}: {syntax.stderr}"
        for offset, command_line in enumerate(text.replace("\\\n", " ").splitlines()):
            words = shlex.split(command_line, comments=True)
            for i, word in enumerate(words):  # the command itself: not what it pipes into
                if word in ("&", ">", ">>", "<", "|", "&&", ";"):
                    words = words[:i]
                    break
            where = f"README.md:{line + offset}: {command_line.strip()}"
            if not words:
                continue
            if words[0] == "panopticon":
                command, args, path = _command(root, words[1:])
                try:  # parses every option and argument; runs nothing
                    command.make_context(path, args, resilient_parsing=False)
                except Exception as exc:
                    raise AssertionError(f"{where}: {exc}") from None
            elif words[0] == "make":
                assert set(words[1:]) <= targets, f"{where}: no such make target"
            elif words[:3] == ["pip", "install", "-e"]:
                extra = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", words[3])
                assert extra, where
                assert set((extra.group(1) or "").split(",")) - {""} <= extras, where
