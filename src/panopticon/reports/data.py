"""Everything a report shows, as one JSON-able dict: the single source for every format.

The HTML, Markdown and CSV reports render this dict and nothing else, so the numbers in
each agree with the JSON (a browser test checks the HTML against it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from panopticon.stats.kinds import ScoreKind
from panopticon.stats.summary import comparable_value, composite, summarize

__all__ = ["build_report"]

HIST_BINS = 10


def _item_means(rows: list[dict[str, Any]], skip: set[str]) -> dict[str, dict[int, float]]:
    """model -> query id -> mean normalised score over metrics (but ``skip``) and repeats."""
    acc: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row["error"] is not None:
            continue
        for name, s in row["scores"].items():
            if name in skip:
                continue
            value = comparable_value(s)
            if value is not None:
                acc[row["model"]][row["query_id"]].append(value)
    return {m: {q: sum(v) / len(v) for q, v in items.items()} for m, items in acc.items()}


def head_to_head(
    rows: list[dict[str, Any]], models: list[str], skip: set[str]
) -> list[dict[str, Any]]:
    """For each ordered pair (A, B): on the queries both answered, how often A's mean
    normalised quality score beat B's; a tie counts half. Each query is one outcome (its
    repeats are averaged first), so the 95% interval is Wilson's on the count, or with
    ties its quasi-binomial form on the fractional count, as the pairwise judge's."""
    from panopticon.stats.intervals import ClusterSums, bounded_interval

    means = _item_means(rows, skip)
    out = []
    for a in models:
        for b in models:
            if a == b:
                continue
            common = set(means.get(a, {})) & set(means.get(b, {}))
            if not common:
                continue
            outcomes = [
                1.0 if means[a][q] > means[b][q] else 0.5 if means[a][q] == means[b][q] else 0.0
                for q in common
            ]
            ci = bounded_interval(ClusterSums.of([o] for o in outcomes), binary=True)
            out.append(
                {
                    "a": a,
                    "b": b,
                    "n": len(common),
                    "win_rate": sum(outcomes) / len(common),
                    "low": ci.low,
                    "high": ci.high,
                }
            )
    return out


