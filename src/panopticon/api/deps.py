"""Dependencies as ``Annotated`` aliases: the engine, the settings and the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Request

from panopticon.services.access import Principal, authenticate
from panopticon.services.database import Engine
from panopticon.settings import Settings

__all__ = ["MAX_ID", "Admin", "EngineDep", "Id", "Member", "SettingsDep", "Viewer"]


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def _caller(
    engine: EngineDep, settings: SettingsDep, x_api_key: Annotated[str | None, Header()] = None
) -> Principal:
    return authenticate(engine, settings, x_api_key)


def _viewer(principal: Annotated[Principal, Depends(_caller)]) -> Principal:
    return principal


def _member(principal: Annotated[Principal, Depends(_caller)]) -> Principal:
    principal.require("member")
    return principal


def _admin(principal: Annotated[Principal, Depends(_caller)]) -> Principal:
    principal.require("admin")
    return principal


Viewer = Annotated[Principal, Depends(_viewer)]
Member = Annotated[Principal, Depends(_member)]
Admin = Annotated[Principal, Depends(_admin)]


MAX_ID = 2_147_483_647  # integer ids are 32-bit on PostgreSQL
Id = Annotated[int, Path(ge=1, le=MAX_ID, description="A row id.")]
