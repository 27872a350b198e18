"""Reading scores back: filtered, paged, always inside one workspace."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Self

from panopticon.errors import ConfigError, Issue, NotFoundError
from panopticon.store.engine import Engine, read
from panopticon.store.queries.results import (
    SOURCE_FILTERS,
    ResultFilters,
    result_detail,
    search_scores,
)

__all__ = [
    "SOURCE_FILTERS",
    "Label",
    "ResultDetail",
    "ResultFilters",
    "ResultPage",
    "ScoreDetail",
    "ScoreRow",
    "check_source",
    "find_results",
    "get_result",
    "iter_results",
]


class _FromRow:
    @classmethod
    def of(cls, row: dict[str, Any]) -> Self:
        names = _FIELD_NAMES.get(cls)
        if names is None:  # once per class: dataclasses.fields() per row cost a third
            names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
        return cls(*map(row.get, names))


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


@dataclass(frozen=True)
class ScoreRow(_FromRow):
    """One score with what it is about: a run's answer (its run, result, query and model),
    or a production trace or span (``trace_id``, ``span_id``; the span's model as the
    model, its input as the query, its output as the response). ``source``: run, online,
    guardrail, human or api; ``rule_version``: the online rule's version that scored it."""

    id: Any
    run_id: int | None
    result_id: Any
    query_id: int | None
    query: str | None
    theme: str | None
    model_id: str | None
    metric_id: int
    metric: str
    value: float | None
    normalized: float | None
    passed: bool | None
    label: str | None
    reasoning: str | None
    error: str | None
    judge_model: str | None
    response: str | None
    latency_ms: float | None
    cost_usd: float | None
    created_at: datetime
    source: str
    trace_id: str | None
    span_id: str | None
    rule_version: str | None

    @property
    def production(self) -> bool:
        """A score of a production trace or span (not of a run's answer)."""
        return self.result_id is None and self.trace_id is not None


@dataclass(frozen=True)
class ResultPage:
    items: list[ScoreRow]
    total: int
    exact: bool  # False: total is a lower bound (a broad filter is not counted to the end)


@dataclass(frozen=True)
class ScoreDetail(_FromRow):
    metric: str
    metric_id: int
    value: float | None
    normalized: float | None
    passed: bool | None
    reasoning: str | None
    error: str | None
    judge_model: str | None
    judge_cached: bool | None
    judge_input_tokens: int | None
    judge_output_tokens: int | None
    judge_cost_usd: float | None


@dataclass(frozen=True)
class Label(_FromRow):
    """A person's label of one answer for one metric."""

    metric: str
    annotator: str
    value: float | None
    passed: bool | None
    comment: str | None


@dataclass(frozen=True)
class ResultDetail:
    """One answer with its prompt, every score and every person's label."""

    id: uuid.UUID
    run_id: int
    run_name: str
    model: str
    query_id: int
    query: str
    theme: str
    expected: str | None
    context: str | None
    repeat: int
    request: dict[str, Any]
    response_text: str | None
    finish_reason: str | None
    error: str | None
    cached: bool
    attempts: int
    latency_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    scores: list[ScoreDetail]
    labels: list[Label]


def check_source(source: str | None) -> str | None:
    """``source`` as a filter (empty: every score), or ConfigError naming the field."""
    source = (source or "").strip() or None
    if source is not None and source not in SOURCE_FILTERS:
        raise ConfigError(
            Issue(
                f"unknown source '{source}'",
                field="source",
                hint="run, production (every score of a trace or span), or one of "
                + ", ".join(SOURCE_FILTERS[2:]),
            )
        )
    return source


def find_results(
    engine: Engine, workspace_id: int, filters: ResultFilters, limit: int, offset: int
) -> ResultPage:
    """A page of scores, run and production ones together unless ``filters.source`` says
    which (``run``, ``production`` or one source by name)."""
    check_source(filters.source)
    rows, total, exact = read(
        engine, lambda conn: search_scores(conn, workspace_id, filters, limit, offset)
    )
    return ResultPage([ScoreRow.of(r) for r in rows], total, exact)


EXPORT_CAP = 100_000  # rows in one export: a larger one is narrowed by its filters


def iter_results(
    engine: Engine, workspace_id: int, filters: ResultFilters, cap: int = EXPORT_CAP
) -> Iterator[ScoreRow]:
    """Every score a filter selects, newest first, up to ``cap`` (for exports): read a
    page at a time."""
    check_source(filters.source)
    page = 1000
    for offset in range(0, cap, page):
        with engine.connect() as conn:
            rows, _, _ = search_scores(
                conn, workspace_id, filters, min(page, cap - offset), offset, count_cap=0
            )
        yield from (ScoreRow.of(r) for r in rows)
        if len(rows) < page:
            return


def get_result(engine: Engine, workspace_id: int, result_id: str) -> ResultDetail:
    """One answer of this workspace with its scores and labels; NotFoundError otherwise."""
    try:
        rid = uuid.UUID(result_id)
    except ValueError:
        raise NotFoundError(f"'{result_id}' is not a result id") from None
    with engine.connect() as conn:
        found = result_detail(conn, workspace_id, rid)
    if found is None:
        raise NotFoundError(f"no result {result_id} in this workspace")
    return ResultDetail(
        id=found["id"],
        run_id=found["run_id"],
        run_name=found["run_name"],
        model=found["model"],
        query_id=found["query_id"],
        query=found["query"],
        theme=found["theme"],
        expected=found["expected"],
        context=found["context"],
        repeat=found["repeat"],
        request=found["request"] or {},
        response_text=found["response_text"],
        finish_reason=found["finish_reason"],
        error=found["error"],
        cached=bool(found["cached"]),
        attempts=found["attempts"],
        latency_ms=found["latency_ms"],
        input_tokens=found["input_tokens"],
        output_tokens=found["output_tokens"],
        cost_usd=found["cost_usd"],
        scores=[ScoreDetail.of(s) for s in found["scores"]],
        labels=[Label.of(label) for label in found["labels"]],
    )
