"""/api/cache: what the answer cache holds, and clearing or expiring it (admins), as
`panopticon cache stats|clear|expire`."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from panopticon.api.deps import Admin, EngineDep, Viewer
from panopticon.api.schemas import CacheClear, CacheClearPublic, CacheStatsPublic
from panopticon.services.cache import cache_stats, clear_cache, parse_age

router = APIRouter(prefix="/api/cache", tags=["cache"])


@router.get("", response_model=CacheStatsPublic)
def stats(engine: EngineDep, caller: Viewer) -> CacheStatsPublic:
    s = cache_stats(engine, caller.workspace)
    return CacheStatsPublic(
        answers=s.answers, judge_answers=s.judge_answers, retired=s.retired, models=s.models
    )


@router.post("/clear", response_model=CacheClearPublic)
def clear(body: CacheClear, engine: EngineDep, caller: Admin) -> CacheClearPublic:
    """Retire stored answers (later runs pay again; results stay in their runs); with
    `delete`, also delete the results of runs not completed; with `force`, of completed
    runs too."""
    age = parse_age(body.older_than) if body.older_than else None
    out = clear_cache(
        engine, caller.workspace, older_than=age, delete=body.delete, force=body.force
    )
    return CacheClearPublic(**asdict(out))