def _histograms(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in rows:
        for name, s in row["scores"].items():
            if s["error"] is None and s["value"] is not None:
                values[(row["model"], name)].append(s["value"])
    by_metric: dict[str, list[float]] = defaultdict(list)
    for (_, metric), vs in values.items():
        by_metric[metric] += vs
    out = []
    for (model, metric), vs in sorted(values.items()):
        low, high = min(by_metric[metric]), max(by_metric[metric])
        width = (high - low) / HIST_BINS or 1.0
        counts = [0] * HIST_BINS
        for v in vs:
            counts[min(HIST_BINS - 1, int((v - low) / width))] += 1
        out.append({"model": model, "metric": metric, "low": low, "high": high, "counts": counts})
    return out


def _query_of(p: dict[str, Any], i: int) -> tuple[str, Any]:
    """The cluster of a pairwise judgement: its query (its repeats and the other pairs of
    models judged on it are not independent of it), else the judgement alone."""
    query = p.get("query_id")
    return ("q", query) if query is not None else ("j", i)


def pairwise_summary(pairs: list[dict[str, Any]], models: list[str]) -> list[dict[str, Any]]:
    """Per pairwise metric: win rates (ties count half, on the exact count) with 95%
    intervals, the judge's position preference (P(first shown wins) - P(second shown
    wins), with its interval) beside the share of pairs whose two orders disagreed, and a
    Bradley-Terry ranking. Every interval is clustered by query: with repeats, a query's
    judgements of a pair of models are not independent (a win rate that counted them so
    covered 74% with 20 queries of 5 repeats; tests/test_pairwise_stats.py)."""
    from panopticon.stats.intervals import ClusterSums, bounded_interval
    from panopticon.stats.position import position_bias
    from panopticon.stats.ranking import bradley_terry

    out = []
    for metric in sorted({p["metric"] for p in pairs}):
        judged = [p for p in pairs if p["metric"] == metric and p["error"] is None]
        games: list[tuple[str, str, float]] = [
            (p["model_a"], p["model_b"], {"a": 1.0, "b": 0.0, "tie": 0.5}[p["final"]])
            for p in judged
        ]
        queries = [_query_of(p, i) for i, p in enumerate(judged)]
        rates = []
        for a in models:
            for b in models:
                if a == b:
                    continue
                by_query: dict[tuple[str, Any], list[float]] = defaultdict(list)
                for (x, y, o), query in zip(games, queries, strict=True):
                    if {x, y} == {a, b}:
                        by_query[query].append(o if x == a else 1 - o)
                if not by_query:
                    continue
                outcomes = [o for group in by_query.values() for o in group]
                # Wilson on the count without ties or repeats; otherwise its quasi-binomial
                # form on the exact fractional count, clustered by query
                ci = bounded_interval(ClusterSums.of(by_query.values()), binary=True)
                rates.append(
                    {
                        "a": a,
                        "b": b,
                        "n": len(outcomes),
                        "queries": len(by_query),
                        "win_rate": sum(outcomes) / len(outcomes),
                        "low": ci.low,
                        "high": ci.high,
                    }
                )
        bias = position_bias([(p["verdict_ab"], p["verdict_ba"]) for p in judged], queries)
        preference = bias.preference
        present = sorted({m for g in games for m in g[:2]}, key=models.index)
        ranking = (
            [vars(r) for r in bradley_terry(present, games, clusters=queries)]
            if len(present) > 2
            else []
        )
        separated = [r["model"] for r in ranking if r["separated"]]
        out.append(
            {
                "metric": metric,
                "pairs": len(judged),
                "errors": sum(1 for p in pairs if p["metric"] == metric and p["error"]),
                "order_disagreement_rate": bias.disagreement,
                "position_preference": preference.estimate if preference else None,
                "position_preference_low": preference.low if preference else None,
                "position_preference_high": preference.high if preference else None,
                "win_rates": rates,
                "ranking": ranking,
                "ranking_note": (
                    f"{', '.join(separated)} won or lost every game: no finite strength "
                    "fits, so the score shown is penalised (half a drawn game per pair)"
                    if separated
                    else None
                ),
            }
        )
    return out


def panel_summary(
    rows: list[dict[str, Any]], scales: dict[str, tuple[float, float]]
) -> list[dict[str, Any]]:
    """Per panel metric: how far the judges agree (Krippendorff's alpha, interval level, on
    each judge's final score) and each judge's mean score per model (its leniency)."""
    from panopticon.stats.agreement import krippendorff_alpha

    out = []
    rows = [r for r in rows if r["details"] and r["details"].get("votes")]
    for metric in sorted({r["metric"] for r in rows}):
        mine = [r for r in rows if r["metric"] == metric]
        finals: list[dict[str, float]] = []
        for r in mine:
            last: dict[str, float] = {}
            for v in r["details"].get("votes", []):
                if v.get("value") is not None:
                    last[v["judge"]] = v["value"]  # round 2 follows round 1
            finals.append(last)
        judges = sorted({j for f in finals for j in f})
        matrix = [[f.get(j) for f in finals] for j in judges]
        try:
            alpha: float | None = krippendorff_alpha(matrix)
        except ValueError:
            alpha = None
        by_judge = []
        for j in judges:
            for model in sorted({r["model"] for r in mine}):
                values = [
                    f[j]
                    for f, r in zip(finals, mine, strict=True)
                    if j in f and r["model"] == model
                ]
                if values:
                    mean = sum(values) / len(values)
                    low, high = scales.get(metric, (0.0, 1.0))
                    by_judge.append(
                        {
                            "judge": j,
                            "model": model,
                            "n": len(values),
                            "mean": mean,
                            "normalized": (mean - low) / (high - low),
                        }
                    )
        out.append(
            {
                "metric": metric,
                "judges": judges,
                "items": len(mine),
                "alpha": alpha,
                "by_judge": by_judge,
            }
        )
    return out


def _pareto(points: list[dict[str, Any]]) -> None:
    """Mark the models no other model beats on both cost (lower) and quality (higher)."""
    for p in points:
        p["pareto"] = p["cost_per_answer"] is not None and not any(
            q is not p
            and q["cost_per_answer"] is not None
            and q["cost_per_answer"] <= p["cost_per_answer"]
            and q["quality"] >= p["quality"]
            and (q["cost_per_answer"] < p["cost_per_answer"] or q["quality"] > p["quality"])
            for q in points
        )


def build_report(
    run: Any,
    rows: list[dict[str, Any]],
    pairs: list[dict[str, Any]],
    panels: list[dict[str, Any]],
    kinds: Mapping[str, ScoreKind],
) -> dict[str, Any]:
    """The report's data from what the store holds of a run (read by
    :func:`panopticon.services.reports.report_data`): ``run`` has the run's id, name,
    status, created_at, planned, totals and suite."""
    summary = summarize(rows, kinds)
    models = [m.model for m in summary.models]
    metrics = sorted({m.metric for m in summary.metrics})
    # quality is every metric but the operational ones (latency, cost): the metric types say
    operational = {name for name, kind in kinds.items() if not kind.quality}
    quality: dict[str, list[float]] = defaultdict(list)
    for m in summary.metrics:
        if m.mean_normalized is not None and m.metric not in operational:
            quality[m.model].append(m.mean_normalized)
    points = []
    for ms in summary.models:
        q = quality.get(ms.model)
        points.append(
            {
                "model": ms.model,
                "quality": sum(q) / len(q) if q else 0.0,
                "cost_per_answer": ms.cost_usd / ms.answers
                if ms.cost_usd is not None and ms.answers
                else None,
            }
        )
    _pareto(points)
    themes = sorted({m.theme for m in summary.by_theme if m.theme is not None})
    # per model and theme: each answer's mean over the quality metrics, averaged over the
    # answers, with an interval clustered by query
    quality_metrics = [m for m in metrics if m not in operational]
    by_cell: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("theme") is not None:
            by_cell[(row["model"], row["theme"])].append(row)
    heatmap = []
    for model in models:
        for theme in themes:
            cell = composite(by_cell.get((model, theme), []), quality_metrics)
            if cell is not None:
                heatmap.append(
                    {
                        "model": model,
                        "theme": theme,
                        "value": cell.estimate,
                        "low": cell.low,
                        "high": cell.high,
                        "queries": cell.clusters or 0,
                    }
                )
    return {
        "run": {
            "id": run.id,
            "name": run.name,
            "status": run.status,
            "created_at": run.created_at.isoformat(),
            "planned": run.planned,
            "totals": run.totals,
        },
        "models": models,
        "metrics": metrics,
        "themes": themes,
        "summary": summary.as_dict(),
        "cost_quality": points,
        "theme_heatmap": heatmap,
        "head_to_head": head_to_head(rows, models, operational),
        "histograms": _histograms(rows),
        "pairwise": pairwise_summary(pairs, models),
        "panels": panel_summary(
            panels,
            {
                m["name"]: (float(m["scale"][0]), float(m["scale"][1]))
                for m in run.suite.get("metrics", [])
                if m.get("type") == "panel"
            },
        ),
    }
