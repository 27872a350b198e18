"""`panopticon report`: a self-contained HTML report that renders in a real browser, and
Markdown, CSV and JSON with the same numbers."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from functools import reduce
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from panopticon.cli import app
from panopticon.mockllm.server import MockServer
from tests.conftest import write

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"
CHARTS = [
    "mean-by-model",
    "radar",
    "theme-heatmap",
    "latency",
    "cost-quality",
    "pass-rate",
    "win-rate",
    "histograms",
]


def demo_like_run(tmp_path: Path, mock: MockServer) -> Path:
    mock.config.quality.update({"mock-a": 0.85, "mock-b": 0.6, "mock-c": 0.4})
    mock.config.model_latency_ms.update({"mock-a": 30, "mock-b": 15, "mock-c": 5})
    lines = "\n".join(
        json.dumps({"text": f"Question {i} about {t}?", "theme": t, "expected": f"A{i}"})
        for i, t in enumerate(["billing", "tech", "writing"] * 5)
    )
    write(tmp_path / "q.jsonl", lines + "\n")
    models = "\n".join(
        f"  - {{id: {m}, model: mock-{m}, base_url: '{mock.url}', "
        f"price: {{input: {p}, output: {p * 4}}}}}"
        for m, p in (("a", 3.0), ("b", 0.5), ("c", 0.1))
    )
    suite = write(
        tmp_path / "s.yaml",
        f"""
name: report-test
models:
{models}
judge: {{id: judge, model: mock-judge, base_url: '{mock.url}', price: {{input: 0, output: 0}}}}
queries: [{{file: q.jsonl}}]
metrics:
  - {{name: quality, type: rubric, prompt: 'Good?', threshold: 7}}
  - {{name: correct, type: reference}}
  - {{name: fast, type: latency, max_ms: 20}}
""",
    )
    result = CliRunner().invoke(app, ["run", str(suite), "--no-progress"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def at(data: Any, key: str) -> Any:
    return reduce(lambda d, k: d[int(k)] if isinstance(d, list) else d[k], key.split("."), data)


def test_every_format_is_written_with_the_same_numbers(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    out = demo_like_run(tmp_path, mock)
    data = json.loads((out / "run-1.json").read_text())
    assert data["models"] == ["a", "b", "c"] and data["themes"] == ["billing", "tech", "writing"]
    rows = list(csv.DictReader(io.StringIO((out / "run-1.csv").read_text())))
    quality_a = next(
        r for r in rows if r["model"] == "a" and r["metric"] == "quality" and not r["theme"]
    )
    summary_a = next(
        m for m in data["summary"]["metrics"] if m["model"] == "a" and m["metric"] == "quality"
    )
    assert float(quality_a["mean"]) == pytest.approx(summary_a["mean"])
    md = (out / "run-1.md").read_text()
    assert "## Cost against quality" in md and f"{summary_a['mean']:.3f}" in md
    # a is best, c cheapest: both on the Pareto front; the report says so
    front = {p["model"]: p["pareto"] for p in data["cost_quality"]}
    assert front["a"] and front["c"]
    h2h = {(h["a"], h["b"]): h["win_rate"] for h in data["head_to_head"]}
    assert h2h[("a", "c")] > 0.5 > h2h[("c", "a")]
    # intervals are clustered by query and stay within the scale (rubric 1-10)
    assert summary_a["clusters"] == 15
    assert 1 <= summary_a["mean_low"] < summary_a["mean_high"] <= 10
    # the theme heatmap is quality: the latency check (c is fastest) is left out
    by_theme = data["summary"]["by_theme"]
    for cell in data["theme_heatmap"]:
        quality = [
            m["mean_normalized"]
            for m in by_theme
            if (m["model"], m["theme"]) == (cell["model"], cell["theme"]) and m["metric"] != "fast"
        ]
        assert cell["value"] == pytest.approx(sum(quality) / len(quality))


@pytest.mark.skipif(
    not shutil.which(CHROMIUM) and not os.environ.get("PANOPTICON_REQUIRE_BROWSER"),
    reason="Chromium is not installed (.ci/run installs it)",
)
def test_the_html_report_renders_offline_in_chromium_with_every_chart(
    tmp_path: Path, env: dict[str, str], mock: MockServer
) -> None:
    from playwright.sync_api import sync_playwright

    out = demo_like_run(tmp_path, mock)
    data = json.loads((out / "run-1.json").read_text())
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((out / "run-1.html").as_uri())
        page.screenshot(path=str(ARTIFACTS / "report-top.png"))
        assert errors == []
        assert all(url.startswith("file://") for url in requests), requests
        for chart in CHARTS:
            figure = page.locator(f'figure[data-chart="{chart}"] svg')
            assert figure.count() == 1, chart
            box = figure.bounding_box()
            assert box and box["width"] > 100 and box["height"] > 50, chart
            marks = figure.locator("rect, circle, polygon, path").count()
            assert marks > 0, f"{chart} draws nothing"
            page.locator(f"#{chart}").screenshot(path=str(ARTIFACTS / f"report-{chart}.png"))
        embedded = json.loads(page.locator("#report-data").text_content() or "")
        assert embedded == data
        cells = page.locator("td[data-key]")
        checked = 0
        for i in range(cells.count()):
            cell = cells.nth(i)
            key, value = cell.get_attribute("data-key"), cell.get_attribute("data-value")
            assert key is not None and value is not None
            assert float(value) == pytest.approx(at(data, key)), key
            checked += 1
        assert checked > 50
        browser.close()
