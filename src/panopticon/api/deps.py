"""Dependencies as ``Annotated`` aliases: the engine, the settings and the caller."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from panopticon.services.access import (
    AuthError,
    Principal,
    authenticate_hash,
    hash_key,
    known_principal,
)
from panopticon.services.database import Engine
from panopticon.settings import Settings

__all__ = [
    "MAX_ID",
    "Admin",
    "EngineDep",
    "Id",
    "Member",
    "SettingsDep",
    "Viewer",
    "caller",
    "store_read",
]

T = TypeVar("T")


# Every dependency here is ``async def`` and never blocks: FastAPI runs a plain ``def``
# dependency in the thread pool, a hop per dependency per request that cost more than the
# work. Only a key not seen in the last seconds is read from the database, in a thread.
async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def caller(state: State, x_api_key: str | None, role: str = "viewer") -> Principal:
    """The key's principal, with at least ``role``, or AuthError (401, 403). ``state``: the
    app's."""
    if not x_api_key:
        raise AuthError("missing X-API-Key header; create a key with `panopticon keys create`")
    key_hash = hash_key(x_api_key)
    principal = known_principal(state.engine, state.settings, key_hash)
    if principal is None:
        principal = await run_in_threadpool(
            authenticate_hash, state.engine, state.settings, key_hash
        )
    if role != "viewer":
        principal.require(role)
    return principal


# One dependency per role, each reading the key itself: a chain of dependencies
# (engine, settings, caller, role) cost more per request than checking the key.
async def _viewer(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> Principal:
    return await caller(request.app.state, x_api_key)


async def _member(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> Principal:
    return await caller(request.app.state, x_api_key, "member")


async def _admin(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> Principal:
    return await caller(request.app.state, x_api_key, "admin")


Viewer = Annotated[Principal, Depends(_viewer)]
Member = Annotated[Principal, Depends(_member)]
Admin = Annotated[Principal, Depends(_admin)]


async def store_read(state: State, work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` (a blocking read of the store) in the app's reader threads: a plain
    executor hand-off, about half the event loop's CPU of anyio's ``to_thread`` (its
    capacity limiter and context lookups), which the hottest reads pay on every request."""
    executor: ThreadPoolExecutor = state.readers
    return await asyncio.get_running_loop().run_in_executor(executor, work, *args)


MAX_ID = 2_147_483_647  # integer ids are 32-bit on PostgreSQL
Id = Annotated[int, Path(ge=1, le=MAX_ID, description="A row id.")]
