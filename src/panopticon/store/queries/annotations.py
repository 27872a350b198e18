"""Human labels on results, and what calibration compares them with."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.store.queries.catalog import chunks
from panopticon.store.tables import Annotation, Metric, Result, Run, Score
from panopticon.store.tables.base import utcnow

__all__ = ["calibration_pairs", "metric_scales", "result_metrics", "upsert_annotations"]


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
