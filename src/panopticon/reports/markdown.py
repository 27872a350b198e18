"""The Markdown report: the same tables as the HTML, without the charts."""

from __future__ import annotations

import csv
import io
from typing import Any

from panopticon.reports.html import sections

__all__ = ["render_csv", "render_markdown"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(data: dict[str, Any]) -> str:
    run = data["run"]
    lines = [
        f"# Run {run['id']}: {run['name']}",
        "",
        f"Status {run['status']}, created {run['created_at']}; models: "
        f"{', '.join(data['models'])}; metrics: {', '.join(data['metrics'])}.",
        "",
    ]
    for chart in sections(data):
        lines += [f"## {chart.title}", "", chart.caption, ""]
        if not chart.table.rows:
            lines += [chart.empty, ""]
            continue
        lines.append("| " + " | ".join(chart.table.header) + " |")
        lines.append("|" + "---|" * len(chart.table.header))
        for row in chart.table.rows:
            lines.append("| " + " | ".join(_cell(c.text) for c in row) + " |")
        lines.append("")
    return "\n".join(lines)


def render_csv(data: dict[str, Any]) -> str:
    """One row per model x metric (and per theme), with intervals and counts."""
    fields = [
        "model",
        "metric",
        "theme",
        "n",
        "clusters",
        "errors",
        "mean",
        "mean_low",
        "mean_high",
        "mean_normalized",
        "pass_rate",
        "pass_low",
        "pass_high",
        "passed",
        "with_threshold",
        "repeat_sd",
        "judge_tokens",
        "judge_cost_usd",
    ]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for m in data["summary"]["metrics"] + data["summary"]["by_theme"]:
        writer.writerow(m)
    return buf.getvalue()
