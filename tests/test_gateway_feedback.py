"""A new user's path through the gateway's production features, as the README walks it:
calls through the official openai SDK, the trace id from `x-panopticon-trace-id` given
user feedback with `POST /api/scores` (the README's own body: a label with a value),
`panopticon online scores|heatmap` and `compare --prompts` saying what that feedback is,
and `panopticon online apply` refusing a rule whose budget cannot bound its judge. Real
HTTP to the gateway and the bundled mock server, on the SQLite file (or PostgreSQL) of the
test run."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from panopticon.cli import app as cli_app
from panopticon.mockllm.server import MockServer
from panopticon.services.registry import ModelRegistry
from panopticon.settings import Settings
from tests.conftest import write
from tests.gateway_harness import GatewayServer, wait_for
from tests.test_gateway import ensure_workspace_id, new_key, register

openai = pytest.importorskip("openai")

BOOT = "dev_api_key_for_testing"
ADMIN = {"X-API-Key": BOOT}
cli = CliRunner()


@pytest.fixture
def gw_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_key": BOOT})


@pytest.fixture
def served(
    gw_settings: Settings, engine: sa.Engine, mock: MockServer, job_worker: None
) -> Iterator[Any]:
    """The default `serve` (api, ingest and gateway on one port) with the README's models
    registered on the mock server; yields (server, gateway key)."""
    ws = ensure_workspace_id(engine, "default")
    register(engine, gw_settings, mock, ws)  # gpt-mock (priced), served as mock-good
    ModelRegistry(engine, ws, gw_settings).upsert(
        {"id": "free-mock", "provider": "openai", "model": "mock-good", "base_url": mock.url}
    )
    key = new_key(engine)
    server = GatewayServer(gw_settings, {}, {"api", "ingest", "gateway"}).start()
    try:
        yield server, key
    finally:
        server.stop()
        server.close()


def call(server: GatewayServer, key: str, text: str) -> str:
    """One chat completion through the openai SDK; the trace id the gateway answers with."""
    with contextlib.closing(
        openai.OpenAI(base_url=server.url, api_key=key, max_retries=0)
    ) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-mock", messages=[{"role": "user", "content": text}], user="user-7"
        )
        raw.parse()
        return str(raw.headers["x-panopticon-trace-id"])


def feedback(server: GatewayServer, body: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(server.root + "/api/scores", json=body, headers=ADMIN, timeout=30)
    assert r.status_code == 201, r.text
    return dict(r.json())


def production_rows(metric: str | None = None) -> list[dict[str, Any]]:
    args = ["online", "scores", "--json"] + (["--metric", metric] if metric else [])
    out = cli.invoke(cli_app, args)
    assert out.exit_code == 0, out.output
    return list(orjson.loads(out.output)["scores"])


def test_user_feedback_with_a_value_on_no_scale_is_said_to_be_a_value_not_a_label_without_one(
    served: Any, env: dict[str, str], mock: MockServer, tmp_path: Path
) -> None:
    """The README's feedback body (`"label": "thumbs_up", "value": 1` on `user_feedback`,
    a name with no metric) on a gateway trace: `online scores` put it under the served
    model and said "2 labels without a value" although both had values; the heatmap cell
    said "(2 labels)" and `compare --prompts` "(too few traces), n=0 scores of 0 traces"."""
    server, key = served
    up = call(server, key, "Where is my order?")
    down = call(server, key, "Where is my refund?")
    bare = call(server, key, "Is it raining?")
    server.trace(up), server.trace(down), server.trace(bare)  # the gateway logged them
    for trace_id, label, value in ((up, "thumbs_up", 1), (down, "thumbs_down", 0)):
        answer = feedback(
            server,
            {
                "trace_id": trace_id,
                "name": "user_feedback",
                "label": label,
                "value": value,
                "comment": "helpful",
                "source": "human",
            },
        )
        assert answer["normalized"] is None and "no scale" in answer["note"]
    feedback(
        server, {"trace_id": bare, "name": "user_feedback", "label": "meh", "source": "human"}
    )  # a label alone: without a value

    (row,) = production_rows("user_feedback")
    assert (row["model"], row["source"], row["verdict"]) == ("mock-good", "human", "no values")
    assert (row["n"], row["unscored"]) == (0, 3)
    assert row["labels"] == {"": 2, "meh": 1}
    assert row["message"] == (
        "no mean: 1 label without a value or pass/fail: meh 1; "
        "2 values on no 0..1 scale (the metric has none)"
    )
    heat = cli.invoke(cli_app, ["online", "heatmap", "--metric", "user_feedback"])
    assert heat.exit_code == 0, heat.output
    assert "no values (3 unscored)" in heat.output and "labels)" not in heat.output

    # beside a run of the served model: unpaired, and saying why there is no mean
    suite = write(
        tmp_path / "pv.yaml",
        f"""
        name: prompt-variants
        models:
          - {{id: mock-good, base_url: "{mock.url}", model: mock-good}}
        prompts:
          - {{id: terse, system: "Answer in one sentence."}}
          - {{id: chatty, system: "Explain step by step.", template: "Question: {{text}}"}}
        queries:
          - text: Why is the sky blue?
        metrics:
          - {{name: short, type: length, max: 600}}
        """,
    )
    ran = cli.invoke(cli_app, ["run", str(suite), "--no-progress"])
    assert ran.exit_code == 0, ran.output
    out = cli.invoke(cli_app, ["compare", "last", "--prompts", "terse,chatty"])
    assert out.exit_code == 0, out.output
    assert (
        "production, unpaired: mock-good (human) user_feedback: no mean: 1 label without a "
        "value or pass/fail: meh 1; 2 values on no 0..1 scale (the metric has none), "
        "n=0 scores" in out.output
    )
    assert "too few traces" not in out.output


RULE = """
name: helpfulness
metrics:
  - {name: helpful, type: rubric, prompt: 'Does the answer solve the problem?', scale: [1, 5]}
