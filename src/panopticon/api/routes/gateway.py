"""/api/gateway/keys: an admin manages the gateway keys of their workspace."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from panopticon.api.deps import Admin, EngineDep, Id
from panopticon.api.schemas import GatewayKeyCreate, GatewayKeyCreated, GatewayKeyPublic
from panopticon.services import gateway_keys
from panopticon.services.gateway_keys import GatewayKeyInfo, parse_key_config

router = APIRouter(prefix="/api/gateway/keys", tags=["gateway"])


def _public(info: GatewayKeyInfo) -> GatewayKeyPublic:
    return GatewayKeyPublic(
        id=info.id,
        name=info.name,
        prefix=info.prefix,
        workspace=info.workspace,
        config=info.config,
        created_at=info.created_at,
        revoked_at=info.revoked_at,
    )


@router.get("", response_model=list[GatewayKeyPublic])
def list_keys(engine: EngineDep, caller: Admin) -> list[GatewayKeyPublic]:
    return [_public(k) for k in gateway_keys.list_gateway_keys(engine, caller.workspace_id)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=GatewayKeyCreated)
def create_key(body: GatewayKeyCreate, engine: EngineDep, caller: Admin) -> GatewayKeyCreated:
    config = parse_key_config(body.model_dump(exclude={"name"}, exclude_unset=True))
    info, key = gateway_keys.create_gateway_key(engine, caller.workspace, body.name, config)
    return GatewayKeyCreated(**_public(info).model_dump(), key=key)


@router.get("/{key_id}", response_model=GatewayKeyPublic)
def get_key(key_id: Id, engine: EngineDep, caller: Admin) -> GatewayKeyPublic:
    return _public(gateway_keys.get_gateway_key(engine, key_id, caller.workspace_id))


@router.patch("/{key_id}", response_model=GatewayKeyPublic)
def update_key(
    key_id: Id, body: dict[str, object], engine: EngineDep, caller: Admin
) -> GatewayKeyPublic:
    """Change some settings; the fields not given keep their values."""
    current = gateway_keys.get_gateway_key(engine, key_id, caller.workspace_id)
    merged = {**current.config.model_dump(exclude_defaults=True), **body}
    config = parse_key_config(merged, field="body")
    return _public(gateway_keys.update_gateway_key(engine, key_id, caller.workspace_id, config))


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(key_id: Id, engine: EngineDep, caller: Admin) -> Response:
    gateway_keys.revoke_gateway_key(engine, key_id, caller.workspace_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
