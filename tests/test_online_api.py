"""Online-evaluation rules through the API and the CLI (versioned, validated whole, kept in
their workspace), and budgets that concurrent workers share without passing them."""

from __future__ import annotations

import random
import re
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from panopticon.api.app import create_app
from panopticon.cli import app as cli_app
from panopticon.mockllm.server import MockServer
from panopticon.online.rules import parse_rule
from panopticon.services.database import workspace_id
from panopticon.services.online import Hold, OnlineBudgets
from panopticon.services.runs import store
from panopticon.settings import Settings
from tests.test_api import BOOT, key
from tests.test_api_judge import register

ADMIN = {"X-API-Key": BOOT}
RULE = {
    "name": "helpfulness",
    "metrics": [{"name": "helpful", "type": "rubric", "prompt": "Is it helpful?", "scale": [1, 5]}],
    "judge": "gpt-4",
    "filter": {"models": ["gpt-4o*"]},
    "sampling": {"rate": 0.1},
    "budgets": {"usd_per_day": 5},
}


@pytest.fixture
def api(settings: Settings, mock: MockServer) -> Iterator[TestClient]:
    app = create_app(Settings(home=settings.home, database_url=settings.database_url, api_key=BOOT))
    with TestClient(app) as client:
        register(client, mock, ADMIN)  # gpt-4o, claude-3-opus-20240229, gpt-4
        yield client


def test_a_rule_is_created_then_versioned_only_when_it_changes(api: TestClient) -> None:
    created = api.post("/api/online/rules", json=RULE, headers=ADMIN)
    assert created.status_code == 201, created.text
    first = created.json()["version"]
    again = api.post("/api/online/rules", json=RULE, headers=ADMIN)
    assert again.status_code == 200 and again.json()["version"] == first  # idempotent
    changed = api.post("/api/online/rules", json={**RULE, "sampling": {"rate": 0.5}}, headers=ADMIN)
    assert changed.status_code == 201 and changed.json()["version"] != first
    detail = api.get("/api/online/rules/helpfulness", headers=ADMIN).json()
    assert [v["version"] for v in detail["versions"]] == [changed.json()["version"], first]
    assert detail["spec"]["sampling"]["rate"] == 0.5
    paused = api.patch("/api/online/rules/helpfulness", json={"enabled": False}, headers=ADMIN)
    assert paused.json()["enabled"] is False and paused.json()["version"] not in (first,)
    assert [r["name"] for r in api.get("/api/online/rules", headers=ADMIN).json()] == [
        "helpfulness"
    ]


def test_a_bad_rule_is_refused_with_every_field_named(api: TestClient) -> None:
    bad = {
        "name": "Bad Name",
        "metrics": [{"name": "x", "type": "rubrik"}],
        "judge": "gpt-9",
        "sampling": {"rate": 2},
        "colour": "red",
    }
    r = api.post("/api/online/rules", json=bad, headers=ADMIN)
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"name", "metrics[0].type", "sampling.rate", "colour"} <= fields
    unknown_judge = api.post("/api/online/rules", json={**RULE, "judge": "gpt-9"}, headers=ADMIN)
    assert unknown_judge.status_code == 422
    assert unknown_judge.json()["error"]["field"] == "judge"
    assert "gpt-4" in unknown_judge.json()["error"]["hint"]  # says which models exist
    assert api.post("/api/online/rules", json=[1, 2], headers=ADMIN).status_code == 422


def test_rules_stay_in_their_workspace_and_roles_hold(api: TestClient, settings: Settings) -> None:
    assert api.post("/api/online/rules", json=RULE, headers=ADMIN).status_code == 201
    other = key(settings, "other-team", "admin")
    assert api.get("/api/online/rules", headers=other).json() == []
    assert api.get("/api/online/rules/helpfulness", headers=other).status_code == 404
    assert api.delete("/api/online/rules/helpfulness", headers=other).status_code == 404
    viewer = key(settings, "default", "viewer")
    assert api.post("/api/online/rules", json=RULE, headers=viewer).status_code == 403
    member = key(settings, "default", "member")
    assert api.delete("/api/online/rules/helpfulness", headers=member).status_code == 403
    assert api.delete("/api/online/rules/helpfulness", headers=ADMIN).status_code == 204
    assert api.get("/api/online/rules/helpfulness", headers=ADMIN).status_code == 404


def test_the_workspace_budget_is_set_by_an_admin_and_shown_with_its_windows(
    api: TestClient, settings: Settings
) -> None:
    put = api.put("/api/online/budget", json={"usd_per_day": 2.5}, headers=ADMIN)
    assert put.status_code == 200 and put.json()["usd_per_day"] == 2.5
    member = key(settings, "default", "member")
    assert (
        api.put("/api/online/budget", json={"usd_per_day": 99}, headers=member).status_code == 403
    )
    assert api.put("/api/online/budget", json={"usd_per_day": -1}, headers=ADMIN).status_code == 422


