"""Messages name a query as a person can find it: by its id in the dataset and the file and
line it was read from, else by the start of its text; never by its database id (issue 10)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from panopticon.api.app import create_app
from panopticon.cli import app
from panopticon.mockllm.server import MockServer
from panopticon.settings import Settings
from tests.conftest import free_port, write
from tests.test_api_runs import KEY

cli = CliRunner()

# a database id as the old messages gave it: "query 1112", "(query 3)"
DATABASE_ID = re.compile(r"\bquery \d+\b")


@pytest.fixture
def failing_run(
    tmp_path: Path, env: dict[str, str], mock: MockServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A run whose judge never gives a valid score and whose second model cannot be
    reached, over two queries from a file (one with an id, one without) and one inline."""
    monkeypatch.chdir(tmp_path)
    # other content first, so that database ids and lines differ
    write(
        tmp_path / "data" / "queries.jsonl",
        '{"id": "refund-7", "text": "How do I get a refund?"}\n'
        '{"text": "Why is the sky blue on a clear day, and not violet as the physics says?"}\n',
    )
    closed = free_port()
    suite = write(
        tmp_path / "suite.yaml",
        f"""
        name: names
        models:
          - {{id: good, model: mock-good, base_url: '{mock.url}', max_retries: 0}}
          - {{id: gone, model: mock-good, base_url: 'http://127.0.0.1:{closed}/v1',
             max_retries: 0}}
        judge: {{id: judge, model: mock-judge, base_url: '{mock.url}', max_retries: 0}}
        queries:
          - {{text: 'An inline question?'}}
          - {{file: data/queries.jsonl}}
        metrics:
          - {{name: quality, type: rubric, prompt: 'Is it good?', scale: [1, 10]}}
        """,
    )
    mock.config.judge_nonsense_rate = 1.0
    result = cli.invoke(app, ["run", str(suite), "--no-progress", "--junit", "junit.xml"])
    assert result.exit_code == 1, result.output
    return suite


def test_show_errors_names_queries_by_dataset_id_file_and_line(failing_run: Path) -> None:
    shown = cli.invoke(app, ["show", "1", "--errors"])
    out = shown.output
    assert "query id refund-7 (data/queries.jsonl:1)" in out
    assert 'query at data/queries.jsonl:2 "Why is the sky blue on a clear day, and not' in out
    assert 'query at suite.yaml:8 "An inline question?"' in out
    assert "3 failed answers" in out and "3 score errors" in out
    assert not DATABASE_ID.search(out), out


def test_every_other_output_names_them_the_same_way(failing_run: Path) -> None:
    shown = json.loads(cli.invoke(app, ["show", "1", "--format", "json"]).output)
    named = {row["query"] for row in shown["failures"]}
    assert "query id refund-7 (data/queries.jsonl:1)" in named
    assert not any(DATABASE_ID.search(n) for n in named)
    exported = [json.loads(line) for line in cli.invoke(app, ["export", "1"]).output.splitlines()]
    places = {(r["query_file"], r["query_line"]) for r in exported}
    assert (str(failing_run.parent / "data" / "queries.jsonl"), 1) in places
    cases = [c.get("name") for c in ET.parse("junit.xml").getroot().iter("testcase")]
    assert "refund-7 (data/queries.jsonl:1): How do I get a refund?" in cases
    assert "suite.yaml:8: An inline question?" in cases
    answers = cli.invoke(app, ["show", "1", "--answers", "--query", "data/queries.jsonl:2"])
    assert answers.exit_code == 0, answers.output
    assert answers.output.count("=" * 78) == 1
    assert 'query at data/queries.jsonl:2 "Why is the sky' in answers.output
    assert not DATABASE_ID.search(answers.output)


def test_the_api_gives_each_query_its_place_and_name(failing_run: Path, settings: Settings) -> None:
    web = Settings(home=settings.home, database_url=settings.database_url, api_key=KEY["X-API-Key"])
    with TestClient(create_app(web, env={})) as api:
        data = api.get("/api/runs/1/answers", headers=KEY, params={"query": "refund-7"}).json()
        assert data[0]["line"] == 1 and data[0]["file"].endswith("data/queries.jsonl")
        assert data[0]["label"] == "query id refund-7 (data/queries.jsonl:1)"
