"""Human labels on results, and what calibration compares them with."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.store.queries.catalog import chunks
from panopticon.store.tables import Annotation, Metric, Result, Run, Score
from panopticon.store.tables.base import utcnow
from panopticon.store.tables.runs import SCORE_SOURCES

__all__ = [
    "calibration_pairs",
    "metric_scales",
    "production_calibration_pairs",
    "result_metrics",
    "upsert_annotations",
]


def result_metrics(
    conn: Connection, workspace_id: int, result_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """For each result of the workspace: metric name -> the metric id its run used."""
    out: dict[uuid.UUID, dict[str, int]] = {}
    for part in chunks(list(dict.fromkeys(result_ids))):
        q = (
            sa.select(Result.c.id, Result.c.run_id)
            .join(Run, Run.c.id == Result.c.run_id)
            .where(Run.c.workspace_id == workspace_id, Result.c.id.in_(part))
        )
        runs = {r.id: r.run_id for r in conn.execute(q)}
        for rid in runs:
            out[rid] = {}
        if not runs:
            continue
        q2 = (
            sa.select(Score.c.run_id, Metric.c.name, Metric.c.id)
            .join(Metric, Metric.c.id == Score.c.metric_id)
            .where(Score.c.run_id.in_(set(runs.values())))
            .distinct()
        )
        by_run: dict[int, dict[str, int]] = {}
        for r in conn.execute(q2):
            by_run.setdefault(r.run_id, {})[r.name] = r.id
        for rid, run_id in runs.items():
            out[rid] = by_run.get(run_id, {})
    return out


def metric_scales(conn: Connection, metric_ids: list[int]) -> dict[int, tuple[float, float]]:
    """The [lowest, highest] scale of each of these metrics that has one (judges' scores)."""
    from panopticon.judges.base import spec_class

    out: dict[int, tuple[float, float]] = {}
    for part in chunks(list(dict.fromkeys(metric_ids))):
        q = sa.select(Metric.c.id, Metric.c.type, Metric.c.definition).where(Metric.c.id.in_(part))
        for mid, kind, definition in conn.execute(q):
            cls = spec_class(kind)
            if cls is None:
                continue
            scale = getattr(cls.model_validate(definition), "scale", None)
            if scale is not None:
                out[int(mid)] = (float(scale[0]), float(scale[1]))
    return out


def upsert_annotations(
    conn: Connection, workspace_id: int, rows: list[dict[str, Any]]
) -> tuple[int, int]:
    """Insert or replace labels (one per result, metric and annotator): (new, replaced)."""
    new = replaced = 0
    for row in rows:
        key = (
            (Annotation.c.result_id == row["result_id"])
            & (Annotation.c.metric_id == row["metric_id"])
            & (Annotation.c.annotator == row["annotator"])
        )
        values = {k: row[k] for k in ("value", "passed", "comment", "source")}
        if conn.execute(sa.select(Annotation.c.id).where(key)).first():
            conn.execute(sa.update(Annotation).where(key).values(**values))
            replaced += 1
        else:
            conn.execute(
                sa.insert(Annotation).values(
                    workspace_id=workspace_id,
                    result_id=row["result_id"],
                    metric_id=row["metric_id"],
                    annotator=row["annotator"],
                    created_at=utcnow(),
                    **values,
                )
            )
            new += 1
    return new, replaced


def calibration_pairs(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """Each label of the run's results beside the judge's score of the same metric."""
    q = (
        sa.select(
            Metric.c.name.label("metric"),
            Annotation.c.annotator,
            Annotation.c.result_id,
            Annotation.c.value.label("human_value"),
            Annotation.c.passed.label("human_passed"),
            Score.c.value.label("judge_value"),
            Score.c.passed.label("judge_passed"),
            Score.c.error.label("judge_error"),
        )
        .join(Metric, Metric.c.id == Annotation.c.metric_id)
        .join(Result, Result.c.id == Annotation.c.result_id)
        .join(
            Score,
            (Score.c.result_id == Annotation.c.result_id)
            & (Score.c.metric_id == Annotation.c.metric_id),
            isouter=True,
        )
        .where(Result.c.run_id == run_id)
        .order_by(Metric.c.name, Annotation.c.annotator)
    )
    return [dict(r._mapping) for r in conn.execute(q)]


def production_calibration_pairs(
    conn: Connection, workspace_id: int, sources: tuple[str, ...] | None = None
) -> list[dict[str, Any]]:
    """Each person's label on a production trace or span beside the newest score of each
    source (online, guardrail, api; ``sources`` narrows) for a metric of the same name on
    the same subject (the same span, or both about the whole trace). A label with no such
    score is left out: there is nothing to compare it with."""
    label_metric = Metric.alias("label_metric")
    score_metric = Metric.alias("score_metric")
    wanted = sources or tuple(s for s in SCORE_SOURCES if s not in ("run", "human"))
    q = (
        sa.select(
            label_metric.c.name.label("metric"),
            Annotation.c.id.label("label_id"),
            Annotation.c.annotator,
            Annotation.c.trace_id,
            Annotation.c.span_id,
            Annotation.c.value.label("human_value"),
            Annotation.c.passed.label("human_passed"),
            Score.c.source,
            Score.c.value.label("judge_value"),
            Score.c.passed.label("judge_passed"),
            Score.c.error.label("judge_error"),
            Score.c.created_at.label("judged_at"),
            Score.c.id.label("score_id"),
        )
        .select_from(Annotation)
        .join(label_metric, label_metric.c.id == Annotation.c.metric_id)
        .join(
            Score,
            (Score.c.workspace_id == workspace_id)
            & (Score.c.trace_id == Annotation.c.trace_id)
            & sa.or_(
                Score.c.span_id == Annotation.c.span_id,
                Score.c.span_id.is_(None) & Annotation.c.span_id.is_(None),
            ),
        )
        .join(
            score_metric,
            (score_metric.c.id == Score.c.metric_id) & (score_metric.c.name == label_metric.c.name),
        )
        .where(
            Annotation.c.workspace_id == workspace_id,
            Annotation.c.trace_id.is_not(None),
            Score.c.source.in_(list(wanted)),
        )
        .order_by(label_metric.c.name, Annotation.c.id, Score.c.created_at, Score.c.id)
    )
    newest: dict[tuple[int, str], dict[str, Any]] = {}
    for r in conn.execute(q):  # in time order: a later score of a source replaces an earlier
        newest[r.label_id, r.source] = dict(r._mapping)
    return list(newest.values())
