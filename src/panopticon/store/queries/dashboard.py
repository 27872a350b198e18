"""Aggregates for the dashboard, computed in the database (GROUP BY), never by loading rows.

Each returns sums (per query, then per group) so that the service computes means and
intervals clustered by query exactly as the run summaries do, whatever the number of
scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.online.select import prompt_keys
from panopticon.store.queries.score_model import NO_MODEL, SEVERAL_MODELS, joined_score_model
from panopticon.store.tables import Metric, Model, Query, Result, Run, Score, Span, Trace

__all__ = [
    "NO_MODEL",
    "SEVERAL_MODELS",
    "day_of",
    "production_moments",
    "production_totals",
    "recent_failures",
    "run_days",
    "score_moments",
    "totals",
]


def day_of(conn: Connection, column: Any) -> Any:
    """``YYYY-MM-DD`` (UTC) of a timestamp column, on either backend."""
    if conn.dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
    return sa.func.substr(column, 1, 10)  # SQLite stores UTC 'YYYY-MM-DD HH:MM:SS'


def totals(conn: Connection, workspace_id: int, since: datetime | None) -> dict[str, Any]:
    runs = sa.select(Run.c.id).where(Run.c.workspace_id == workspace_id)
    if since is not None:
        runs = runs.where(Run.c.created_at >= since)
    r = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(Result.c.error.is_not(None)),
            sa.func.coalesce(sa.func.sum(Result.c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(Result.c.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(Result.c.cost_usd).filter(Result.c.cached.is_(False)), 0),
            sa.func.count().filter(Result.c.cached.is_(True)),
            sa.func.count().filter(Result.c.error.is_(None), Result.c.cost_usd.is_(None)),
        ).where(Result.c.run_id.in_(runs))
    ).one()
    n_runs = conn.scalar(sa.select(sa.func.count()).select_from(runs.subquery()))
    return {
        "runs": int(n_runs or 0),
        "answers": int(r[0]),
        "failed": int(r[1]),
        "cached": int(r[5]),
        "input_tokens": int(r[2]),
        "output_tokens": int(r[3]),
        "cost_usd": float(r[4]),
        "unknown_cost": int(r[6]),
    }


def production_totals(
    conn: Connection, workspace_id: int, since: datetime | None
) -> list[dict[str, Any]]:
    """Per production source (online, guardrail, human, api): the traces scored, scores,
    score errors and what their judges took (tokens; cost of the calls that were not cache
    hits, as for runs' judges)."""
    q = (
        sa.select(
            Score.c.source.label("source"),
            sa.func.count(sa.distinct(Score.c.trace_id)).label("traces"),
            sa.func.count().label("scores"),
            sa.func.count().filter(Score.c.error.is_not(None)).label("errors"),
            sa.func.coalesce(sa.func.sum(Score.c.judge_input_tokens), 0).label("judge_input"),
            sa.func.coalesce(sa.func.sum(Score.c.judge_output_tokens), 0).label("judge_output"),
            sa.func.coalesce(
                sa.func.sum(Score.c.judge_cost_usd).filter(Score.c.judge_cached.is_(False)), 0
            ).label("judge_cost_usd"),
        )
        .where(Score.c.workspace_id == workspace_id, Score.c.trace_id.is_not(None))
        .group_by(Score.c.source)
        .order_by(Score.c.source)
    )
    if since is not None:
        q = q.where(Score.c.created_at >= since)
    return [dict(r._mapping) for r in conn.execute(q)]


def run_days(conn: Connection, workspace_id: int, since: datetime | None) -> list[dict[str, Any]]:
    day = day_of(conn, Run.c.created_at)
    q = (
        sa.select(day.label("day"), Run.c.status, sa.func.count().label("n"))
        .where(Run.c.workspace_id == workspace_id)
        .group_by(day, Run.c.status)
        .order_by(day)
    )
    if since is not None:
        q = q.where(Run.c.created_at >= since)
    return [dict(r._mapping) for r in conn.execute(q)]


def score_moments(
    conn: Connection,
    workspace_id: int,
    *,
    by: tuple[str, ...],
    run_id: int | None = None,
    metric: str | None = None,
    since: datetime | None = None,
    judges: bool = False,
    operational: Sequence[str] = (),
    quality_only: bool = False,
    clustered: bool = True,
) -> list[dict[str, Any]]:
    """Per group, the sums that give a mean of normalised scores (0..1, higher is better;
    pass/fail counts as 1/0) and its interval clustered by query: n, clusters, total,
    squares, totals_sq, totals_sizes, sizes_sq, sizes_cubed (see
    :class:`panopticon.stats.intervals.ClusterSums`), the same for pass/fail (``pass_``
    prefix: n is the judged-with-a-threshold count, total the passed count; also
    ``with_threshold`` and ``passed``), and errors.

    Scores of one query (repeats, and cached re-runs of the same answer) are one cluster.
    ``by`` names the groups: any of model, metric, theme, day; ``quality_only`` leaves the
    ``operational`` metric types out;
    ``judges`` adds the judges' score count, tokens and cost; ``clustered=False`` skips the
    per-query sums (for a view that shows no interval). Scores carry their workspace,
    model and query, so only a theme needs a join (to the query).

    Two passes: the group sums in one (as narrow as before), the per-query sums in a
    second that sorts only the few columns a cluster needs (wider rows spilled the sort
    to disk on PostgreSQL and doubled the time)."""
    columns = {
        "model": Score.c.model_id,
        "metric": Score.c.metric_id,
        "theme": Query.c.theme,
        "day": day_of(conn, Score.c.created_at),
    }

    def scoped(q: Any) -> Any:
        # offline views: scores of run results (a production trace's scores have no model)
        q = q.where(Score.c.workspace_id == workspace_id, Score.c.model_id.is_not(None))
        if run_id is not None:
            q = q.where(Score.c.run_id == run_id)
        q = _by_metric(q, workspace_id, metric, operational if quality_only else ())
        if since is not None and older:
            # by the runs of the period (a scan by time would read at random); skipped when
            # every run is in the period, the common case, which then reads in index order
            q = q.where(
                Score.c.run_id.in_(
                    sa.select(Run.c.id).where(
                        Run.c.workspace_id == workspace_id, Run.c.created_at >= since
                    )
                )
            )
        return q

    older = since is not None and _older_runs(conn, workspace_id, since)
    sums = _score_sums()
    if judges:  # the judges' count, tokens and cost: each aggregate costs a little
        sums |= {
            "scores": sa.func.count(),
            "judge_cost_usd": sa.func.coalesce(
                sa.func.sum(Score.c.judge_cost_usd).filter(Score.c.judge_cached.is_(False)), 0
            ),
            "judge_input": sa.func.coalesce(sa.func.sum(Score.c.judge_input_tokens), 0),
            "judge_output": sa.func.coalesce(sa.func.sum(Score.c.judge_output_tokens), 0),
        }
    source: Any = Score
    if "theme" in by:  # the one join: scores carry the query, not its theme
        source = Score.join(Query, Query.c.id == Score.c.query_id)
    rows = _grouped(conn, scoped(_group_select(by, columns, sums).select_from(source)))
    if clustered and run_id is not None and {"model", "metric"} <= set(by):
        if _repeats(conn, run_id):
            _add_cluster_sums(conn, rows, by, columns, scoped)
        else:  # one run without repeats: one score per model, metric and query
            for r in rows:
                r |= {
                    "clusters": r["n"],
                    "totals_sq": r["squares"],
                    "totals_sizes": r["total"],
                    "sizes_sq": r["n"],
                    "sizes_cubed": r["n"],
                    "pass_clusters": r["with_threshold"],
                    "pass_totals_sq": r["passed"],
                    "pass_totals_sizes": r["passed"],
                    "pass_sizes_sq": r["with_threshold"],
                    "pass_sizes_cubed": r["with_threshold"],
                }
    elif clustered:
        _add_cluster_sums(conn, rows, by, columns, scoped)
    _name_ids(conn, workspace_id, rows, [b for b in ("model", "metric") if b in by])
    return sorted(rows, key=lambda r: tuple(str(r[b]) for b in by))


def _repeats(conn: Connection, run_id: int) -> bool:
    """Whether the run has a repeat of some query and model (its unique index answers)."""
    q = sa.select(Result.c.id).where(Result.c.run_id == run_id, Result.c.repeat > 0).limit(1)
    return conn.execute(q).first() is not None


def _add_cluster_sums(
    conn: Connection,
    rows: list[dict[str, Any]],
    by: tuple[str, ...],
    columns: dict[str, Any],
    scoped: Callable[[Any], Any],
    cluster: Any = Score.c.query_id,
    source: Any = Score,
) -> None:
    """Add to each group's row the sums over its clusters (queries; for production scores
    their traces) that a cluster-robust variance needs; the sort covers only the few
    columns a cluster needs."""
    # per cluster (group x query), then per group; a theme is its query's, so clusters
    # are formed from the scores alone and joined to their query for it
    direct = [b for b in by if b != "theme"]
    # grouped by model, then query, then the rest: the order of ix_score_workspace_model_query,
    # which holds every column this pass reads, so that a model's scores are read in query
    # order from the index alone instead of hashed or sorted (the groups are the same in any
    # order)
    keys = [columns[b] for b in direct if b == "model"]
    keys += [cluster, *(columns[b] for b in direct if b != "model")]
    inner = scoped(
        sa.select(
            *[columns[b].label(b) for b in direct],
            cluster.label("query_id"),
            sa.func.count(_VALUE).label("n"),
            sa.func.coalesce(sa.func.sum(_VALUE), 0.0).label("t"),
            sa.func.count(Score.c.passed).label("pn"),
            sa.func.coalesce(sa.func.sum(_PASSED), 0).label("pt"),
        )
        .select_from(source)
        .group_by(*keys)
    ).subquery()
    group_columns: dict[str, Any] = {b: inner.c[b] for b in direct}
    clustered: Any = inner
    if "theme" in by:
        clustered = inner.join(Query, Query.c.id == inner.c.query_id)
        group_columns["theme"] = Query.c.theme
    n, t, pn, pt = inner.c.n, inner.c.t, inner.c.pn, inner.c.pt
    fn, fpn = sa.cast(n, sa.Float), sa.cast(pn, sa.Float)
    cluster_sums = {
        "clusters": sa.func.count().filter(n > 0),
        "totals_sq": sa.func.sum(t * t),
        "totals_sizes": sa.func.sum(t * n),
        "sizes_sq": sa.func.sum(n * n),
        # in floating point: n³ of a query scored 3 million times overflows 64 bits
        "sizes_cubed": sa.func.sum(fn * fn * fn),
        "pass_clusters": sa.func.count().filter(pn > 0),
        "pass_totals_sq": sa.func.sum(pt * pt),
        "pass_totals_sizes": sa.func.sum(pt * pn),
        "pass_sizes_sq": sa.func.sum(pn * pn),
        "pass_sizes_cubed": sa.func.sum(fpn * fpn * fpn),
    }
    outer = (
        sa.select(
            *[group_columns[b].label(b) for b in by],
            *[f.label(k) for k, f in cluster_sums.items()],
        )
        .select_from(clustered)
        .group_by(*[group_columns[b] for b in by])
    )
    if conn.dialect.name == "postgresql":
        # one hash entry per (group, query): PostgreSQL's default 4 MB spills 100,000 of
        # them to disk and takes twice as long; SET LOCAL ends with the transaction
        conn.exec_driver_sql("SET LOCAL work_mem = '32MB'")
        # PostgreSQL guesses far fewer (group, query) pairs than there are (a query's
        # distinct count is estimated from a sample) and so hashes every score instead of
        # reading the index in order, which took 2.5x as long (bench_dashboard_intervals.py)
        conn.exec_driver_sql("SET LOCAL enable_hashagg = off")
    spread = {tuple(r[b] for b in by): r for r in (r._mapping for r in conn.execute(outer))}
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_hashagg = on")  # for what else this reads
    for r in rows:
        found = spread.get(tuple(r[b] for b in by))
        for k in cluster_sums:
            r[k] = (found[k] if found is not None else 0) or 0


# the comparable value of a score: normalised, else pass/fail as 1/0
_VALUE = sa.case(
    (Score.c.normalized.is_not(None), Score.c.normalized),
    (Score.c.passed.is_(True), 1.0),
    (Score.c.passed.is_(False), 0.0),
    else_=None,
)
_PASSED = sa.case((Score.c.passed.is_(True), 1), else_=0)


def _by_metric(q: Any, workspace_id: int, metric: str | None, leave_out: Sequence[str]) -> Any:
    """Scores of one metric (by name), and none of the metric types in ``leave_out`` (the
    operational ones, latency and cost, when only quality counts)."""
    if metric is not None:
        q = q.where(
            Score.c.metric_id.in_(
                sa.select(Metric.c.id).where(
                    Metric.c.workspace_id == workspace_id, Metric.c.name == metric
                )
            )
        )
    if leave_out:
        q = q.where(
            Score.c.metric_id.not_in(
                sa.select(Metric.c.id).where(
                    Metric.c.workspace_id == workspace_id, Metric.c.type.in_(list(leave_out))
                )
            )
        )
    return q


def _score_sums() -> dict[str, Any]:
    """Per group of scores: the values' count, sum and sum of squares, the passes, the
    pass/fail scores and the errors (the moments an interval is made from)."""
    return {
        "n": sa.func.count(_VALUE),
        "total": sa.func.coalesce(sa.func.sum(_VALUE), 0.0),
        "squares": sa.func.coalesce(sa.func.sum(_VALUE * _VALUE), 0.0),
        "passed": sa.func.count().filter(Score.c.passed.is_(True)),
        "with_threshold": sa.func.count().filter(Score.c.passed.is_not(None)),
        "errors": sa.func.count().filter(Score.c.error.is_not(None)),
    }


def _group_select(by: Sequence[str], columns: dict[str, Any], sums: dict[str, Any]) -> Any:
    """``SELECT <by columns>, <sums> ... GROUP BY <by columns>`` (its FROM and WHERE to add)."""
    return sa.select(
        *[columns[b].label(b) for b in by], *[f.label(k) for k, f in sums.items()]
    ).group_by(*[columns[b] for b in by])


def _grouped(conn: Connection, statement: Any) -> list[dict[str, Any]]:
    """The grouped sums as rows, with the pass rate's own count and total named as the
    value's are (``pass_n``, ``pass_total``)."""
    rows = [dict(r._mapping) for r in conn.execute(statement)]
    for r in rows:
        r["pass_n"], r["pass_total"] = r["with_threshold"], r["passed"]
    return rows


_NAMED = {"model": Model, "metric": Metric}


def _name_ids(
    conn: Connection, workspace_id: int, rows: list[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Model and metric ids to their names, in place (the two tables are small)."""
    for key in keys:
        table = _NAMED[key]
        names = {
            int(i): str(n)
            for i, n in conn.execute(
                sa.select(table.c.id, table.c.name).where(table.c.workspace_id == workspace_id)
            )
        }
        for r in rows:
            r[key] = names.get(r[key], f"{key} {r[key]}")


def production_moments(
    conn: Connection,
    workspace_id: int,
    *,
    by: tuple[str, ...],
    metric: str | None = None,
    since: datetime | None = None,
    sources: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    operational: Sequence[str] = (),
    quality_only: bool = False,
) -> list[dict[str, Any]]:
    """The sums of :func:`score_moments` for scores of production traces and spans (online
    rules, guardrails, people, outside clients), grouped by any of source, model, metric,
    day, prompt, and clustered by trace: several scores of one trace (its spans, or one span scored
    again by a new rule version) are one cluster, not independent evidence.

    A score's model is its span's (the model served, else the one requested); a score of a
    whole trace (user feedback, a person's label) takes its spans' model (each span's
    served, else requested) when they name one, SEVERAL_MODELS when they name more, and
    NO_MODEL when none (or the trace has not arrived): store.queries.score_model, which
    the results filter follows too.
    ``models`` keeps these groups only. A score's prompt is the prompt version
    its span's attributes name, else its trace's metadata (``prompt_keys("version")``, as
    online rules read it), None when neither does.

    Each row also counts ``unscored``: the scores with neither a 0..1 value nor a pass/fail
    (a label such as "thumbs_up", a number on a metric without a scale), which the mean
    cannot use; and ``labels``, their labels with counts, most frequent first."""
    model = joined_score_model(conn.dialect.name)
    columns = {
        "source": Score.c.source,
        "model": model,
        "metric": Score.c.metric_id,
        "day": day_of(conn, Score.c.created_at),
        "prompt": _production_prompt(conn),
    }
    source: Any = Score
    if "model" in by or "prompt" in by or models is not None:
        # the span's model: one lookup by the span's key per score; a trace's own score:
        # its spans', by the trace's key (joined_score_model)
        source = Score.outerjoin(
            Span,
            (Span.c.workspace_id == Score.c.workspace_id)
            & (Span.c.trace_id == Score.c.trace_id)
            & (Span.c.span_id == Score.c.span_id),
        )
    if "prompt" in by:
        # every score's trace, for its metadata (a span's score too)
        source = source.outerjoin(
            _TRACE_OF_SCORE,
            (_TRACE_OF_SCORE.c.workspace_id == Score.c.workspace_id)
            & (_TRACE_OF_SCORE.c.id == Score.c.trace_id),
        )

    def scoped(q: Any) -> Any:
        q = q.where(Score.c.workspace_id == workspace_id, Score.c.trace_id.is_not(None))
        if sources is not None:
            q = q.where(Score.c.source.in_(list(sources)))
        if models is not None:
            q = q.where(model.in_(list(models)))
        q = _by_metric(q, workspace_id, metric, operational if quality_only else ())
        if since is not None:
            q = q.where(Score.c.created_at >= since)
        return q

    sums = _score_sums() | {"unscored": sa.func.count().filter(_UNSCORED)}
    rows = _grouped(conn, scoped(_group_select(by, columns, sums).select_from(source)))
    _add_cluster_sums(conn, rows, by, columns, scoped, cluster=Score.c.trace_id, source=source)
    _add_labels(conn, rows, by, columns, scoped, source)
    # the model is already a name here (the span's); the metric is an id
    _name_ids(conn, workspace_id, rows, ["metric"] if "metric" in by else [])
    return sorted(rows, key=lambda r: tuple(str(r[b]) for b in by))


# a score the mean cannot use: no error, and neither a 0..1 value nor a pass/fail
_UNSCORED = sa.and_(Score.c.normalized.is_(None), Score.c.passed.is_(None), Score.c.error.is_(None))


_TRACE_OF_SCORE = Trace.alias("trace_of_score")


def _production_prompt(conn: Connection) -> Any:
    """A production score's prompt version, as text: see production_moments."""

    def field(column: Any, key: str) -> Any:
        if conn.dialect.name == "postgresql":
            return column.op("->>", return_type=sa.Text())(sa.literal(key, sa.String))
        # a quoted key: 'prompt.version' is one key, not a path
        return sa.cast(sa.func.json_extract(column, sa.literal(f'$."{key}"')), sa.Text())

    keys = prompt_keys("version")
    return sa.func.coalesce(
        *(field(Span.c.attributes, k) for k in keys),
        *(field(_TRACE_OF_SCORE.c.metadata, k) for k in keys),
    )


def _add_labels(
    conn: Connection,
    rows: list[dict[str, Any]],
    by: tuple[str, ...],
    columns: dict[str, Any],
    scoped: Callable[[Any], Any],
    source: Any,
) -> None:
    """Add to each group's row the labels of its unscored scores (see _UNSCORED) with their
    counts, most frequent first: what such a group holds, since it has no mean. Read only
    when some group has them. A score with a value (a number on a metric with no scale) is
    counted as a value, under "", whatever its label: `{"label": "thumbs_up", "value": 1}`
    has a value, on no scale, and is not a label without one."""
    for r in rows:
        r["labels"] = []
    if not any(r["unscored"] for r in rows):
        return
    label = sa.case(
        (Score.c.value.is_(None), sa.func.coalesce(Score.c.label, "")), else_=sa.literal("")
    )
    q = scoped(
        sa.select(
            *[columns[b].label(b) for b in by], label.label("label"), sa.func.count().label("n")
        )
        .select_from(source)
        .where(_UNSCORED)
        .group_by(*[columns[b] for b in by], label)
    )
    found: dict[tuple[Any, ...], list[tuple[str, int]]] = {}
    for m in (r._mapping for r in conn.execute(q)):
        found.setdefault(tuple(m[b] for b in by), []).append((str(m["label"]), int(m["n"])))
    for r in rows:
        r["labels"] = sorted(found.get(tuple(r[b] for b in by), []), key=lambda x: (-x[1], x[0]))


def _older_runs(conn: Connection, workspace_id: int, since: datetime) -> bool:
    oldest = conn.scalar(
        sa.select(sa.func.min(Run.c.created_at)).where(Run.c.workspace_id == workspace_id)
    )
    if oldest is None:
        return False
    if oldest.tzinfo is None:  # SQLite gives naive UTC
        from datetime import UTC

        oldest = oldest.replace(tzinfo=UTC)
    return bool(oldest < since)


def recent_failures(conn: Connection, workspace_id: int, limit: int) -> list[dict[str, Any]]:
    # the newest failures first, from the (small) index of failures alone
    latest = (
        sa.select(Result.c.id)
        .where(
            Result.c.error.is_not(None),
            Result.c.run_id.in_(sa.select(Run.c.id).where(Run.c.workspace_id == workspace_id)),
        )
        .order_by(Result.c.created_at.desc())
        .limit(limit)
        .subquery()
    )
    q = (
        sa.select(
            Result.c.id,
            Result.c.run_id,
            Result.c.error,
            Result.c.error_kind,
            Result.c.created_at,
            Model.c.name.label("model"),
            Query.c.text.label("query"),
        )
        .select_from(
            Result.join(Run, Run.c.id == Result.c.run_id)
            .join(Model, Model.c.id == Result.c.model_id)
            .join(Query, Query.c.id == Result.c.query_id)
        )
        .where(Result.c.id.in_(sa.select(latest.c.id)))
        .order_by(Result.c.created_at.desc())
    )
    return [dict(r._mapping) for r in conn.execute(q)]
