"""The command line stays quick: a command imports only what it uses."""

from __future__ import annotations

import subprocess
import sys


def imported_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_importing_the_cli_imports_no_command_module_nor_sqlalchemy() -> None:
    modules = imported_after("import panopticon.cli")
    assert not any(m.startswith("sqlalchemy") for m in modules)
    assert not any(m.startswith("panopticon.services") for m in modules)
    assert "panopticon.cli.run" not in modules


def test_version_imports_nothing_of_the_commands() -> None:
    modules = imported_after(
        "import sys\nsys.argv = ['panopticon', '--version']\n"
        "from panopticon.cli import app\ntry:\n    app()\nexcept SystemExit:\n    pass"
    )
    assert not any(
        m.startswith(("sqlalchemy", "panopticon.services", "rich.table")) for m in modules
    )


def test_a_command_is_found_and_runs_when_asked() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "panopticon", "db", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "upgrade" in out and "--install-completion" not in out


def test_a_server_process_freezes_its_start_up_heap_once_its_app_is_built() -> None:
    # in a child process: freezing is for a server, not for a test process
    code = (
        "import gc\n"
        "from panopticon.cli.serve import settle_heap\n"
        "class App:\n"
        "    built = False\n"
        "    def openapi(self):\n"
        "        self.built = True\n"
        "app = settle_heap(App())\n"
        "print(app.built, gc.get_freeze_count() > 1000)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["True", "True"]
