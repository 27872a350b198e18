"""The command line stays quick: a command imports only what it uses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from panopticon.mockllm.server import MockServer
from tests.conftest import suite_yaml


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


def test_piped_tables_keep_every_digit_and_commands_stay_on_one_line() -> None:
    """`panopticon calibration 2 | cat` cut an interval's bounds to '…' at 80 columns, and a
    logged `export: panopticon export 1 --format csv` was wrapped mid-command."""
    import os

    code = (
        "from rich.table import Table\n"
        "from panopticon.cli.output import console\n"
        "t = Table()\n"
        "for i in range(12):\n"
        "    t.add_column(f'Spearman 95% CI {i}')\n"
        "t.add_row(*[f'-0.{i}23 to 0.{i}89' for i in range(12)])\n"
        "console.print(t)\n"
        "console.print('export: ' + 'x' * 90 + ' panopticon export 1 --format csv')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert "…" not in out
    assert all(f"-0.{i}23 to 0.{i}89" in out for i in range(12))
    assert any(line.endswith("panopticon export 1 --format csv") for line in out.splitlines())


def test_a_run_imports_no_baseline_comparison_nor_the_mock_behaviour_unless_it_uses_them() -> None:
    """What `panopticon run suite.yaml` imports before its first call: the command, its gates
    (thresholds are parsed on every run) and both registries. The paired comparison is for
    --baseline and the mock's behaviour for `provider: fake`."""
    modules = imported_after(
        "import panopticon.cli.run, panopticon.services.gates, panopticon.evaluation.selection\n"
        "from panopticon.providers.base import provider_names\n"
        "from panopticon.judges.base import metric_types\n"
        "provider_names(), metric_types()"
    )
    assert "panopticon.providers.fake" in modules  # registered, as every built-in is
    unused = {"panopticon.services.compare", "panopticon.stats.paired", "panopticon.mockllm"}
    assert not unused & modules


def test_a_run_reaches_its_first_call_without_what_it_needs_only_later(
    mock: MockServer, tmp_path: Path
) -> None:
    """What `panopticon run suite.yaml` has imported when it sends its first request: not
    the summary's statistics and tables (printed when the run has finished), nor the
    metrics the suite does not name, nor the pairwise phase. The first call is seen by a
    provider registered in the child before the command runs, as a plugin would be."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        suite_yaml(
            mock.url,
            queries=2,
            models=("good",),
            metrics="  - {name: quality, type: rubric, prompt: 'Is it good?', scale: [1, 10]}",
        )
    )
    code = (
        "import sys\n"
        "from panopticon.providers.base import register_provider\n"
        "from panopticon.providers.openai import OpenAIProvider\n"
        "class FirstCall(OpenAIProvider):\n"
        "    seen = None\n"
        "    async def complete(self, request):\n"
        "        if FirstCall.seen is None:\n"
        "            FirstCall.seen = sorted(sys.modules)\n"
        "            print('\\n'.join(FirstCall.seen), file=sys.stderr)\n"
        "        return await super().complete(request)\n"
        "register_provider('openai', FirstCall)\n"
        "sys.argv = ['panopticon', 'run', sys.argv[1], '--no-progress']\n"
        "from panopticon.cli import main\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANOPTICON_")}
    env["PANOPTICON_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, "-c", code, str(suite)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "completed" in done.stdout
    modules = set(done.stderr.split())
    assert "panopticon.judges.rubric" in modules  # the proof that this is the run's first call
    later = {
        "panopticon.stats.summary",
        "panopticon.cli.summary",
        "panopticon.cli.tables",
        "panopticon.judges.pairwise",
        "panopticon.judges.heuristics",
        "panopticon.judges.safety",
        "panopticon.judges.rag",
        "panopticon.judges.panel",
        "statistics",
    }
    assert not later & modules
