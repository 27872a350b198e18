"""The answer cache is the result table: what it holds, retiring entries, deleting them.

A stored answer is reused by later runs through its ``cache_key``. Retiring an answer
prefixes its key with ``RETIRED`` so that no lookup finds it again, while the answer stays
in its run (reports, exports and a resume still have it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from panopticon.settings import Settings
from panopticon.store.tables import Model, Result, Run, Score

__all__ = [
    "RETIRED",
    "cache_stats",
    "delete_results",
    "existing_store",
    "retire_answers",
    "stored_keys_read_only",
]

RETIRED = "~"  # answer keys are hex digests: a key starting with this is never looked up


def _live(workspace_id: int, older_than: datetime | None) -> list[Any]:
    where = [
        Run.c.workspace_id == workspace_id,
        sa.not_(Result.c.cache_key.startswith(RETIRED, autoescape=True)),
    ]
    if older_than is not None:
        where.append(Result.c.created_at < older_than)
    return where


def cache_stats(conn: Connection, workspace_id: int) -> dict[str, Any]:
    """Reusable answers (successful, not themselves copies), by model, with their age, and
    the judge answers reusable through them. An answer paid for twice (a run with
    ``--no-cache``) is one reusable answer; what each copy cost is in ``cost_usd``."""
    where = [*_live(workspace_id, None), Result.c.error.is_(None), Result.c.cached.is_(False)]
    by_model = conn.execute(
        sa.select(
            Model.c.name,
            sa.func.count(sa.distinct(Result.c.cache_key)),
            sa.func.min(Result.c.created_at),
            sa.func.max(Result.c.created_at),
            sa.func.coalesce(sa.func.sum(Result.c.cost_usd), 0.0),
            sa.func.count().filter(Result.c.cost_usd.is_(None)),
        )
        .select_from(Result)
        .join(Run, Run.c.id == Result.c.run_id)
        .join(Model, Model.c.id == Result.c.model_id)
        .where(*where)
        .group_by(Model.c.name)
        .order_by(Model.c.name)
    ).all()
    reusable_judgements = (
        sa.select(Result.c.cache_key, Score.c.metric_id)
        .select_from(Score)
        .join(Result, Result.c.id == Score.c.result_id)
        .join(Run, Run.c.id == Result.c.run_id)
        .where(*where, Score.c.judge_output.is_not(None), Score.c.judge_cached.is_(False))
        .distinct()
        .subquery()
    )
    judged = conn.execute(sa.select(sa.func.count()).select_from(reusable_judgements)).scalar_one()
    retired = conn.execute(
        sa.select(sa.func.count())
        .select_from(Result)
        .join(Run, Run.c.id == Result.c.run_id)
        .where(
            Run.c.workspace_id == workspace_id,
            Result.c.cache_key.startswith(RETIRED, autoescape=True),
        )
    ).scalar_one()
    return {
        "models": [
            {
                "model": name,
                "answers": int(n),
                "oldest": oldest,
                "newest": newest,
                "cost_usd": None if unknown else float(cost),
            }
            for name, n, oldest, newest, cost, unknown in by_model
        ],
        "judge_answers": int(judged),
        "retired": int(retired),
    }


def retire_answers(conn: Connection, workspace_id: int, older_than: datetime | None) -> int:
    """Make stored answers (created before ``older_than``, or all) unusable as cache
    entries; returns how many."""
    ids = (
        sa.select(Result.c.id)
        .join(Run, Run.c.id == Result.c.run_id)
        .where(*_live(workspace_id, older_than))
    )
    return int(
        conn.execute(
            sa.update(Result)
            .where(Result.c.id.in_(ids))
            .values(cache_key=sa.literal(RETIRED) + Result.c.cache_key)
            .execution_options(synchronize_session=False)
        ).rowcount
    )


def delete_results(
    conn: Connection, workspace_id: int, run_ids: Sequence[int], older_than: datetime | None
) -> int:
    """Delete the results (their scores, pairwise judgements and labels go with them) of
    these runs, created before ``older_than`` or all; returns how many results."""
    if not run_ids:
        return 0
    where: list[Any] = [Result.c.run_id.in_(list(run_ids))]
    if older_than is not None:
        where.append(Result.c.created_at < older_than)
    ids = (
        sa.select(Result.c.id)
        .join(Run, Run.c.id == Result.c.run_id)
        .where(Run.c.workspace_id == workspace_id, *where)
    )
    return int(conn.execute(sa.delete(Result).where(Result.c.id.in_(ids))).rowcount)


def existing_store(settings: Settings) -> Engine | None:
    """An engine on the settings' store when there is one at this code's schema revision,
    else None; nothing is created or upgraded. The caller disposes of it."""
    from panopticon.errors import StoreError
    from panopticon.store.engine import HEAD_REVISION, create_engine, current_revision

    if settings.is_sqlite:
        path = settings.resolved_database_url.removeprefix("sqlite:///")
        if not path or path == ":memory:" or not Path(path).is_file():
            return None
    engine = create_engine(settings)
    try:
        if current_revision(engine) == HEAD_REVISION:
            return engine
    except (StoreError, sa.exc.SQLAlchemyError):
        pass
    engine.dispose()
    return None


def stored_keys_read_only(settings: Settings, keys: list[str]) -> frozenset[str] | None:
    """Which of these answer keys the settings' workspace has a reusable answer for,
    without creating or upgrading anything: None when there is no store to ask (no
    database file yet, another schema revision, no such workspace, or it cannot be
    reached)."""
    from panopticon.errors import NotFoundError, StoreError
    from panopticon.store.queries.catalog import ensure_workspace
    from panopticon.store.queries.runs import cached_answers

    engine = existing_store(settings)
    if engine is None:
        return None
    try:
        with engine.connect() as conn:
            ws = ensure_workspace(conn, settings.workspace, create=False)
            return frozenset(cached_answers(conn, ws, keys))
    except (NotFoundError, StoreError, sa.exc.SQLAlchemyError):
        return None
    finally:
        engine.dispose()