judge: JUDGE
filter:
  span_kinds: [llm]
BUDGETS"""


def test_a_rule_whose_budget_cannot_bound_its_unpriced_judge_is_refused_before_it_is_stored(
    served: Any, env: dict[str, str], tmp_path: Path
) -> None:
    """The README says a rule with a budget refuses a judge with no price; `online apply`
    stored it, and every span then ended `over_budget` with no call made."""
    server, key = served

    def rule(judge: str, budgets: str = "budgets: {usd_per_day: 5}\n") -> Path:
        text = RULE.replace("JUDGE", judge).replace("BUDGETS", budgets)
        return write(tmp_path / "rules" / "helpfulness.yaml", text)

    for args in (["--check"], []):
        out = cli.invoke(cli_app, ["online", "apply", str(rule("free-mock")), *args])
        assert out.exit_code == 2, out.output
        assert "helpfulness.yaml:4: judge: the judge 'free-mock' has no price" in out.output
        assert "give 'free-mock' a price" in out.output
    listed = httpx.get(server.root + "/api/online/rules", headers=ADMIN, timeout=30)
    assert listed.status_code == 200 and listed.json() == [], listed.text
    # the API refuses it the same way, naming the field
    spec = {
        "name": "helpfulness",
        "judge": "free-mock",
        "budgets": {"usd_per_month": 9},
        "metrics": [{"name": "helpful", "type": "rubric", "prompt": "Good?"}],
    }
    r = httpx.post(server.root + "/api/online/rules", json=spec, headers=ADMIN, timeout=30)
    assert r.status_code == 422, r.text
    assert "'free-mock' has no price" in r.text and "judge" in r.text

    # a priced judge, or no budget at all, is stored and judges the gateway's calls
    out = cli.invoke(cli_app, ["online", "apply", str(rule("gpt-mock"))])
    assert out.exit_code == 0, out.output
    trace_id = call(server, key, "How do I reset my password?")

    def judged() -> bool:
        why = cli.invoke(cli_app, ["online", "why", trace_id])
        return ": evaluated" in why.output

    wait_for(judged, what="the rule to judge the gateway's call")
    out = cli.invoke(cli_app, ["online", "apply", str(rule("free-mock", budgets=""))])
    assert out.exit_code == 0, out.output

    # the workspace's own budget holds every rule's calls: set while an enabled rule
    # judges with an unpriced model, it is refused, naming the rule; paused, it is taken
    out = cli.invoke(cli_app, ["online", "budget", "--per-day", "20"])
    assert out.exit_code == 2, out.output
    assert "'helpfulness' (judge 'free-mock')" in out.output and "no price" in out.output
    r = httpx.put(
        server.root + "/api/online/budget", json={"usd_per_day": 20}, headers=ADMIN, timeout=30
    )
    assert r.status_code == 422 and "usd_per_day" in r.text, r.text
    assert cli.invoke(cli_app, ["online", "disable", "helpfulness"]).exit_code == 0
    out = cli.invoke(cli_app, ["online", "budget", "--per-day", "20"])
    assert out.exit_code == 0, out.output
    # and a rule judged by it cannot be saved under that budget
    out = cli.invoke(cli_app, ["online", "apply", str(rule("free-mock", budgets="")), "--check"])
    assert out.exit_code == 2, out.output
    assert "the workspace's budget" in out.output


def readme_model_body(mock: MockServer) -> dict[str, Any]:
    """The model the README's gateway section registers (its `curl ... /api/models -d`),
    pointed at this test's mock server."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### The gateway: log every call") :]
    found = re.search(r"/api/models .*?-d '(\{.*?\})'", section, re.S)
    assert found, "the gateway section registers a model"
    body = dict(orjson.loads(found.group(1)))
    assert body["base_url"] == "http://127.0.0.1:8765/v1"  # the mock's documented port
    return {**body, "base_url": mock.url}


