"""The self-contained HTML report: every chart inline, every number in a table under it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from panopticon.reports import charts

__all__ = ["render_html", "sections"]


@dataclass
class Cell:
    text: str
    key: str | None = None  # where this number is in the report JSON (for checks)
    value: float | None = None


@dataclass
class Table:
    header: list[str]
    rows: list[list[Cell]] = field(default_factory=list)


@dataclass
class Chart:
    id: str
    title: str
    caption: str
    svg: str
    table: Table
    empty: str = ""


def _num(v: float | None, key: str, fmt: str = "{:.3f}") -> Cell:
    return Cell("-" if v is None else fmt.format(v), key if v is not None else None, v)


def position_text(pw: dict[str, Any]) -> str:
    """The judge's position preference beside its order disagreement, in words."""
    if not pw["pairs"]:
        return "No pair was judged."
    pref, low, high = (
        pw["position_preference"],
        pw["position_preference_low"],
        pw["position_preference_high"],
    )
    interval = (
        "too few pairs for an interval" if low is None else f"95% CI {low:+.2f} to {high:+.2f}"
    )
    return (
        f"Position preference, P(first shown wins) - P(second shown wins): {pref:+.2f} "
        f"({interval}; 0 is none) over {pw['pairs']} pairs; the two orders disagreed on "
        f"{pw['order_disagreement_rate']:.0%} of them (any noisy judge disagrees; this is "
        "not a bias)."
    )


