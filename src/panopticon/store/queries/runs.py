"""Runs, results and scores: creating runs, what a resume already has, reading results."""

from __future__ import annotations

import socket
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from panopticon.errors import NotFoundError
from panopticon.evaluation.plan import KnownResult
from panopticon.store.queries.catalog import chunks
from panopticon.store.tables import Metric, Model, Pairwise, Query, Result, Run, RunQuery, Score
from panopticon.store.tables.base import utcnow

__all__ = [
    "RunRow",
    "cached_answers",
    "create_run",
    "failed_judge_spend",
    "finish_run",
    "get_run",
    "iter_result_rows",
    "judge_cache",
    "list_runs",
    "metric_definitions",
    "pairwise_done",
    "pairwise_rows",
    "panel_votes",
    "query_ids_by_external_id",
    "query_ids_by_place",
    "record_query_places",
    "run_model_names",
    "run_query_ids",
    "run_results",
    "start_run",
    "summary_inputs",
    "update_run_suite",
]


@dataclass(frozen=True)
class RunRow:
    id: int
    name: str
    status: str
    stop_reason: str | None
    suite: dict[str, Any]
    suite_fingerprint: str
    suite_path: str | None
    planned: int
    totals: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    host: str | None
    pid: int | None


def _run_row(row: Any) -> RunRow:
    return RunRow(**{f: getattr(row, f) for f in RunRow.__dataclass_fields__})


def create_run(
    conn: Connection,
    workspace_id: int,
    *,
    name: str,
    suite: dict[str, Any],
    fingerprint: str,
    suite_path: str | None,
    planned: int,
) -> int:
    return int(
        conn.execute(
            sa.insert(Run)
            .values(
                workspace_id=workspace_id,
                name=name,
                status="pending",
                suite=suite,
                suite_fingerprint=fingerprint,
                suite_path=suite_path,
                planned=planned,
                totals={},
                created_at=utcnow(),
            )
            .returning(Run.c.id)
        ).scalar_one()
    )


def update_run_suite(
    conn: Connection, run_id: int, suite: dict[str, Any], fingerprint: str
) -> None:
    """Record the suite a resume runs with (it differs only by its budget)."""
    conn.execute(
        sa.update(Run).where(Run.c.id == run_id).values(suite=suite, suite_fingerprint=fingerprint)
    )


def start_run(conn: Connection, run_id: int, pid: int) -> None:
    now = utcnow()
    conn.execute(
        sa.update(Run)
        .where(Run.c.id == run_id)
        .values(
            status="running",
            stop_reason=None,
            started_at=now,
            heartbeat_at=now,
            finished_at=None,
            host=socket.gethostname(),
            pid=pid,
        )
    )


def finish_run(
    conn: Connection, run_id: int, status: str, stop_reason: str | None, totals: dict[str, Any]
) -> None:
    conn.execute(
        sa.update(Run)
        .where(Run.c.id == run_id)
        .values(status=status, stop_reason=stop_reason, totals=totals, finished_at=utcnow())
    )


def get_run(conn: Connection, workspace_id: int, ref: str | int) -> RunRow:
    """A run by id, or ``last`` for the newest."""
    q = sa.select(Run).where(Run.c.workspace_id == workspace_id)
    if str(ref) == "last":
        q = q.order_by(Run.c.id.desc()).limit(1)
    else:
        try:
            q = q.where(Run.c.id == int(ref))
        except ValueError:
            raise NotFoundError(f"'{ref}' is not a run id: give a number or 'last'") from None
    row = conn.execute(q).first()
    if row is None:
        raise NotFoundError(
            "there are no runs yet"
            if str(ref) == "last"
            else f"no run {ref} in this workspace; `panopticon runs` lists them"
        )
    return _run_row(row)


def list_runs(conn: Connection, workspace_id: int, limit: int = 20) -> list[RunRow]:
    rows = conn.execute(
        sa.select(Run)
        .where(Run.c.workspace_id == workspace_id)
        .order_by(Run.c.id.desc())
        .limit(limit)
    )
    return [_run_row(r) for r in rows]


def _known(row: Any, scored: frozenset[int]) -> KnownResult:
    return KnownResult(
        row.id,
        row.response_text or "",
        row.finish_reason,
        row.latency_ms,
        row.input_tokens,
        row.output_tokens,
        row.cost_usd,
        scored,
    )


