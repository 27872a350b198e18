"""Evaluate one query now (the design's ``POST /api/judge/evaluate/query``).

It is a run like any other (recorded, cached, durable), built from the workspace's
registered models and stored metrics instead of a suite file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from panopticon.errors import ConfigError, Issue
from panopticon.evaluation.sources import Located
from panopticon.evaluation.suite import LoadedSuite, parse_suite
from panopticon.services.registry import ModelRegistry
from panopticon.services.runs import prepare_loaded
from panopticon.settings import Settings
from panopticon.store.engine import Engine
from panopticon.store.queries import runs as run_queries
from panopticon.store.tables import Metric

__all__ = ["build_suite", "evaluate_query"]


def _metric_definitions(engine: Engine, workspace_id: int, ids: list[int]) -> list[Any]:
    with engine.connect() as conn:
        rows = {
            r.id: r
            for r in conn.execute(
                sa.select(Metric).where(Metric.c.workspace_id == workspace_id, Metric.c.id.in_(ids))
            )
        }
    missing = [i for i in ids if i not in rows]
    if missing:
        raise ConfigError(
            Issue(
                f"no metric {', '.join(map(str, missing))} in this workspace",
                field="evaluation_prompt_ids",
                hint="create metrics with POST /api/metrics",
            )
        )
    return [dict(rows[i].definition) for i in ids]


def build_suite(
    engine: Engine,
    workspace_id: int,
    env: Mapping[str, str],
    *,
    name: str,
    model_id: str,
    metric_ids: list[int],
    judge_model: str | None,
    queries: list[dict[str, Any]],
) -> LoadedSuite:
    """A suite from the workspace's registered models and stored metrics."""
    registry = ModelRegistry(engine, workspace_id)
    model = registry.spec(model_id, "model_id")
    metrics = _metric_definitions(engine, workspace_id, metric_ids)
    data: dict[str, Any] = {
        "name": name,
        "models": [model.model_dump(mode="json", exclude_none=True)],
        "queries": queries,
        "metrics": metrics,
        "concurrency": model.concurrency or 10,
    }
    if judge_model:
        judge_spec = registry.spec(judge_model, "judge_model")
        data["judge"] = (
            judge_spec.id
            if judge_spec.id == model.id
            else judge_spec.model_dump(mode="json", exclude_none=True)
        )
    return parse_suite(Located(data, {}, "request"), env, base_dir=Path.cwd())


async def evaluate_query(
    engine: Engine,
    settings: Settings,
    workspace_id: int,
    workspace: str,
    env: Mapping[str, str],
    body: dict[str, Any],
) -> dict[str, Any]:
    loaded = build_suite(
        engine,
        workspace_id,
        env,
        name="api: evaluate query",
        model_id=body["model_id"],
        metric_ids=body.get("evaluation_prompt_ids", []),
        judge_model=body.get("judge_model"),
        queries=[{"text": body["query"], "theme": body.get("theme") or "default"}],
    )
    model = loaded.models[0]
    scoped = settings.model_copy(update={"workspace": workspace})
    execution = prepare_loaded(scoped, engine, loaded, None, None, True)
    status = await execution.run()
    with engine.connect() as conn:
        (row,) = list(run_queries.iter_result_rows(conn, execution.run_id))
    return {
        "run_id": execution.run_id,
        "status": status,
        "query_id": row["query_id"],
        "model_id": model.id,
        "theme": row["theme"],
        "response": row["response"],
        "error": row["error"],
        "cached": row["cached"],
        "latency_ms": row["latency_ms"],
        "input_tokens": row["input_tokens"],
        "output_tokens": row["output_tokens"],
        "cost_usd": row["cost_usd"],
        "scores": [
            {
                "metric": name,
                **{
                    k: s[k]
                    for k in ("value", "normalized", "passed", "reasoning", "error", "judge_model")
                },
            }
            for name, s in row["scores"].items()
        ],
    }
