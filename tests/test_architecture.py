"""The layers of ARCHITECTURE.md hold: domain packages import no frameworks or database."""

from __future__ import annotations

import ast
from pathlib import Path

import panopticon

SRC = Path(panopticon.__file__).parent
DOMAIN = ("evaluation", "providers", "judges", "stats", "mockllm", "online")
FORBIDDEN = (
    "sqlalchemy",
    "alembic",
    "fastapi",
    "typer",
    "rich",
    "panopticon.store",
    "panopticon.cli",
    "panopticon.services",
)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_domain_packages_do_not_import_frameworks_or_the_store() -> None:
    offenders = []
    for package in DOMAIN:
        for path in (SRC / package).rglob("*.py"):
            for name in imports_of(path):
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                    offenders.append(f"{path.relative_to(SRC)} imports {name}")
    assert offenders == []


def test_only_settings_reads_the_environment_for_configuration() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if ("os.environ" in text or "os.getenv" in text) and path.name != "settings.py":
            offenders.append(str(path.relative_to(SRC)))
    # the CLI hands the process environment to suites (${VAR} and api_key_env) and to a
    # backfill's judge (api_key_env), nothing else
    assert sorted(offenders) == [
        "cli/demo.py",
        "cli/online.py",
        "cli/run.py",
        "cli/serve.py",
        "cli/view.py",
        "cli/worker.py",
    ]


def test_api_routes_call_services_not_the_store() -> None:
    offenders = []
    for path in [*(SRC / "api" / "routes").rglob("*.py"), *(SRC / "web").rglob("*.py")]:
        for name in imports_of(path):
            if name.startswith(("sqlalchemy", "panopticon.store")):
                offenders.append(f"{path.relative_to(SRC)} imports {name}")
    assert offenders == []


def test_services_hold_no_sql_the_store_is_the_only_door() -> None:
    offenders = []
    for path in (SRC / "services").rglob("*.py"):
        for name in imports_of(path):
            if name == "sqlalchemy" or name.startswith("sqlalchemy."):
                offenders.append(f"{path.relative_to(SRC)} imports {name}")
    assert offenders == []