def test_the_cli_applies_rule_files_and_reports_every_mistake_at_once(
    env: dict[str, str], tmp_path: Path, api: TestClient
) -> None:
    cli = CliRunner()
    good = tmp_path / "rule.yaml"
    good.write_text(
        textwrap.dedent("""
        name: safety
        metrics:
          - {name: pii, type: pii}
          - {name: injection, type: prompt_injection}
        sampling: {rate: 0.25, min_per_hour: 10, segment_by: model}
        budgets: {usd_per_day: 1}
        """).lstrip(),
        encoding="utf-8",
    )
    out = cli.invoke(cli_app, ["online", "apply", str(good)])
    assert out.exit_code == 0, out.output
    assert "rule 'safety' saved as version" in out.output
    assert "unchanged" in cli.invoke(cli_app, ["online", "apply", str(good)]).output
    listed = cli.invoke(cli_app, ["online", "list"]).output
    assert "safety" in listed and "25%" in listed
    assert "disabled" in cli.invoke(cli_app, ["online", "disable", "safety"]).output
    shown = cli.invoke(cli_app, ["online", "show", "safety"]).output
    assert "enabled: false" in shown and shown.count("version ") == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmetrics:\n  - {name: a, type: nope}\nsampling: {rate: 3}\n")
    failed = cli.invoke(cli_app, ["online", "apply", str(bad)])
    assert failed.exit_code != 0
    assert f"{bad}:3" in failed.output and f"{bad}:4" in failed.output  # both lines at once


@pytest.mark.parametrize("workers", [4])
def test_concurrent_workers_never_spend_past_a_budget(settings: Settings, workers: int) -> None:
    """Four workers reserve, 'call' and settle against a $1 rule budget at once, each call
    estimated at 3 to 7 cents and costing up to 20% less: the total spent never passes $1,
    and ends within one call's cost of it."""
    rule, _ = parse_rule(
        {"name": "r", "metrics": [{"name": "pii", "type": "pii"}], "budgets": {"usd_per_day": 1}}
    )
    with store(settings) as engine:
        ws = workspace_id(engine, "default")
        refused = 0
        lock = threading.Lock()

        def worker(seed: int) -> None:
            nonlocal refused
            rng = random.Random(seed)
            budgets = OnlineBudgets(engine, ws)
            for _ in range(30):
                estimate = rng.uniform(0.03, 0.07)
                hold = budgets.reserve(rule, estimate)
                if not isinstance(hold, Hold):
                    with lock:
                        refused += 1
                    continue
                budgets.settle(hold, estimate * rng.uniform(0.8, 1.0))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        (window,) = OnlineBudgets(engine, ws).state()
    assert window.spent_usd <= 1.0 + 1e-9
    assert window.spent_usd > 1.0 - 0.07
    assert window.reserved_usd == pytest.approx(0.0, abs=1e-9)
    assert refused > 0


# -- the dashboard's page ------------------------------------------------------------------


def _sign_in(client: TestClient, key: str) -> None:
    form = client.get("/ui/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    data = {"key": key, **({"csrf": token.group(1)} if token else {})}
    assert client.post("/ui/login", data=data).status_code == 200  # redirected to a page


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_the_dashboard_applies_pauses_and_shows_rules(api: TestClient, settings: Settings) -> None:
    _sign_in(api, BOOT)
    page = api.get("/ui/online")
    assert page.status_code == 200 and "No rules yet" in page.text
    yaml_text = "name: safety\nmetrics:\n  - {name: pii, type: pii}\nsampling: {rate: 0.5}\n"
    applied = api.post(
        "/ui/online", data={"csrf": _csrf(page.text), "action": "apply", "rule": yaml_text}
    )
    assert applied.status_code == 200 and "Saved as version" in applied.text
    assert "rate: 0.5" in applied.text
    listed = api.get("/ui/online").text
    assert "safety" in listed and "50%" in listed
    paused = api.post(
        "/ui/online", data={"csrf": _csrf(listed), "action": "disable", "name": "safety"}
    )
    assert paused.status_code == 200 and ">off<" in paused.text
    versions = api.get("/ui/online/safety").text
    assert versions.count("<code>") >= 3  # the version in the heading and two in the table
    bad = api.post(
        "/ui/online",
        data={"csrf": _csrf(listed), "action": "apply", "rule": "name: x\nmetrics: [{type: nope}]"},
    )
    assert bad.status_code == 422 and "unknown metric type" in bad.text
    assert "metrics: [{type: nope}]" in bad.text  # what was typed is kept
    # several problems: all of them listed, with their lines, as the CLI and API give them
    several = api.post(
        "/ui/online",
        data={
            "csrf": _csrf(listed),
            "action": "apply",
            "rule": "name: x\njudge: nobody\nmetrics: [{type: nope}]\nsampling: {rate: 2}",
        },
    )
    assert several.status_code == 422 and 'data-testid="form-issues"' in several.text
    for problem in ("unknown metric type", "no model &#39;nobody&#39;", "sampling.rate"):
        assert problem in several.text, problem
    forged = api.post("/ui/online", data={"csrf": "forged", "action": "delete", "name": "safety"})
    assert forged.status_code == 403 and "safety" in api.get("/ui/online").text
    budget = api.post(
        "/ui/online", data={"csrf": _csrf(listed), "action": "budget", "usd_per_day": "3"}
    )
    assert "$3.0 a day" in budget.text