_KNOWN_COLS = (
    Result.c.id,
    Result.c.query_id,
    Result.c.model_id,
    Result.c.repeat,
    Result.c.response_text,
    Result.c.finish_reason,
    Result.c.latency_ms,
    Result.c.input_tokens,
    Result.c.output_tokens,
    Result.c.cost_usd,
)


def run_results(conn: Connection, run_id: int) -> dict[tuple[int, int, int], KnownResult]:
    """This run's successful answers, each with the metrics already scored without error."""
    scored: dict[uuid.UUID, set[int]] = defaultdict(set)
    for rid, mid in conn.execute(
        sa.select(Score.c.result_id, Score.c.metric_id).where(
            Score.c.run_id == run_id, Score.c.error.is_(None)
        )
    ):
        scored[rid].add(mid)
    out = {}
    for row in conn.execute(
        sa.select(*_KNOWN_COLS).where(Result.c.run_id == run_id, Result.c.error.is_(None))
    ):
        out[(row.query_id, row.model_id, row.repeat)] = _known(row, frozenset(scored[row.id]))
    return out


def cached_answers(conn: Connection, workspace_id: int, keys: list[str]) -> dict[str, KnownResult]:
    """Stored, successful answers for these cache keys, from any run in the workspace."""
    out: dict[str, KnownResult] = {}
    unique = list(dict.fromkeys(keys))
    for part in chunks(unique):
        q = (
            sa.select(Result.c.cache_key, *_KNOWN_COLS)
            .join(Run, Run.c.id == Result.c.run_id)
            .where(
                Run.c.workspace_id == workspace_id,
                Result.c.cache_key.in_(part),
                Result.c.error.is_(None),
                Result.c.cached.is_(False),
            )
        )
        for row in conn.execute(q):
            out.setdefault(row.cache_key, _known(row, frozenset()))
    return out


def judge_cache(
    conn: Connection, workspace_id: int, answer_keys: list[str]
) -> dict[str, tuple[str, str, int | None, int | None, float | None]]:
    """Judge answers already paid for, on any stored copy of these answers (by the answers'
    cache keys), in the workspace, by judge cache key."""
    out: dict[str, tuple[str, str, int | None, int | None, float | None]] = {}
    for part in chunks(list(dict.fromkeys(answer_keys))):
        q = (
            sa.select(
                Score.c.judge_cache_key,
                Score.c.judge_output,
                Score.c.judge_model,
                Score.c.judge_input_tokens,
                Score.c.judge_output_tokens,
                Score.c.judge_cost_usd,
            )
            .join(Result, Result.c.id == Score.c.result_id)
            .join(Run, Run.c.id == Result.c.run_id)
            .where(
                Run.c.workspace_id == workspace_id,
                Result.c.cache_key.in_(part),
                Score.c.judge_cache_key.is_not(None),
                Score.c.judge_output.is_not(None),
                Score.c.judge_cached.is_(False),
                Score.c.error.is_(None),  # a failed judgement is retried, not reused
            )
        )
        for row in conn.execute(q):
            out.setdefault(
                row.judge_cache_key,
                (
                    row.judge_output,
                    row.judge_model,
                    row.judge_input_tokens,
                    row.judge_output_tokens,
                    row.judge_cost_usd,
                ),
            )
        # pairwise judgements: each order's answer; the pair's cost is split between them
        q2 = (
            sa.select(
                Pairwise.c.judge_key_ab,
                Pairwise.c.judge_output_ab,
                Pairwise.c.judge_key_ba,
                Pairwise.c.judge_output_ba,
                Pairwise.c.judge_model,
                Pairwise.c.judge_cost_usd,
            )
            .join(Result, Result.c.id == Pairwise.c.result_a_id)
            .join(Run, Run.c.id == Pairwise.c.run_id)
            .where(
                Run.c.workspace_id == workspace_id,
                Result.c.cache_key.in_(part),
                Pairwise.c.error.is_(None),
                Pairwise.c.judge_cached.is_(False),
            )
        )
        for row in conn.execute(q2):
            half = None if row.judge_cost_usd is None else row.judge_cost_usd / 2
            for key, text in (
                (row.judge_key_ab, row.judge_output_ab),
                (row.judge_key_ba, row.judge_output_ba),
            ):
                if key and text:
                    out.setdefault(key, (text, row.judge_model, None, None, half))
    return out


