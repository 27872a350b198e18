"""``panopticon online scores`` and ``panopticon online heatmap``: production scores (online
rules, guardrails, people's labels, outside clients) per model, source and metric, as the
dashboard's summary and heatmaps show them and GET /api/production/summary and /heatmap
return them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import typer

from panopticon.cli.output import console, handle_errors, money
from panopticon.cli.tables import Column, Grid, check_format, emit, resolve_format
from panopticon.settings import load_settings

T = TypeVar("T")

if TYPE_CHECKING:
    from panopticon.services.production import ProductionFilters, ProductionScore

__all__ = ["heatmap_cmd", "scores_cmd"]

_DAYS = typer.Option(None, "--days", min=1, help="The last days (the dashboard's period).")
_SINCE = typer.Option(None, "--since", help="From this time (ISO 8601; UTC without a zone).")
_MODEL = typer.Option(None, "--model", help="One model, as the rows name it.")
_METRIC = typer.Option(None, "--metric", help="One metric, by name.")
_SOURCE = typer.Option(
    None, "--source", help="online, guardrail, human or api (default: every production source)."
)
_JSON = typer.Option(False, "--json", help="Print the full JSON (as the API's).")
_FORMAT = typer.Option(
    None, "--format", "-f", help="table, md, json or csv (default: a table on a terminal)."
)


def _filters(
    days: int | None, since: str | None, model: str | None, metric: str | None, source: str | None
) -> ProductionFilters:
    from panopticon.services.production import production_filters

    return production_filters(days=days, since=since, model=model, metric=metric, source=source)


def _interval(low: float | None, high: float | None) -> str:
    return "too few" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def _cell_text(s: ProductionScore | None) -> str:
    """A heatmap cell: mean [low, high], 'too few' for one trace, or why there is no mean."""
    if s is None:
        return "-"
    if s.mean is None:
        # unscored: labels without a value, or values on no 0..1 scale (the note says which)
        return "no values" + (f" ({s.unscored} unscored)" if s.unscored else "")
    return f"{s.mean:.2f} {_interval(s.low, s.high)} n={s.n}"


def _estimate(v: tuple[float | None, float | None, float | None]) -> str:
    """mean [low, high], or 'too few' in place of an interval; '-' without a mean."""
    return "-" if v[0] is None else f"{v[0]:.3f} {_interval(v[1], v[2])}"


_VERDICT_STYLE = {"too few": "yellow", "no values": "red"}


def _score_grid(key: str, title: str | None, scores: list[ProductionScore]) -> Grid:
    return Grid(
        key,
        title,
        [
            Column("model (source)"),
            Column("metric", lambda v: v or "every quality metric"),
            Column("mean [95% CI]", _estimate, right=True),
            Column("pass rate [95% CI]", _estimate, right=True),
            Column("n", str, right=True),
            Column("traces", str, right=True),
            Column("errors", str, right=True, style=lambda v: "red" if v else None),
            Column("verdict", style=_VERDICT_STYLE.get),
            Column("note", lambda v: v or ""),
        ],
        [
            [
                s.label,
                s.metric,
                (s.mean, s.low, s.high),
                (s.pass_rate, s.pass_low, s.pass_high),
                s.n,
                s.traces,
                s.errors,
                s.verdict,
                s.message,
            ]
            for s in scores
        ],
    )


def _none(filters: ProductionFilters) -> None:
    from panopticon.services.production import ProductionFilters

    console.print(
        "no production scores"
        + (" for these filters" if filters != ProductionFilters() else "")
        + ": enable an online rule (`panopticon online apply`) or send scores (POST /api/scores)",
        highlight=False,
    )


def _read(read: Callable[[Any, int, ProductionFilters], T], filters: ProductionFilters) -> T:
    """``read`` (a production service) on the CLI's store and workspace."""
    from panopticon.services.database import workspace_id
    from panopticon.services.runs import store

    settings = load_settings()
    with store(settings) as engine:
        return read(engine, workspace_id(engine, settings.workspace, create=False), filters)


def _print_json(data: object) -> None:
    console.print_json(orjson.dumps(data, default=str).decode())


@handle_errors
def scores_cmd(
    days: int | None = _DAYS,
    since: str | None = _SINCE,
    model: str | None = _MODEL,
    metric: str | None = _METRIC,
    source: str | None = _SOURCE,
    as_json: bool = _JSON,
    fmt: str | None = _FORMAT,
) -> None:
    """Production scores apart from the runs': totals per source, and each model's mean and
    pass rate per source over every quality metric, with 95% intervals clustered by trace
    (as the dashboard's summary; GET /api/production/summary)."""
    from panopticon.services.production import production_summary

    check_format(fmt)
    filters = _filters(days, since, model, metric, source)
    found = _read(production_summary, filters)
    if as_json:
        _print_json(asdict(found))
        return
    if not found.totals and not found.models and not found.scores:
        _none(filters)
        return
    totals = Grid(
        "totals",
        "Production, apart from the runs (every model and metric of each source)",
        [
            Column("source"),
            Column("traces scored", str, right=True),
            Column("scores", str, right=True),
            Column("judge errors", str, right=True, style=lambda v: "red" if v else None),
            Column("judge tokens", lambda v: f"{v:,}", right=True),
            Column("judge cost", money, right=True),
        ],
        [
            [
                t.source,
                t.traces,
                t.scores,
                t.score_errors,
                t.input_tokens + t.output_tokens,
                t.cost_usd,
            ]
            for t in found.totals
        ],
    )
    title = (
        f"Mean by model and source, metric {filters.metric}"
        if filters.metric
        else "Mean by model and source over every quality metric (latency and cost left out)"
    )
    models = _score_grid(
        "models",
        title + "; 95% CIs clustered by trace; n: scores of that many traces",
        found.models,
    )
    emit([totals, models], resolve_format(fmt, console), console)


@handle_errors
def heatmap_cmd(
    days: int | None = _DAYS,
    since: str | None = _SINCE,
    model: str | None = _MODEL,
    metric: str | None = _METRIC,
    source: str | None = _SOURCE,
    as_json: bool = _JSON,
    fmt: str | None = _FORMAT,
) -> None:
    """Model (source) x metric: each cell the mean [95% CI, clustered by trace], 'too few'
    for one trace (GET /api/production/heatmap). With --format json or csv: a row per model,
    source and metric."""
    from panopticon.services.production import production_heatmap

    check_format(fmt)
    filters = _filters(days, since, model, metric, source)
    found = _read(production_heatmap, filters)
    if as_json:
        _print_json(asdict(found))
        return
    if not found.rows:
        _none(filters)
        return
    fmt = resolve_format(fmt, console)
    if fmt in ("json", "csv"):  # raw values: a row per model, source and metric
        cells = [c for r in found.rows for c in r.cells.values()]
        emit([_score_grid("cells", None, cells)], fmt, console)
        return
    grid = Grid(
        "heatmap",
        "Production scores: mean [95% CI clustered by trace] n=scores, or 'too few' (one trace)",
        [
            Column("model (source)"),
            Column("every quality metric", _cell_text, right=True),
            *[Column(m, _cell_text, right=True) for m in found.metrics],
        ],
        [[r.label, r.overall, *[r.cells.get(m) for m in found.metrics]] for r in found.rows],
    )
    emit([grid], fmt, console)
    notes = [
        f"{c.label} {c.metric or 'every quality metric'}: {c.message}"
        for r in found.rows
        for c in [*([r.overall] if r.overall else []), *r.cells.values()]
        if c.verdict == "no values"
    ]
    for note in notes:
        console.print(note, highlight=False, soft_wrap=True)
