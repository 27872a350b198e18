"""What the dashboard shows: workspace totals, scores by model, theme and day, with
intervals. Aggregated by the database; intervals computed as in the run summaries:
clustered by query (repeats, and cached re-runs of the same answers across runs, are one
query's scores, not new queries) and within 0..1. Scores of production traces and spans
(online rules, guardrails, outside clients) are their own rows and series, one per source,
by the span's model, clustered by trace; a group of one cluster has no interval ("too
few"). "Mean score by model" and the heatmap over all metrics are quality: the
operational metrics (latency, cost) are left out, by the same rule as the report
(:func:`panopticon.judges.base.operational_types`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from panopticon.errors import ConfigError, Issue
from panopticon.providers.pricing import known_cost
from panopticon.services.metric_kinds import operational_types
from panopticon.stats.intervals import ClusterSums, bounded_interval
from panopticon.store.engine import Engine
from panopticon.store.queries import dashboard as q

__all__ = [
    "MAX_DAYS",
    "PRODUCTION_THEME",
    "Cell",
    "Failure",
    "Heatmap",
    "ModelMetrics",
    "ModelScore",
    "Overview",
    "ProductionTotals",
    "RunsPerDay",
    "StatusSeries",
    "Totals",
    "TrendSeries",
    "Trends",
    "heatmap",
    "model_metrics",
    "overview",
    "production_cells",
    "production_label",
    "since_days",
    "trends",
]


@dataclass(frozen=True)
class Cell:
    """Normalised scores (0..1, higher is better) of one group with a 95% interval
    clustered by query; ``clusters``: the queries behind the ``n`` scores. ``unscored``:
    production scores with neither a 0..1 value nor a pass/fail (a label such as
    "thumbs_up"), which no mean can use; ``labels``: theirs, with counts."""

    n: int
    mean: float | None
    low: float | None
    high: float | None
    pass_rate: float | None
    pass_low: float | None
    pass_high: float | None
    errors: int
    clusters: int  # the queries behind the n scores
    unscored: int
    labels: tuple[tuple[str, int], ...]

    @property
    def unscored_note(self) -> str | None:
        """What the scores without a value are, when there are some ("2 labels without a
        value: thumbs_up 1, thumbs_down 1")."""
        if not self.unscored:
            return None
        named = [(label, k) for label, k in self.labels if label]
        raw = self.unscored - sum(k for _, k in named)
        parts = []
        if named:
            parts.append(
                f"{sum(k for _, k in named)} label{_s(sum(k for _, k in named))} without a "
                "value or pass/fail: " + ", ".join(f"{label} {k}" for label, k in named)
            )
        if raw:
            parts.append(f"{raw} value{_s(raw)} on no 0..1 scale (the metric has none)")
        return "; ".join(parts)

    @classmethod
    def of(cls, row: dict[str, Any]) -> Cell:
        def sums(prefix: str) -> ClusterSums:
            return ClusterSums(
                int(row[f"{prefix}n"]),
                int(row[f"{prefix}clusters"]),
                float(row[f"{prefix}total"]),
                float(row.get(f"{prefix}squares", row[f"{prefix}total"])),  # 0/1: x² = x
                float(row[f"{prefix}totals_sq"]),
                float(row[f"{prefix}totals_sizes"]),
                float(row[f"{prefix}sizes_sq"]),
                float(row[f"{prefix}sizes_cubed"]),
            )

        unscored = int(row.get("unscored", 0))
        labels = tuple((str(label), int(k)) for label, k in row.get("labels", ()))
        if "clusters" not in row:  # sums without the per-query ones: no interval
            n, judged = int(row["n"]), int(row["with_threshold"])
            mean = float(row["total"]) / n if n else None
            rate = int(row["passed"]) / judged if judged else None
            return cls(
                n, mean, None, None, rate, None, None, int(row["errors"]), 0, unscored, labels
            )
        values, passes = sums(""), sums("pass_")
        ci = bounded_interval(values) if values.n else None
        pr = bounded_interval(passes, binary=True) if passes.n else None
        return cls(
            values.n,
            ci.estimate if ci else None,
            ci.low if ci else None,
            ci.high if ci else None,
            pr.estimate if pr else None,
            pr.low if pr else None,
            pr.high if pr else None,
            int(row["errors"]),
            values.clusters,
            unscored,
            labels,
        )


def _s(k: int) -> str:
    return "" if k == 1 else "s"


MAX_DAYS = 3650  # ten years: a longer period is a typo, and past year 9999 a crash


def since_days(days: int | None) -> datetime | None:
    """The start of the last ``days`` days (None: no start), or ConfigError (field days)."""
    if days is None:
        return None
    if not 1 <= days <= MAX_DAYS:
        raise ConfigError(
            Issue(
                f"must be a number of days from 1 to {MAX_DAYS}, not {days}",
                field="days",
                hint="for example days=30",
            )
        )
    return datetime.now(UTC) - timedelta(days=days)


@dataclass(frozen=True)
class ModelScore(Cell):
    model: str
    source: str = "run"  # run, or a production source: online, guardrail, human, api

    @property
    def label(self) -> str:
        return production_label(self.model, self.source)


def production_label(model: str, source: str) -> str:
    """How a group is named beside the runs' ones: a run's model as it is, a production
    source's as "model (source)"."""
    return model if source == "run" else f"{model} ({source})"


def _sources(source: str | None) -> tuple[bool, list[str] | None]:
    """``source`` as a filter (None: runs and production; ``run``; ``production``; one
    production source): whether run scores are wanted, and which production sources
    (None: every one; an empty list: none)."""
    from panopticon.services.results import check_source

    source = check_source(source)
    if source is None or source == "production":
        return source is None, None
    if source == "run":
        return True, []
    return False, [source]


@dataclass(frozen=True)
class Totals:
    """A period's work: runs, answers and scores, tokens and cost (answers and judges)."""

    runs: int
    answers: int
    failed: int
    cached: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # the priced part; None when nothing is priced
    scores: int
    score_errors: int
    unknown_cost: int = 0  # answers without a price


@dataclass(frozen=True)
class ProductionTotals:
    """One production source's share of a period, apart from the runs' totals: traces
    scored, scores and their errors, and what the judges took (tokens, cost)."""

    source: str
    traces: int
    scores: int
    score_errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float

    @classmethod
    def of_row(cls, r: Any) -> ProductionTotals:
        """From a row of ``queries.production_totals``."""
        return cls(
            source=str(r["source"]),
            traces=int(r["traces"]),
            scores=int(r["scores"]),
            score_errors=int(r["errors"]),
            input_tokens=int(r["judge_input"]),
            output_tokens=int(r["judge_output"]),
            cost_usd=float(r["judge_cost_usd"]),
        )


@dataclass(frozen=True)
class StatusSeries:
    status: str
    counts: list[int]  # one per day of RunsPerDay.days


@dataclass(frozen=True)
class RunsPerDay:
    days: list[str]
    series: list[StatusSeries]


@dataclass(frozen=True)
class Failure:
    id: Any
    run_id: int
    error: str | None
    error_kind: str | None
    created_at: datetime
    model: str
    query: str


@dataclass(frozen=True)
class Overview:
    days: int | None
    totals: Totals
    runs_per_day: RunsPerDay
    models: list[ModelScore]
    failures: list[Failure]
    production: list[ProductionTotals] = field(default_factory=list)  # one per source


@dataclass(frozen=True)
class ModelMetrics:
    models: list[str]
    metrics: list[str]
    cells: dict[tuple[str, str], Cell]  # (model, metric)


# the theme column of production scores: a production trace has no query, so no theme
# (as a dataset made from traces is judged under the theme "production")
PRODUCTION_THEME = "production"


@dataclass(frozen=True)
class Heatmap:
    models: list[str]
    themes: list[str]
    cells: dict[tuple[str, str], Cell]  # (model, theme)
    # production rows, "model (source)" -> (model, source): every day so far, in the
    # PRODUCTION_THEME column, never mixed into a run's rows
    production: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class TrendSeries:
    """One model's daily values, one per day of Trends.days (None: no scores that day);
    for production scores, one model's of one source (``label``: "model (source)").
    ``clusters``: the queries (production: traces) behind each day's scores; a day of one
    has no interval."""

    model: str
    mean: list[float | None]
    low: list[float | None]
    high: list[float | None]
    n: list[int | None]
    source: str = "run"
    label: str = ""
    clusters: list[int | None] = field(default_factory=list)


@dataclass(frozen=True)
class Trends:
    days: list[str]
    series: list[TrendSeries]


def overview(engine: Engine, workspace_id: int, days: int | None = 30) -> Overview:
    """Totals, runs per day by status, mean score by model, and the latest failures. The
    totals are the runs'; production scores' are apart, one row per source."""
    since = since_days(days)
    with engine.connect() as conn:
        totals = q.totals(conn, workspace_id, since)
        per_day = q.run_days(conn, workspace_id, since)
        # every score for the totals (in index order: no sort), quality ones for the means
        every = q.score_moments(
            conn, workspace_id, by=("model", "metric"), since=since, judges=True, clustered=False
        )
        by_model = q.score_moments(
            conn,
            workspace_id,
            by=("model",),
            since=since,
            operational=operational_types(),
            quality_only=True,
        )
        production = q.production_moments(
            conn,
            workspace_id,
            by=("source", "model"),
            since=since,
            operational=operational_types(),
            quality_only=True,
        )
        failures = q.recent_failures(conn, workspace_id, 10)
        production_totals = q.production_totals(conn, workspace_id, since)
    statuses = sorted({r["status"] for r in per_day})
    day_list = sorted({r["day"] for r in per_day})
    counts = {(r["day"], r["status"]): int(r["n"]) for r in per_day}
    return Overview(
        days=days,
        # the judges' share: every score (quality or not)
        totals=Totals(
            runs=int(totals["runs"]),
            answers=int(totals["answers"]),
            failed=int(totals["failed"]),
            cached=int(totals["cached"]),
            input_tokens=int(totals["input_tokens"]) + sum(int(r["judge_input"]) for r in every),
            output_tokens=int(totals["output_tokens"]) + sum(int(r["judge_output"]) for r in every),
            cost_usd=known_cost(
                float(totals["cost_usd"]) + sum(float(r["judge_cost_usd"]) for r in every),
                int(totals["unknown_cost"]),
            ),
            scores=sum(int(r["scores"]) for r in every),
            score_errors=sum(int(r["errors"]) for r in every),
            unknown_cost=int(totals["unknown_cost"]),
        ),
        runs_per_day=RunsPerDay(
            day_list,
            [StatusSeries(s, [counts.get((d, s), 0) for d in day_list]) for s in statuses],
        ),
        # mean score by model: quality only (a fast, cheap model is not a better one)
        models=[ModelScore(**Cell.of(r).__dict__, model=r["model"]) for r in by_model]
        + [
            ModelScore(**Cell.of(r).__dict__, model=r["model"], source=r["source"])
            for r in production
        ],
        failures=[
            Failure(
                id=f["id"],
                run_id=f["run_id"],
                error=f["error"],
                error_kind=f["error_kind"],
                created_at=f["created_at"],
                model=f["model"],
                query=f["query"],
            )
            for f in failures
        ],
        production=[ProductionTotals.of_row(r) for r in production_totals],
    )


def model_metrics(
    engine: Engine, workspace_id: int, run_id: int | None, source: str | None = None
) -> ModelMetrics:
    """Model x metric cells (one run, or every run and, unless ``source`` says otherwise,
    production scores by source as "model (source)" rows)."""
    runs, sources = _sources(source)
    with engine.connect() as conn:
        rows = (
            q.score_moments(conn, workspace_id, by=("model", "metric"), run_id=run_id)
            if runs
            else []
        )
        if run_id is None and sources != []:
            for r in q.production_moments(
                conn, workspace_id, by=("source", "model", "metric"), sources=sources
            ):
                rows.append({**r, "model": production_label(r["model"], r["source"])})
    return ModelMetrics(
        models=sorted({r["model"] for r in rows}),
        metrics=sorted({r["metric"] for r in rows}),
        cells={(r["model"], r["metric"]): Cell.of(r) for r in rows},
    )


def production_cells(
    engine: Engine, workspace_id: int, models: set[str]
) -> list[tuple[str, str, str, Cell]]:
    """(model, source, metric, cell) of these models' production scores, every day so far,
    clustered by trace (as the compare page's production panel)."""
    with engine.connect() as conn:
        rows = q.production_moments(conn, workspace_id, by=("source", "model", "metric"))
    return sorted(
        (r["model"], r["source"], r["metric"], Cell.of(r)) for r in rows if r["model"] in models
    )


def production_cells_by_prompt(
    engine: Engine, workspace_id: int, models: set[str]
) -> list[tuple[str, str | None, str, str, Cell]]:
    """(model, prompt version, source, metric, cell) of these models' production scores,
    as :func:`production_cells`, with each score's prompt version as its span (else its
    trace) names it, None where neither does."""
    with engine.connect() as conn:
        rows = q.production_moments(
            conn, workspace_id, by=("source", "model", "metric", "prompt"), models=sorted(models)
        )
    return sorted(
        ((r["model"], r["prompt"], r["source"], r["metric"], Cell.of(r)) for r in rows),
        key=lambda x: (x[0], x[1] or "", x[2], x[3]),
    )


def heatmap(
    engine: Engine,
    workspace_id: int,
    run_id: int | None,
    metric: str | None,
    *,
    production: bool = True,
) -> Heatmap:
    """Model x theme cells, over one metric or all of them; with ``production``, a row per
    production source and model ("gpt-4o (online)") in the PRODUCTION_THEME column."""
    operational = operational_types()
    with engine.connect() as conn:
        rows = q.score_moments(
            conn,
            workspace_id,
            by=("model", "theme"),
            run_id=run_id,
            metric=metric,
            operational=operational,
            quality_only=metric is None,  # over all metrics: quality only
            clustered=False,  # the heatmap shows means and counts, no interval
        )
        prod = (
            q.production_moments(
                conn,
                workspace_id,
                by=("source", "model"),
                metric=metric,
                operational=operational,
                quality_only=metric is None,
            )
            if production
            else []
        )
    labels = {production_label(r["model"], r["source"]): (r["model"], r["source"]) for r in prod}
    for r in prod:
        rows.append(
            {**r, "model": production_label(r["model"], r["source"]), "theme": PRODUCTION_THEME}
        )
    return Heatmap(
        models=sorted({r["model"] for r in rows if r["model"] not in labels}) + sorted(labels),
        themes=sorted({r["theme"] for r in rows}),
        cells={(r["model"], r["theme"]): Cell.of(r) for r in rows},
        production=labels,
    )


def trends(
    engine: Engine, workspace_id: int, metric: str | None, days: int, source: str | None = None
) -> Trends:
    """Per model, one metric's daily mean with its interval: runs' scores per model, and
    production scores per source and model as their own series (clustered by trace).
    ``source`` narrows: run, production, or one production source."""
    runs, sources = _sources(source)
    since = since_days(days)
    with engine.connect() as conn:
        rows = (
            q.score_moments(conn, workspace_id, by=("model", "day"), metric=metric, since=since)
            if runs
            else []
        )
        for r in rows:
            r["source"] = "run"
        if sources != []:
            rows += q.production_moments(
                conn,
                workspace_id,
                by=("source", "model", "day"),
                metric=metric,
                since=since,
                sources=sources,
            )
    # every day from the first with scores to today, so that gaps show as gaps
    seen = sorted({r["day"] for r in rows})
    day_list: list[str] = []
    if seen:
        first = datetime.strptime(seen[0], "%Y-%m-%d").replace(tzinfo=UTC).date()
        last = max(datetime.now(UTC).date(), datetime.strptime(seen[-1], "%Y-%m-%d").date())
        day_list = [str(first + timedelta(days=i)) for i in range((last - first).days + 1)]
    cells = {(r["source"], r["model"], r["day"]): Cell.of(r) for r in rows}
    groups = sorted({(r["source"] != "run", r["source"], r["model"]) for r in rows})
    return Trends(
        days=day_list,
        series=[
            TrendSeries(
                model=m,
                mean=[_get(cells, (src, m, d), "mean") for d in day_list],
                low=[_get(cells, (src, m, d), "low") for d in day_list],
                high=[_get(cells, (src, m, d), "high") for d in day_list],
                n=[_get(cells, (src, m, d), "n") for d in day_list],
                source=src,
                label=production_label(m, src),
                clusters=[_get(cells, (src, m, d), "clusters") for d in day_list],
            )
            for _, src, m in groups
        ],
    )


def _get(cells: dict[tuple[str, str, str], Cell], key: tuple[str, str, str], attr: str) -> Any:
    cell = cells.get(key)
    return getattr(cell, attr) if cell is not None else None