def run_query_ids(conn: Connection, run_id: int) -> list[int]:
    """The queries a run has results for, in the order :func:`iter_result_rows` gives."""
    return [
        int(q)
        for q in conn.execute(
            sa.select(Result.c.query_id)
            .where(Result.c.run_id == run_id)
            .group_by(Result.c.query_id)
            .order_by(sa.func.min(Result.c.repeat), Result.c.query_id)
        ).scalars()
    ]


def query_ids_by_external_id(conn: Connection, run_id: int, external_id: str) -> list[int]:
    """The run's queries with this dataset id."""
    return [
        int(q)
        for q in conn.execute(
            sa.select(Query.c.id)
            .where(
                Query.c.external_id == external_id,
                Query.c.id.in_(sa.select(Result.c.query_id).where(Result.c.run_id == run_id)),
            )
            .order_by(Query.c.id)
        ).scalars()
    ]


def record_query_places(conn: Connection, run_id: int, places: dict[int, tuple[str, int]]) -> None:
    """Keep where the run read each query (query id -> file, line); a place already kept
    for this run (an earlier start of it, a worker's shard) stays."""
    known = set(
        conn.execute(sa.select(RunQuery.c.query_id).where(RunQuery.c.run_id == run_id)).scalars()
    )
    rows = [
        {"run_id": run_id, "query_id": q, "file": file, "line": line}
        for q, (file, line) in places.items()
        if q not in known
    ]
    for part in chunks(rows):
        conn.execute(sa.insert(RunQuery), part)


def query_ids_by_place(conn: Connection, run_id: int, file: str, line: int) -> list[int]:
    """The run's queries read from this line of a file named ``file`` (its name, or the end
    of its path)."""
    found = conn.execute(
        sa.select(RunQuery.c.query_id, RunQuery.c.file).where(
            RunQuery.c.run_id == run_id, RunQuery.c.line == line
        )
    )
    wanted = "/" + file.removeprefix("./")
    return sorted(int(q) for q, f in found if f == file or f.endswith(wanted))


def _place(run_id: Any, query_id: Any) -> Any:
    """An outer join condition to the run's place of a query."""
    return sa.and_(RunQuery.c.run_id == run_id, RunQuery.c.query_id == query_id)


def iter_result_rows(
    conn: Connection, run_id: int, query_ids: list[int] | None = None
) -> Iterator[dict[str, Any]]:
    """Every result of a run (or of these queries of it) with its query, model and scores
    (by metric name), in order."""
    metric_names: dict[int, str] = dict(
        conn.execute(  # type: ignore[arg-type]
            sa.select(Metric.c.id, Metric.c.name)
            .join(Score, Score.c.metric_id == Metric.c.id)
            .where(Score.c.run_id == run_id)
            .distinct()
        ).all()
    )
    scores: dict[uuid.UUID, dict[str, dict[str, Any]]] = defaultdict(dict)
    only = [Score.c.query_id.in_(query_ids)] if query_ids is not None else []
    for s in conn.execute(sa.select(Score).where(Score.c.run_id == run_id, *only)):
        scores[s.result_id][metric_names[s.metric_id]] = {
            "value": s.value,
            "normalized": s.normalized,
            "passed": s.passed,
            "reasoning": s.reasoning,
            "error": s.error,
            "judge_model": s.judge_model,
            "judge_input_tokens": s.judge_input_tokens,
            "judge_output_tokens": s.judge_output_tokens,
            "judge_cost_usd": s.judge_cost_usd,
            "judge_cached": s.judge_cached,
        }
    q = (
        sa.select(
            Result,
            Query.c.text.label("query_text"),
            Query.c.theme,
            Query.c.expected,
            Query.c.external_id,
            Model.c.name.label("model_name"),
            RunQuery.c.file.label("query_file"),
            RunQuery.c.line.label("query_line"),
        )
        .join(Query, Query.c.id == Result.c.query_id)
        .join(Model, Model.c.id == Result.c.model_id)
        .outerjoin(RunQuery, _place(Result.c.run_id, Result.c.query_id))
        .where(
            Result.c.run_id == run_id,
            *([Result.c.query_id.in_(query_ids)] if query_ids is not None else []),
        )
        .order_by(Result.c.repeat, Result.c.query_id, Model.c.name)
    )
    for row in conn.execute(q):
        yield {
            "result_id": str(row.id),
            "run_id": row.run_id,
            "query_id": row.query_id,
            "query_external_id": row.external_id,
            "query_file": row.query_file,
            "query_line": row.query_line,
            "theme": row.theme,
            "query": row.query_text,
            "expected": row.expected,
            "model": row.model_name,
            "prompt": row.prompt,
            "repeat": row.repeat,
            "response": row.response_text,
            "finish_reason": row.finish_reason,
            "latency_ms": row.latency_ms,
            "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens,
            "cost_usd": row.cost_usd,
            "cached": row.cached,
            "attempts": row.attempts,
            "error": row.error,
            "error_kind": row.error_kind,
            "created_at": row.created_at.isoformat() if row.created_at else None,
            "scores": scores.get(row.id, {}),
        }


