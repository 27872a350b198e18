"""Every model's (and prompt variant's) answers to each query of a run, side by side.

Shared by ``panopticon show RUN --answers``, ``GET /api/runs/{id}/answers`` and the
dashboard's answers page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from panopticon.errors import NotFoundError
from panopticon.evaluation.queries import query_label
from panopticon.store.engine import Engine
from panopticon.store.queries import runs as run_queries

__all__ = ["Answer", "AnswerScore", "QueryAnswers", "answers_side_by_side"]


@dataclass(frozen=True)
class AnswerScore:
    metric: str
    value: float | None
    passed: bool | None
    reasoning: str | None
    error: str | None


@dataclass(frozen=True)
class Answer:
    result_id: str
    model: str  # the model, or model@prompt with prompt variants
    prompt: str | None
    repeat: int
    response: str | None
    error: str | None
    latency_ms: float | None
    cost_usd: float | None
    scores: list[AnswerScore]


@dataclass(frozen=True)
class QueryAnswers:
    query_id: int
    external_id: str | None
    theme: str
    text: str
    expected: str | None
    answers: list[Answer] = field(default_factory=list)
    # where the run read it (absolute path and line; None for a suite sent without a file)
    file: str | None = None
    line: int | None = None
    # how messages name it: dataset id and file:line, else the start of its text
    label: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def answers_side_by_side(
    engine: Engine,
    run_id: int,
    *,
    query: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[QueryAnswers], int]:
    """Queries in run order, each with every answer (by model, then repeat), and how many
    queries the run has. ``query`` chooses one, by its database id or its dataset id;
    ``offset`` and ``limit`` page through the queries (only the page's answers are read)."""
    with engine.connect() as conn:
        ids = run_queries.run_query_ids(conn, run_id)
        if query is not None:
            ids = [int(query)] if query.isdigit() and int(query) in ids else []
            ids = ids or run_queries.query_ids_by_external_id(conn, run_id, query)
            file, _, line = query.rpartition(":")
            if not ids and file and line.isdigit():
                ids = run_queries.query_ids_by_place(conn, run_id, file, int(line))
            if not ids:
                raise NotFoundError(
                    f"run {run_id} has no query '{query}' (give its id in the dataset, or "
                    "FILE:LINE as `panopticon show RUN --answers` prints it)"
                )
        total = len(ids)
        page = ids[offset : None if limit is None else offset + limit]
        rows = list(run_queries.iter_result_rows(conn, run_id, page)) if page else []
    by_query: dict[int, QueryAnswers] = {}
    for row in rows:
        qa = by_query.get(row["query_id"])
        if qa is None:
            qa = by_query[row["query_id"]] = QueryAnswers(
                row["query_id"],
                row["query_external_id"],
                row["theme"],
                row["query"],
                row["expected"],
                file=row["query_file"],
                line=row["query_line"],
                label=query_label(
                    row["query_external_id"], row["query_file"], row["query_line"], row["query"]
                ),
            )
        qa.answers.append(
            Answer(
                row["result_id"],
                row["model"],
                row.get("prompt"),
                row["repeat"],
                row["response"],
                row["error"],
                row["latency_ms"],
                row["cost_usd"],
                [
                    AnswerScore(name, s["value"], s["passed"], s["reasoning"], s["error"])
                    for name, s in sorted(row["scores"].items())
                ],
            )
        )
    out = [by_query[q] for q in page if q in by_query]
    for qa in out:
        qa.answers.sort(key=lambda a: (a.model, a.repeat))
    return out, total
