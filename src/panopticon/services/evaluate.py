"""Evaluate one query now (the design's ``POST /api/judge/evaluate/query``).

It is a run like any other (recorded, cached, durable), built from the workspace's
registered models and stored metrics instead of a suite file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panopticon.evaluation.endpoints import Access
from panopticon.evaluation.sources import Located
from panopticon.evaluation.suite import LoadedSuite, parse_suite
from panopticon.services.catalog import MetricCatalog
from panopticon.services.registry import ModelRegistry
from panopticon.services.runs import prepare_loaded
from panopticon.settings import Settings
from panopticon.store.engine import Engine
from panopticon.store.queries import runs as run_queries

__all__ = [
    "Evaluation",
    "ScoreOutcome",
    "build_suite",
    "evaluate_query",
    "expand_registered_models",
]


def expand_registered_models(
    registry: ModelRegistry, body: dict[str, Any]
) -> tuple[dict[str, Any], frozenset[str]]:
    """A suite whose ``models`` and ``judges`` entries may be registered models' ids (and
    whose ``judge`` may be one): each id replaced by the model as registered, its endpoint
    read from its provider now. Returns the suite and the ids so expanded, whose endpoints
    an admin chose."""
    body = dict(body)
    registered: set[str] = set()

    def expand(entry: Any, field: str) -> Any:
        if not isinstance(entry, str):
            return entry
        spec = registry.spec(entry, field)
        registered.add(spec.id)
        return spec.model_dump(mode="json", exclude_none=True)

    for key in ("models", "judges"):
        if isinstance(body.get(key), list):
            body[key] = [expand(m, f"suite.{key}[{i}]") for i, m in enumerate(body[key])]
    judge = body.get("judge")
    named = {m.get("id") for m in body.get("models") or [] if isinstance(m, dict)}
    if isinstance(judge, str) and judge not in named:
        body["judge"] = expand(judge, "suite.judge")
    return body, frozenset(registered)


def build_suite(
    engine: Engine,
    workspace_id: int,
    settings: Settings,
    env: Mapping[str, str],
    *,
    name: str,
    model_id: str,
    metric_ids: list[int],
    judge_model: str | None,
    queries: list[dict[str, Any]],
) -> LoadedSuite:
    """A suite from the workspace's registered models and stored metrics."""
    registry = ModelRegistry(engine, workspace_id, settings)
    model = registry.spec(model_id, "model_id")
    metrics = MetricCatalog.definitions_in(
        engine, workspace_id, metric_ids, "evaluation_prompt_ids"
    )
    data: dict[str, Any] = {
        "name": name,
        "models": [model.model_dump(mode="json", exclude_none=True)],
        "queries": queries,
        "metrics": metrics,
        "concurrency": model.concurrency or 10,
    }
    registered = {model.id}
    if judge_model:
        judge_spec = registry.spec(judge_model, "judge_model")
        registered.add(judge_spec.id)
        data["judge"] = (
            judge_spec.id
            if judge_spec.id == model.id
            else judge_spec.model_dump(mode="json", exclude_none=True)
        )
    return parse_suite(
        Located(data, {}, "request"),
        env,
        base_dir=Path.cwd(),
        access=Access.server(settings, registered=frozenset(registered)),
        directory=registry.directory,
    )


@dataclass(frozen=True)
class ScoreOutcome:
    metric: str
    value: float | None
    normalized: float | None
    passed: bool | None
    reasoning: str | None
    error: str | None
    judge_model: str | None


@dataclass(frozen=True)
class Evaluation:
    """One query's answer from one model, with its scores (a run of one case)."""

    run_id: int
    status: str
    query_id: int
    model_id: str
    theme: str | None
    response: str | None
    error: str | None
    cached: bool
    latency_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    scores: list[ScoreOutcome]


async def evaluate_query(
    engine: Engine,
    settings: Settings,
    workspace_id: int,
    workspace: str,
    env: Mapping[str, str],
    body: dict[str, Any],
) -> Evaluation:
    loaded = build_suite(
        engine,
        workspace_id,
        settings,
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
    return Evaluation(
        run_id=execution.run_id,
        status=status,
        query_id=row["query_id"],
        model_id=model.id,
        theme=row["theme"],
        response=row["response"],
        error=row["error"],
        cached=row["cached"],
        latency_ms=row["latency_ms"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cost_usd=row["cost_usd"],
        scores=[
            ScoreOutcome(
                metric=name,
                value=s["value"],
                normalized=s["normalized"],
                passed=s["passed"],
                reasoning=s["reasoning"],
                error=s["error"],
                judge_model=s["judge_model"],
            )
            for name, s in row["scores"].items()
        ],
    )