def run_model_names(conn: Connection, run_id: int) -> list[str]:
    """The models (``model@prompt`` with prompt variants) a run has results of, sorted."""
    q = (
        sa.select(Model.c.name)
        .where(Model.c.id.in_(sa.select(Result.c.model_id).where(Result.c.run_id == run_id)))
        .distinct()
        .order_by(Model.c.name)
    )
    return [str(name) for name in conn.scalars(q)]


def summary_inputs(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """The columns :func:`panopticon.stats.summary.summarize` needs, without texts.

    Rows are fetched whole (``all()``) and ids are compared as the driver gives them, not
    made into ``UUID`` objects: on a run of 100,000 answers that is most of the time."""
    result_key = sa.type_coerce(Score.c.result_id, sa.String)  # as stored: no UUID()
    metric_names = {
        int(i): str(n)
        for i, n in conn.execute(
            sa.select(Metric.c.id, Metric.c.name).where(
                Metric.c.id.in_(sa.select(Score.c.metric_id).where(Score.c.run_id == run_id))
            )
        ).all()
    }
    scores: dict[Any, dict[str, dict[str, Any]]] = defaultdict(dict)
    q = sa.select(
        result_key,
        Score.c.metric_id,
        Score.c.value,
        Score.c.normalized,
        Score.c.passed,
        Score.c.error,
        Score.c.judge_model,
        Score.c.judge_input_tokens,
        Score.c.judge_output_tokens,
        Score.c.judge_cost_usd,
    ).where(Score.c.run_id == run_id)
    for rid, mid, value, norm, passed, error, jm, jin, jout, jcost in conn.execute(q).all():
        scores[rid][metric_names[mid]] = {
            "value": value,
            "normalized": norm,
            "passed": passed,
            "error": error,
            "judge_model": jm,
            "judge_input_tokens": jin,
            "judge_output_tokens": jout,
            "judge_cost_usd": jcost,
        }
    q2 = (
        sa.select(
            sa.type_coerce(Result.c.id, sa.String),
            Model.c.name,
            Result.c.error,
            Result.c.cached,
            Result.c.cost_usd,
            Result.c.latency_ms,
            Result.c.input_tokens,
            Result.c.output_tokens,
            Result.c.query_id,
            Result.c.repeat,
            Query.c.theme,
            Query.c.external_id,
            Query.c.text,
        )
        .join(Model, Model.c.id == Result.c.model_id)
        .join(Query, Query.c.id == Result.c.query_id)
        .where(Result.c.run_id == run_id)
    )
    return [
        {
            "model": name,
            "error": error,
            "cached": cached,
            "cost_usd": cost,
            "latency_ms": latency,
            "input_tokens": tin,
            "output_tokens": tout,
            "query_id": qid,
            "repeat": repeat,
            "theme": theme,
            # what the item is, whatever prompt asked it: its dataset id, else its text
            "item": f"id:{external_id}" if external_id is not None else f"text:{text}",
            "scores": scores.get(rid, {}),
        }
        for (
            rid,
            name,
            error,
            cached,
            cost,
            latency,
            tin,
            tout,
            qid,
            repeat,
            theme,
            external_id,
            text,
        ) in conn.execute(q2).all()
    ]


def metric_definitions(conn: Connection, run_ids: list[int]) -> list[dict[str, Any]]:
    """The definitions of the metrics scored in these runs (as their suites gave them)."""
    scored = sa.select(Score.c.metric_id).where(Score.c.run_id.in_(run_ids)).distinct()
    q = sa.select(Metric.c.definition).where(Metric.c.id.in_(scored)).order_by(Metric.c.id)
    return [dict(d) for d in conn.execute(q).scalars().all() if isinstance(d, dict)]


def failed_judge_spend(conn: Connection, run_id: int) -> dict[tuple[Any, ...], float]:
    """What this run paid for judgements that failed (a resume retries them), by key."""
    out: dict[tuple[Any, ...], float] = {}
    q = sa.select(Score.c.result_id, Score.c.metric_id, Score.c.judge_cost_usd).where(
        Score.c.run_id == run_id,
        Score.c.error.is_not(None),
        Score.c.judge_cached.is_(False),
        Score.c.judge_cost_usd > 0,
    )
    for rid, mid, cost in conn.execute(q):
        out[("score", rid, mid)] = float(cost)
    q2 = sa.select(
        Pairwise.c.metric_id,
        Pairwise.c.query_id,
        Pairwise.c.repeat,
        Pairwise.c.model_a_id,
        Pairwise.c.model_b_id,
        Pairwise.c.judge_cost_usd,
    ).where(
        Pairwise.c.run_id == run_id,
        Pairwise.c.error.is_not(None),
        Pairwise.c.judge_cached.is_(False),
        Pairwise.c.judge_cost_usd > 0,
    )
    for mid, qid, repeat, a, b, cost in conn.execute(q2):
        out[("pair", mid, qid, repeat, a, b)] = float(cost)
    return out


def pairwise_done(conn: Connection, run_id: int) -> set[tuple[int, int, int, int, int]]:
    """Pairs this run has judged without error: a resume does not judge them again."""
    q = sa.select(
        Pairwise.c.metric_id,
        Pairwise.c.query_id,
        Pairwise.c.repeat,
        Pairwise.c.model_a_id,
        Pairwise.c.model_b_id,
    ).where(Pairwise.c.run_id == run_id, Pairwise.c.error.is_(None))
    return {(r[0], r[1], r[2], r[3], r[4]) for r in conn.execute(q)}


def pairwise_rows(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """Every pairwise judgement of a run, with model and metric names."""
    a, b = Model.alias("ma"), Model.alias("mb")
    q = (
        sa.select(
            Metric.c.name.label("metric"),
            a.c.name.label("model_a"),
            b.c.name.label("model_b"),
            Pairwise.c.query_id,
            Pairwise.c.repeat,
            Pairwise.c.verdict_ab,
            Pairwise.c.verdict_ba,
            Pairwise.c.final,
            Pairwise.c.reasoning_ab,
            Pairwise.c.reasoning_ba,
            Pairwise.c.error,
            Pairwise.c.judge_model,
            Pairwise.c.judge_input_tokens,
            Pairwise.c.judge_output_tokens,
            Pairwise.c.judge_cost_usd,
            Pairwise.c.judge_cached,
            Query.c.external_id.label("query_external_id"),
            Query.c.text.label("query"),
            RunQuery.c.file.label("query_file"),
            RunQuery.c.line.label("query_line"),
        )
        .join(Metric, Metric.c.id == Pairwise.c.metric_id)
        .join(Query, Query.c.id == Pairwise.c.query_id)
        .outerjoin(RunQuery, _place(Pairwise.c.run_id, Pairwise.c.query_id))
        .join(a, a.c.id == Pairwise.c.model_a_id)
        .join(b, b.c.id == Pairwise.c.model_b_id)
        .where(Pairwise.c.run_id == run_id)
        .order_by(Pairwise.c.repeat, Pairwise.c.query_id, a.c.name, b.c.name)
    )
    # plain str keys: SQLAlchemy's label names are a str subclass that orjson refuses
    return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(q)]


def panel_votes(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """Scores that carry a panel's votes: metric, answering model, result and votes."""
    q = (
        sa.select(
            Metric.c.name.label("metric"),
            Model.c.name.label("model"),
            Score.c.result_id,
            Score.c.details,
        )
        .join(Metric, Metric.c.id == Score.c.metric_id)
        .join(Result, Result.c.id == Score.c.result_id)
        .join(Model, Model.c.id == Result.c.model_id)
        .where(Score.c.run_id == run_id, Score.c.details.is_not(None))
    )
    return [dict(r._mapping) for r in conn.execute(q)]
