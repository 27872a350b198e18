"""Production scores on their own: what the dashboard's summary and themes heatmap show of
them, for the API and the command line.

Scores of production traces and spans (online rules, guardrails, people's labels, outside
clients) per model and source, over every quality metric or per metric, with the
dashboard's numbers: the same grouped sums (:func:`store.queries.dashboard.production_moments`)
and the same interval (:meth:`services.dashboard.Cell.of`), clustered by trace because
several scores of one trace (its spans, repeats, several annotators) are not independent.
A group of one trace has a mean but no interval ("too few"); a group with no usable value
(only labels such as "thumbs_up") has neither, and says what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from panopticon.errors import ConfigError, Issue
from panopticon.services.dashboard import (
    Cell,
    ProductionTotals,
    production_label,
    since_days,
)
from panopticon.services.metric_kinds import operational_types
from panopticon.services.moments import parse_time
from panopticon.store.engine import Engine
from panopticon.store.queries import dashboard as q
from panopticon.store.queries.results import PRODUCTION_SOURCES
from panopticon.store.queries.traces import find_metric

__all__ = [
    "PRODUCTION_SOURCES",
    "ProductionFilters",
    "ProductionHeatmap",
    "ProductionRow",
    "ProductionScore",
    "ProductionSummary",
    "production_filters",
    "production_heatmap",
    "production_summary",
    "verdict",
]


@dataclass(frozen=True)
class ProductionFilters:
    """Which production scores: created since (None: every day so far), of one model (as
    the scores are grouped: the span's model, else the trace's), one metric (by name), one
    source (None: every production source)."""

    since: datetime | None = None
    model: str | None = None
    metric: str | None = None
    source: str | None = None


def production_filters(
    *,
    days: int | None = None,
    since: datetime | str | None = None,
    model: str | None = None,
    metric: str | None = None,
    source: str | None = None,
) -> ProductionFilters:
    """The filters checked, or ConfigError naming the field: ``days`` (the dashboard's
    period, 1 to MAX_DAYS) or ``since`` (a time; ISO 8601 text, UTC without a zone), not
    both; ``source`` a production source or ``production`` (every one)."""
    if days is not None and since is not None:
        raise ConfigError(
            Issue("give days or since, not both", field="since", hint="for example days=30")
        )
    source = (source or "").strip() or None
    if source == "production":
        source = None
    if source is not None and source not in PRODUCTION_SOURCES:
        raise ConfigError(
            Issue(
                f"unknown production source '{source}'",
                field="source",
                hint="production (every one), or one of "
                + ", ".join(PRODUCTION_SOURCES)
                + (
                    "; a run's scores are in its summary (GET /api/runs/{id})"
                    if source == "run"
                    else ""
                ),
            )
        )
    return ProductionFilters(
        since=since_days(days) if since is None else parse_time(since, "since"),
        model=(model or "").strip() or None,
        metric=(metric or "").strip() or None,
        source=source,
    )


@dataclass(frozen=True)
class ProductionScore:
    """One group's production scores: a model's from one source, on one metric (``metric``
    None: every quality metric, as the dashboard's mean by model). Means and pass rates are
    normalised (0..1, higher is better) with 95% intervals clustered by trace; ``n`` counts
    scores with a value and ``traces`` the traces behind them. ``verdict``: ``ok``, ``too
    few`` (one trace: a mean but no interval) or ``no values`` (no score with a value or a
    pass/fail); ``message`` says why, and what ``unscored`` holds: the scores the mean
    cannot use, ``labels`` theirs with counts."""

    model: str
    source: str
    label: str  # "model (source)", as the dashboard names the row
    metric: str | None
    n: int
    traces: int
    mean: float | None
    low: float | None
    high: float | None
    pass_rate: float | None
    pass_low: float | None
    pass_high: float | None
    errors: int
    unscored: int
    labels: dict[str, int]
    verdict: str
    message: str | None

    @classmethod
    def of(cls, model: str, source: str, metric: str | None, cell: Cell) -> ProductionScore:
        said, message = verdict(cell)
        return cls(
            model=model,
            source=source,
            label=production_label(model, source),
            metric=metric,
            n=cell.n,
            traces=cell.clusters,
            mean=cell.mean,
            low=cell.low,
            high=cell.high,
            pass_rate=cell.pass_rate,
            pass_low=cell.pass_low,
            pass_high=cell.pass_high,
            errors=cell.errors,
            unscored=cell.unscored,
            labels=dict(cell.labels),
            verdict=said,
            message=message,
        )


def verdict(cell: Cell) -> tuple[str, str | None]:
    """``ok``, ``too few`` or ``no values``, with a message saying why when not ok (and
    what the scores without a value hold, when there are some)."""
    extra = cell.unscored_note
    if cell.n == 0:
        held = extra or f"every score is an error ({cell.errors})"
        return "no values", f"no mean: {held}"
    if cell.low is None:
        said = f"too few for a 95% interval: the {cell.n} score" + (
            " is of one trace" if cell.n == 1 else "s are all of one trace"
        )
        return "too few", said + (f"; {extra}" if extra else "")
    return "ok", extra


@dataclass(frozen=True)
class ProductionSummary:
    """The dashboard summary's production part: ``totals`` per source (traces scored,
    scores, errors, the judges' tokens and cost; every model and metric of the source),
    ``models`` per model and source over every quality metric (or the one metric asked
    for), and ``scores`` per model, source and metric."""

    filters: ProductionFilters
    totals: list[ProductionTotals]
    models: list[ProductionScore]
    scores: list[ProductionScore]


@dataclass(frozen=True)
class ProductionRow:
    """A heatmap row: one model's scores from one source, over every quality metric
    (``overall``, the themes heatmap's "production" cell) and per metric (``cells``)."""

    label: str
    model: str
    source: str
    overall: ProductionScore | None  # None: only operational metrics (latency, cost)
    cells: dict[str, ProductionScore] = field(default_factory=dict)


@dataclass(frozen=True)
class ProductionHeatmap:
    filters: ProductionFilters
    metrics: list[str]
    rows: list[ProductionRow]


def _check_metric(engine: Engine, workspace_id: int, metric: str | None) -> None:
    if metric is None:
        return
    with engine.connect() as conn:
        if find_metric(conn, workspace_id, metric, create=False) is None:
            raise ConfigError(
                Issue(
                    f"no metric '{metric}' in this workspace",
                    field="metric",
                    hint="name one of its metrics (GET /api/metrics lists them)",
                )
            )


def _moments(
    engine: Engine, workspace_id: int, f: ProductionFilters, by: tuple[str, ...]
) -> list[dict[str, object]]:
    """Grouped sums as the dashboard reads them: over every metric (``metric`` not in
    ``by``, no metric asked for) quality metrics only, as its mean by model."""
    overall = "metric" not in by and f.metric is None
    with engine.connect() as conn:
        return q.production_moments(
            conn,
            workspace_id,
            by=by,
            metric=f.metric,
            since=f.since,
            sources=None if f.source is None else [f.source],
            models=None if f.model is None else [f.model],
            operational=operational_types() if overall else (),
            quality_only=overall,
        )


def production_summary(
    engine: Engine, workspace_id: int, filters: ProductionFilters
) -> ProductionSummary:
    _check_metric(engine, workspace_id, filters.metric)
    overall = _moments(engine, workspace_id, filters, ("source", "model"))
    per_metric = _moments(engine, workspace_id, filters, ("source", "model", "metric"))
    with engine.connect() as conn:
        totals = q.production_totals(conn, workspace_id, filters.since)
    return ProductionSummary(
        filters=filters,
        totals=[
            ProductionTotals.of_row(r) for r in totals if filters.source in (None, r["source"])
        ],
        models=_scores(overall, metric=filters.metric),
        scores=_scores(per_metric),
    )


def _scores(rows: list[dict[str, object]], metric: str | None = None) -> list[ProductionScore]:
    found = [
        ProductionScore.of(
            str(r["model"]),
            str(r["source"]),
            str(r["metric"]) if "metric" in r else metric,
            Cell.of(r),
        )
        for r in rows
    ]
    return sorted(found, key=lambda s: (s.model, s.source, s.metric or ""))


def production_heatmap(
    engine: Engine, workspace_id: int, filters: ProductionFilters
) -> ProductionHeatmap:
    """Model (source) x metric, each row with its cell over every quality metric."""
    summary = production_summary(engine, workspace_id, filters)
    overall = {(s.model, s.source): s for s in summary.models}
    cells: dict[tuple[str, str], dict[str, ProductionScore]] = {}
    for c in summary.scores:
        cells.setdefault((c.model, c.source), {})[str(c.metric)] = c
    return ProductionHeatmap(
        filters=filters,
        metrics=sorted({str(c.metric) for c in summary.scores}),
        rows=[
            ProductionRow(
                label=production_label(model, source),
                model=model,
                source=source,
                overall=overall.get((model, source)),
                cells=cells.get((model, source), {}),
            )
            for model, source in sorted(set(overall) | set(cells))
        ],
    )