def sections(data: dict[str, Any]) -> list[Chart]:
    """The report's charts and tables, built from the report data alone."""
    models: list[str] = data["models"]
    metrics_rows: list[dict[str, Any]] = data["summary"]["metrics"]
    out: list[Chart] = []

    panels = [
        {
            "metric": metric,
            "bars": [
                {
                    "model": m["model"],
                    "mean": m["mean"],
                    "low": m["mean_low"],
                    "high": m["mean_high"],
                }
                for m in metrics_rows
                if m["metric"] == metric
            ],
        }
        for metric in data["metrics"]
    ]
    table = Table(["model", "metric", "mean", "95% low", "95% high", "n", "queries", "errors"])
    for i, m in enumerate(metrics_rows):
        k = f"summary.metrics.{i}"
        table.rows.append(
            [
                Cell(m["model"]),
                Cell(m["metric"]),
                _num(m["mean"], f"{k}.mean"),
                _num(m["mean_low"], f"{k}.mean_low"),
                _num(m["mean_high"], f"{k}.mean_high"),
                _num(m["n"], f"{k}.n", "{:.0f}"),
                _num(m["clusters"], f"{k}.clusters", "{:.0f}"),
                _num(m["errors"], f"{k}.errors", "{:.0f}"),
            ]
        )
    out.append(
        Chart(
            "mean-by-model",
            "Mean score by model",
            "Each metric on its own scale; whiskers are 95% intervals clustered by query "
            "(n scores from that many queries: repeats are not new queries) that stay "
            "within the metric's scale; '-' where one query is too few to say.",
            charts.mean_panels(panels, models),
            table,
        )
    )

    norm = {(m["model"], m["metric"]): m["mean_normalized"] for m in metrics_rows}
    series = [
        {"model": model, "values": [norm.get((model, metric)) for metric in data["metrics"]]}
        for model in models
    ]
    table = Table(["model", "metric", "normalised mean", "95% low", "95% high", "queries"])
    for i, m in enumerate(metrics_rows):
        k = f"summary.metrics.{i}"
        table.rows.append(
            [
                Cell(m["model"]),
                Cell(m["metric"]),
                _num(m["mean_normalized"], f"{k}.mean_normalized"),
                _num(m["normalized_low"], f"{k}.normalized_low"),
                _num(m["normalized_high"], f"{k}.normalized_high"),
                _num(m["clusters"], f"{k}.clusters", "{:.0f}"),
            ]
        )
    out.append(
        Chart(
            "radar",
            "Metrics per model",
            "Normalised means (0 worst, 1 best); the table gives each one's 95% interval, "
            "clustered by query ('-' where one query is too few to say).",
            charts.radar(data["metrics"], series),
            table,
        )
    )

    cells = {(h["model"], h["theme"]): h["value"] for h in data["theme_heatmap"]}
    table = Table(["model", "theme", "mean normalised score", "95% low", "95% high", "queries"])
    for i, h in enumerate(data["theme_heatmap"]):
        k = f"theme_heatmap.{i}"
        table.rows.append(
            [
                Cell(h["model"]),
                Cell(h["theme"]),
                _num(h["value"], f"{k}.value"),
                _num(h["low"], f"{k}.low"),
                _num(h["high"], f"{k}.high"),
                _num(h["queries"], f"{k}.queries", "{:.0f}"),
            ]
        )
    out.append(
        Chart(
            "theme-heatmap",
            "Themes by model",
            "Per theme, each answer's mean normalised score over the quality metrics (not "
            "latency or cost; pass/fail checks as 1 or 0), averaged over the answers; the "
            "table gives 95% intervals clustered by query ('-' where one query is too few).",
            charts.heatmap(models, data["themes"], cells, "Theme by model"),
            table,
            "No theme data.",
        )
    )

    boxes = []
    table = Table(["model", "p5", "p25", "p50", "p75", "p95", "p99"])
    for i, m in enumerate(data["summary"]["models"]):
        d = m["distributions"].get("latency_ms", {})
        boxes.append(
            {"model": m["model"], **{q: d.get(q) for q in ("p5", "p25", "p50", "p75", "p95")}}
        )
        table.rows.append(
            [Cell(m["model"])]
            + [
                _num(d.get(q), f"summary.models.{i}.distributions.latency_ms.{q}", "{:.1f}")
                for q in ("p5", "p25", "p50", "p75", "p95", "p99")
            ]
        )
    out.append(
        Chart(
            "latency",
            "Latency by model",
            "Milliseconds: whiskers p5 to p95, box p25 to p75, line at the median.",
            charts.boxplots(boxes, "Latency distribution", "ms"),
            table,
        )
    )

    table = Table(["model", "cost per answer (USD)", "quality", "Pareto"])
    for i, p in enumerate(data["cost_quality"]):
        table.rows.append(
            [
                Cell(p["model"]),
                _num(p["cost_per_answer"], f"cost_quality.{i}.cost_per_answer", "{:.6f}"),
                _num(p["quality"], f"cost_quality.{i}.quality"),
                Cell("yes" if p["pareto"] else "no"),
            ]
        )
    out.append(
        Chart(
            "cost-quality",
            "Cost against quality",
            "Mean normalised score over the quality metrics (all but latency and cost); "
            "circled models are on the "
            "Pareto front (nothing is both cheaper and better).",
            charts.cost_quality(data["cost_quality"], models),
            table,
        )
    )

    groups = []
    table = Table(["model", "metric", "pass rate", "95% low", "95% high", "passed", "of"])
    for metric in data["metrics"]:
        bars = []
        for i, m in enumerate(metrics_rows):
            if m["metric"] != metric or m["pass_rate"] is None:
                continue
            bars.append(
                {
                    "model": m["model"],
                    "rate": m["pass_rate"],
                    "low": m["pass_low"],
                    "high": m["pass_high"],
                }
            )
            k = f"summary.metrics.{i}"
            table.rows.append(
                [
                    Cell(m["model"]),
                    Cell(metric),
                    _num(m["pass_rate"], f"{k}.pass_rate"),
                    _num(m["pass_low"], f"{k}.pass_low"),
                    _num(m["pass_high"], f"{k}.pass_high"),
                    _num(m["passed"], f"{k}.passed", "{:.0f}"),
                    _num(m["with_threshold"], f"{k}.with_threshold", "{:.0f}"),
                ]
            )
        if bars:
            groups.append({"metric": metric, "bars": bars})
    out.append(
        Chart(
            "pass-rate",
            "Pass rate by metric",
            "Whiskers are Wilson 95% intervals (clustered by query when there are repeats).",
            charts.grouped_bars(groups, models, "Pass rate by metric"),
            table,
            "No metric has a threshold.",
        )
    )

    if data["pairwise"]:
        # a pairwise judge's verdicts, when the run has one: they are what it is for
        pw = data["pairwise"][0]
        rates = {(h["a"], h["b"]): h["win_rate"] for h in pw["win_rates"]}
        table = Table(["model", "against", "win rate", "95% low", "95% high", "pairs"])
        for i, h in enumerate(pw["win_rates"]):
            k = f"pairwise.0.win_rates.{i}"
            table.rows.append(
                [
                    Cell(h["a"]),
                    Cell(h["b"]),
                    _num(h["win_rate"], f"{k}.win_rate"),
                    _num(h["low"], f"{k}.low"),
                    _num(h["high"], f"{k}.high"),
                    _num(h["n"], f"{k}.n", "{:.0f}"),
                ]
            )
        for i, r in enumerate(pw["ranking"]):
            k = f"pairwise.0.ranking.{i}"
            table.rows.append(
                [
                    Cell(f"rank {r['rank']}: {r['model']}"),
                    Cell("Bradley-Terry"),
                    _num(r["score"], f"{k}.score", "{:.0f}"),
                    _num(r["low"], f"{k}.low", "{:.0f}"),
                    _num(r["high"], f"{k}.high", "{:.0f}"),
                    Cell(""),
                ]
            )
        caption = (
            f"Pairwise judge '{pw['metric']}': each pair judged in both orders; a win "
            f"needs both to agree. {position_text(pw)} Win-rate intervals: 95%, ties "
            "count half. Ranking scores are on the Elo scale, with 95% bootstrap intervals."
            + (f" {pw['ranking_note']}." if pw.get("ranking_note") else "")
            + (f" {pw['errors']} judgements failed and are left out." if pw["errors"] else "")
        )
    else:
        rates = {(h["a"], h["b"]): h["win_rate"] for h in data["head_to_head"]}
        table = Table(["model", "against", "win rate", "95% CI low", "high", "queries"])
        for i, h in enumerate(data["head_to_head"]):
            table.rows.append(
                [
                    Cell(h["a"]),
                    Cell(h["b"]),
                    _num(h["win_rate"], f"head_to_head.{i}.win_rate"),
                    _num(h["low"], f"head_to_head.{i}.low"),
                    _num(h["high"], f"head_to_head.{i}.high"),
                    _num(h["n"], f"head_to_head.{i}.n", "{:.0f}"),
                ]
            )
        caption = (
            "Share of the queries both models answered where the row model's mean "
            "normalised quality score (all metrics but latency and cost) was higher "
            "(ties count half), with its 95% interval (one query, one outcome)."
        )
    out.append(
        Chart(
            "win-rate",
            "Head-to-head win rate",
            caption,
            charts.win_matrix(models, rates),
            table,
            "Head-to-head needs two models.",
        )
    )

    table = Table(["model", "metric", "p5", "p25", "p50", "p75", "p95"])
    for i, m in enumerate(metrics_rows):
        d = m["distribution"]
        table.rows.append(
            [Cell(m["model"]), Cell(m["metric"])]
            + [
                _num(d.get(q), f"summary.metrics.{i}.distribution.{q}")
                for q in ("p5", "p25", "p50", "p75", "p95")
            ]
        )
    out.append(
        Chart(
            "histograms",
            "Score distributions",
            "Values of each metric on its own scale, ten bins.",
            charts.histograms(data["histograms"], models),
            table,
        )
    )
    for p_i, panel in enumerate(data.get("panels", [])):
        judges = panel["judges"]
        cells = {(b["model"], b["judge"]): b["normalized"] for b in panel["by_judge"]}
        table = Table(["model", "judge", "mean score", "n"])
        for i, b in enumerate(panel["by_judge"]):
            k = f"panels.{p_i}.by_judge.{i}"
            table.rows.append(
                [
                    Cell(b["model"]),
                    Cell(b["judge"]),
                    _num(b["mean"], f"{k}.mean"),
                    _num(b["n"], f"{k}.n", "{:.0f}"),
                ]
            )
        alpha = panel["alpha"]
        table.rows.append(
            [
                Cell("all"),
                Cell("Krippendorff's alpha"),
                _num(alpha, f"panels.{p_i}.alpha"),
                _num(panel["items"], f"panels.{p_i}.items", "{:.0f}"),
            ]
        )
        out.append(
            Chart(
                f"panel-{p_i}",
                f"Panel '{panel['metric']}': judges by model",
                "Each judge's mean score per model (cells: normalised 0..1); "
                "Krippendorff's alpha (interval) measures how far the judges agree: 1 is "
                f"perfect, 0 no better than chance. Here: "
                f"{'-' if alpha is None else f'{alpha:.2f}'}.",
                charts.heatmap(models, judges, cells, "Judges by model"),
                table,
            )
        )
    return out


def render_html(data: dict[str, Any]) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("panopticon.reports", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    # "</" cannot end the script element early once escaped as "<\/"
    data_json = orjson.dumps(data).decode().replace("</", "<\\/")
    return env.get_template("report.html").render(
        run=data["run"],
        models=data["models"],
        metrics=data["metrics"],
        themes=data["themes"],
        charts=sections(data),
        data_json=data_json,
    )
