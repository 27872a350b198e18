"""A suite run never changes a model an admin registered (the gateway and other runs use
it): a suite names it by id to use it, and an inline definition that differs is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from panopticon.api.app import create_app
from panopticon.cli import app
from panopticon.mockllm.server import MockServer
from panopticon.settings import Settings
from tests.conftest import write

BOOT = {"X-API-Key": "dev_api_key_for_testing"}
cli = CliRunner()


@pytest.fixture
def api(settings: Settings, env: dict[str, str]) -> Iterator[TestClient]:
    app_ = create_app(
        Settings(home=settings.home, database_url=settings.database_url, api_key=BOOT["X-API-Key"]),
        env={},
    )
    with TestClient(app_) as client:
        yield client


def register_sec_model(api: TestClient, mock: MockServer) -> dict[str, object]:
    cred = {"name": "sec-key", "secret": "sk-registered-0123456789"}
    assert api.post("/api/credentials", headers=BOOT, json=cred).status_code == 201
    body = {
        "id": "sec-model",
        "model": "mock-good",
        "base_url": mock.url,
        "credential": "sec-key",
        "price": {"input": 1, "output": 1},
    }
    r = api.post("/api/models", headers=BOOT, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def suite(path: Path, models: str) -> Path:
    return write(
        path,
        f"""
        name: reg
        models:
        {models}
        queries:
          - {{text: 'Question one?'}}
          - {{text: 'Question two?'}}
        metrics:
          - {{name: short, type: length, max: 2000}}
        """,
    )


def test_an_inline_definition_that_differs_from_a_registered_model_is_refused_and_changes_nothing(
    tmp_path: Path, api: TestClient, mock: MockServer
) -> None:
    before = register_sec_model(api, mock)
    path = suite(
        tmp_path / "s.yaml",
        '  - {id: sec-model, base_url: "http://127.0.0.1:9/v1", model: other}',
    )
    dry = cli.invoke(app, ["run", str(path), "--dry-run"])  # says it before any run
    assert dry.exit_code == 2, dry.output
    assert "model 'sec-model' is registered in this workspace" in " ".join(dry.output.split())
    result = cli.invoke(app, ["run", str(path), "--no-progress"])
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "model 'sec-model' is registered in this workspace" in out
    assert "base_url 'http://127.0.0.1:9/v1'" in out and "model 'other'" in out
    assert "credential none (registered: 'sec-key')" in out
    assert "rename the model in the suite" in out and "'- sec-model'" in out
    after = api.get("/api/models/sec-model", headers=BOOT).json()
    assert after == before  # the gateway still routes to the registered endpoint
    assert mock.stats.requests == 0


def test_a_suite_names_a_registered_model_by_id_to_use_it_as_registered(
    tmp_path: Path, api: TestClient, mock: MockServer
) -> None:
    before = register_sec_model(api, mock)
    path = suite(tmp_path / "s.yaml", "  - sec-model")
    dry = cli.invoke(app, ["run", str(path), "--dry-run"])
    assert dry.exit_code == 0 and "the suite is valid" in dry.output, dry.output
    result = cli.invoke(app, ["run", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert mock.stats.answered == 2
    assert api.get("/api/models/sec-model", headers=BOOT).json() == before
    # the same definition written out in full is the registered model: accepted as well
    same = suite(
        tmp_path / "same.yaml",
        f"  - {{id: sec-model, base_url: '{mock.url}', model: mock-good, credential: sec-key, "
        "price: {input: 1, output: 1}}",
    )
    result = cli.invoke(app, ["run", str(same), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert api.get("/api/models/sec-model", headers=BOOT).json() == before


def test_an_unregistered_model_id_is_a_clear_error(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    path = suite(tmp_path / "s.yaml", "  - nowhere")
    result = cli.invoke(app, ["run", str(path), "--no-progress"])
    assert result.exit_code == 2
    assert "no model 'nowhere' is registered in this workspace" in " ".join(result.output.split())
    assert "models[0]" in result.output  # the field as every other suite error writes it


def test_models_that_suites_defined_are_still_updated_by_suites(
    tmp_path: Path, api: TestClient, mock: MockServer
) -> None:
    first = suite(
        tmp_path / "a.yaml", f"  - {{id: mine, base_url: '{mock.url}', model: mock-good}}"
    )
    assert cli.invoke(app, ["run", str(first), "--no-progress"]).exit_code == 0
    second = suite(
        tmp_path / "b.yaml", f"  - {{id: mine, base_url: '{mock.url}', model: mock-weak}}"
    )
    result = cli.invoke(app, ["run", str(second), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert api.get("/api/models/mine", headers=BOOT).json()["model"] == "mock-weak"