def test_the_readmes_gateway_walkthrough_registers_a_model_on_the_mock_that_the_sdk_calls(
    gw_settings: Settings, engine: sa.Engine, mock: MockServer
) -> None:
    """The README's gateway section said models are registered (POST /api/models) but
    showed none; a new user on the mock server had to find the body elsewhere. Its example
    now registers one: it is accepted, the openai SDK calls it, and the trace names the
    model asked for and the one served, with the price given."""
    ensure_workspace_id(engine, "default")
    key = new_key(engine)
    server = GatewayServer(gw_settings, {}, {"api", "ingest", "gateway"}).start()
    try:
        body = readme_model_body(mock)
        r = httpx.post(server.root + "/api/models", json=body, headers=ADMIN, timeout=30)
        assert r.status_code == 201, r.text
        with contextlib.closing(
            openai.OpenAI(base_url=server.url, api_key=key, max_retries=0)
        ) as client:
            raw = client.chat.completions.with_raw_response.create(
                model=body["id"], messages=[{"role": "user", "content": "Where is my order?"}]
            )
            usage = raw.parse().usage
        (span,) = server.trace(raw.headers["x-panopticon-trace-id"])["spans"]
        assert (span["model_requested"], span["model_served"]) == (body["id"], body["model"])
        price = body["price"]
        expected = (
            usage.prompt_tokens * price["input"] + usage.completion_tokens * price["output"]
        ) / 1e6
        assert span["cost_usd"] == pytest.approx(expected)
    finally:
        server.stop()
        server.close()


@pytest.mark.parametrize(
    ("role", "split"),
    [("gateway", None), ("ingest,gateway", "panopticon serve --role ingest --workers 2, and ")],
)
def test_workers_with_the_gateway_role_are_refused_with_a_command_that_can_run(
    env: dict[str, str], role: str, split: str | None
) -> None:
    """The hint was `panopticon serve --role gateway --port 8001 (one per core)`: one port
    for every replica (the second is refused), and nothing about the other roles asked."""
    out = cli.invoke(cli_app, ["serve", "--role", role, "--workers", "2", "--port", "8001"])
    assert out.exit_code == 2, out.output
    text = " ".join(out.output.split())
    assert "--workers is for the api and ingest roles" in text
    wanted = "one `panopticon serve --role gateway --port PORT` per core, each on a port of its own"
    assert (split or "fix: ") + wanted in text
    assert "8001 (one per core)" not in text
