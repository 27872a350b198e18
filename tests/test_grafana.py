"""The Grafana dashboards' SQL, run against a real PostgreSQL holding the demo's run.

Grafana's macros and variables are expanded as Grafana expands them for PostgreSQL; every
panel and variable query must run and return the rows the run implies, and the numbers must
equal what Panopticon itself computes.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.services import dashboard
from panopticon.services.runs import read_totals

pytestmark = pytest.mark.postgres_only

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "grafana"
DASHBOARDS = sorted((DEPLOY / "dashboards").glob("*.json"))


def expand(sql: str, values: dict[str, list[str]]) -> str:
    """Grafana's PostgreSQL macros, and multi-value variables as quoted lists."""
    start = datetime.now(UTC) - timedelta(days=30)
    end = datetime.now(UTC) + timedelta(hours=1)
    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m.group(1)} BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'",
        sql,
    )
    sql = re.sub(
        r"\$__timeGroupAlias\(([^,]+),\s*1d\)",
        lambda m: f'floor(extract(epoch from {m.group(1)})/86400)*86400 AS "time"',
        sql,
    )
    for name, vals in sorted(values.items(), key=lambda kv: -len(kv[0])):
        quoted = ",".join("'" + v.replace("'", "''") + "'" for v in vals)
        sql = sql.replace(f"'${name}'", quoted).replace(f"${name}", quoted)
    assert "$" not in sql, sql
    return sql


def rows(engine: sa.Engine, sql: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(sql.replace(":", r"\:")))]


@pytest.fixture
def demo(env: dict[str, str], engine: sa.Engine) -> sa.Engine:
    result = CliRunner().invoke(app, ["demo", "--no-serve"])
    assert result.exit_code == 0, result.output
    return engine


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((DEPLOY / "dashboards" / f"{name}.json").read_text()))


def panel_rows(engine: sa.Engine, board: dict[str, Any], values: dict[str, list[str]]) -> Any:
    out = {}
    for p in board["panels"]:
        (target,) = p["targets"]
        out[p["title"]] = rows(engine, expand(target["rawSql"], values))
    return out


def variable_values(engine: sa.Engine, board: dict[str, Any]) -> dict[str, list[str]]:
    """Each variable's options, as Grafana would list them ('All' selects every one)."""
    values: dict[str, list[str]] = {}
    for v in board["templating"]["list"]:
        found = rows(engine, expand(v["query"], values))
        assert found, f"variable {v['name']} lists nothing"
        values[v["name"]] = [
            str(r["__value"] if "__value" in r else next(iter(r.values()))) for r in found
        ]
        if v["name"] == "workspace":
            values["workspace"] = ["default"]
    return values


def test_provisioning_names_the_datasource_every_panel_uses() -> None:
    ds = yaml.safe_load((DEPLOY / "provisioning/datasources/panopticon.yaml").read_text())
    uid = ds["datasources"][0]["uid"]
    assert [p.stem for p in DASHBOARDS] == [
        "detailed-results",
        "model-comparison",
        "summary",
        "theme-analysis",
    ]
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["panels"], path
        for p in board["panels"]:
            assert p["datasource"]["uid"] == uid and p["targets"][0]["rawSql"].strip()
        for v in board["templating"]["list"]:
            assert v["datasource"]["uid"] == uid


def test_every_panel_returns_the_runs_numbers(demo: sa.Engine) -> None:
    engine = demo
    totals = read_totals(engine, 1, 48)

    board = load("summary")
    got = panel_rows(engine, board, variable_values(engine, board))
    assert got["Runs"] == [{"runs": 1}]
    assert got["Answers"] == [{"answers": 48, "failed": 0}]
    assert got["Failed answers"] == [{"failed": 0}]
    tokens = got["Tokens"][0]
    with engine.connect() as conn:
        answer_tokens = conn.execute(
            sa.text("SELECT sum(input_tokens), sum(output_tokens) FROM result")
        ).one()
    assert (tokens["input tokens"], tokens["output tokens"]) == tuple(answer_tokens)
    assert float(got["Cost (USD, answers and judges)"][0]["cost_usd"]) == pytest.approx(
        totals.cost_usd
    )
    assert [r["runs"] for r in got["Runs per day"]] == [1]
    per_day = {
        r["metric"]: r["value"] for r in got["Mean normalised quality score by model, per day"]
    }
    overview = {m.model: m.mean for m in dashboard.overview(engine, 1).models}
    assert per_day == pytest.approx(overview)  # one day: the day's mean is the overall mean
    assert [r["status"] for r in got["Recent runs"]] == ["completed"]

    board = load("model-comparison")
    got = panel_rows(engine, board, variable_values(engine, board))
    ours = dashboard.model_metrics(engine, 1, 1)
    bars = {(r["model"], r["metric"]): float(r["mean"]) for r in got[board["panels"][0]["title"]]}
    assert len(bars) == 3 * 4
    assert bars == pytest.approx({k: c.mean for k, c in ours.cells.items()})
    radar = got["Radar: every metric at once"]
    assert len(radar) == 12
    table = {
        (r["model"], r["metric"]): r for r in got["Means with 95% intervals over per-query means"]
    }
    for key, cell in ours.cells.items():
        assert float(table[key]["mean"]) == pytest.approx(cell.mean, abs=1e-4)
        assert table[key]["n"] == cell.n == 16
        assert float(table[key]["low"]) <= cell.mean <= float(table[key]["high"])
    assert {r["model"]: r["answers"] for r in got["Cost and latency by model"]} == {
        "balanced": 16,
        "frontier": 16,
        "tiny": 16,
    }

    board = load("theme-analysis")
    got = panel_rows(engine, board, variable_values(engine, board))
    heat = dashboard.heatmap(engine, 1, 1, None)
    cells = {(r["model"], r["theme"]): float(r["mean"]) for r in got["Heatmap: model x theme"]}
    assert cells == pytest.approx({k: c.mean for k, c in heat.cells.items()}, abs=1e-3)
    assert len(got["Scores per model and theme"]) == len(heat.cells)

    board = load("detailed-results")
    got = panel_rows(engine, board, variable_values(engine, board))
    results = got["Results"]
    assert len(results) == 48 * 4  # every score of the run
    assert {r["model"] for r in results} == {"balanced", "frontier", "tiny"}
    assert all(r["query"] and r["response"] for r in results)
    # a narrower selection narrows the rows
    values = variable_values(engine, board)
    values["model"] = ["tiny"]
    values["metric"] = ["helpfulness"]
    narrow = panel_rows(engine, board, values)["Results"]
    assert len(narrow) == 16 and {(r["model"], r["metric"]) for r in narrow} == {
        ("tiny", "helpfulness")
    }
