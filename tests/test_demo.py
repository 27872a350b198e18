"""The README's main job: `panopticon demo` runs the bundled suite against the mock server."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.store.tables import Result, Run, Score


def test_the_demo_stores_every_result_and_score(env: dict[str, str], engine: sa.Engine) -> None:
    result = CliRunner().invoke(app, ["demo", "--no-serve"])
    assert result.exit_code == 0, result.output
    assert "run 1 completed" in result.output
    with engine.connect() as conn:
        assert conn.scalar(sa.select(Run.c.status)) == "completed"
        answers = conn.scalar(
            sa.select(sa.func.count()).select_from(Result).where(Result.c.error.is_(None))
        )
        scores = conn.scalar(
            sa.select(sa.func.count()).select_from(Score).where(Score.c.error.is_(None))
        )
    assert answers == 16 * 3  # 16 queries x 3 models
    assert scores == 16 * 3 * 4  # 4 metrics each
    # the demo's models differ in quality, and the summary shows it
    assert "frontier" in result.output and "tiny" in result.output


def test_the_demo_suite_can_be_copied_to_edit(tmp_path: Path, env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["demo", "--copy-to", str(tmp_path / "mine")])
    assert result.exit_code == 0
    assert (tmp_path / "mine" / "suite.yaml").is_file()
    assert (tmp_path / "mine" / "queries.jsonl").read_text().count("\n") == 16


def test_copying_the_demo_again_keeps_the_edited_suite(tmp_path: Path, env: dict[str, str]) -> None:
    """`--copy-to` makes a folder to edit: a second copy into it is refused (exit 2) and
    leaves the edits alone; a path that is a file is an error naming it, not a traceback."""
    mine = tmp_path / "mine"
    assert CliRunner().invoke(app, ["demo", "--copy-to", str(mine)]).exit_code == 0
    suite = mine / "suite.yaml"
    suite.write_text(suite.read_text() + "# my edits\n")

    again = CliRunner().invoke(app, ["demo", "--copy-to", str(mine)])
    assert again.exit_code == 2, again.output
    assert "already holds suite.yaml and queries.jsonl" in again.output
    assert suite.read_text().endswith("# my edits\n")

    a_file = tmp_path / "suite.yaml"
    a_file.write_text("name: mine\n")
    onto_file = CliRunner().invoke(app, ["demo", "--copy-to", str(a_file)])
    assert onto_file.exit_code == 2, onto_file.output
    assert "is a file, not a folder" in onto_file.output
    assert a_file.read_text() == "name: mine\n"


def test_the_demo_serves_its_results_on_the_printed_address(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The README's main command: run, then open the printed address and sign in."""
    import re
    import subprocess
    import sys

    import httpx

    from tests.conftest import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "panopticon", "demo", "--port", str(port)],
        env={**env, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Dashboard:" in line:
                break
        found = re.search(r"Dashboard: (http://\S+/ui/)\s+\(sign in with the key (\S+);", line)
        assert found, "".join(lines)
        url, key = found.group(1), found.group(2)
        with httpx.Client(follow_redirects=True, timeout=30) as client:
            # the port listens before the address is printed: the request waits for the server
            form = client.get(url)  # the sign-in page, with its CSRF token
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf is not None, form.text
            page = client.post(
                url + "login", data={"key": key, "next": "/ui/", "csrf": csrf.group(1)}
            )
            assert page.status_code == 200 and 'data-testid="total-answers">48<' in page.text
            runs = client.get(url + "runs")
            assert "#1 demo" in runs.text and "completed" in runs.text
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def test_ctrl_c_stops_the_serving_demo_cleanly_with_exit_code_0(
    env: dict[str, str], tmp_path: Path
) -> None:
    """`make demo` then Ctrl-C: the dashboard shuts down, the demo says so and exits 0, so
    make reports no error ("make: *** [Makefile:..] Error 130" was shown)."""
    import re
    import signal
    import subprocess
    import sys

    import httpx

    from tests.conftest import free_port

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "panopticon",
            "demo",
            "--port",
            str(free_port()),
            "--mock-port",
            str(free_port()),
        ],
        env={**env, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Dashboard:" in line:
                break
        found = re.search(r"Dashboard: (http://\S+/ui/)", line)
        assert found, "".join(lines)
        # serving: the sign-in page answers (the request waits on the listening port)
        assert httpx.get(found.group(1), follow_redirects=True, timeout=30).status_code == 200
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=20)
    assert proc.returncode == 0, rest
    assert "dashboard stopped" in rest
    assert "Traceback" not in rest and "Aborted" not in rest


def test_a_busy_dashboard_port_is_refused_before_the_demo_runs(
    env: dict[str, str], engine: sa.Engine
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["demo", "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert f"cannot serve the dashboard on port {port}" in result.output
    assert "--no-serve" in result.output
    with engine.connect() as conn:  # nothing was run
        assert conn.scalar(sa.select(sa.func.count()).select_from(Run)) == 0


def test_a_second_demo_reuses_the_first_ones_answers_and_keeps_its_models_in_place(
    env: dict[str, str], engine: sa.Engine
) -> None:
    from panopticon.store.tables import Model
    from tests.conftest import free_port

    port = str(free_port())
    first = CliRunner().invoke(app, ["demo", "--no-serve", "--mock-port", port])
    assert first.exit_code == 0, first.output
    with engine.connect() as conn:
        before = conn.execute(sa.select(Model.c.name, Model.c.provider_id)).all()
    second = CliRunner().invoke(app, ["demo", "--no-serve", "--mock-port", port])
    assert second.exit_code == 0, second.output
    out = " ".join(second.output.split())
    assert "run 2 completed" in out and "48 from the cache" in out
    assert "the mock server answered 0 requests" in out
    with engine.connect() as conn:
        assert conn.execute(sa.select(Model.c.name, Model.c.provider_id)).all() == before
