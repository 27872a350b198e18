"""/api/keys: an admin manages the keys of their workspace."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from panopticon.api.deps import Admin, EngineDep, Id
from panopticon.api.schemas import KeyCreate, KeyCreated, KeyPublic
from panopticon.services import access

router = APIRouter(prefix="/api/keys", tags=["keys"])


@router.get("", response_model=list[KeyPublic])
def get_keys(engine: EngineDep, caller: Admin) -> list[KeyPublic]:
    return [KeyPublic(**vars(k)) for k in access.list_keys(engine, caller.workspace_id)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def new_key(body: KeyCreate, engine: EngineDep, caller: Admin) -> KeyCreated:
    key_id, key = access.create_key(engine, caller.workspace, body.role, body.name, body.scope)
    row = next(k for k in access.list_keys(engine, caller.workspace_id) if k.id == key_id)
    return KeyCreated(**vars(row), key=key)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke(key_id: Id, engine: EngineDep, caller: Admin) -> Response:
    access.revoke_key(engine, key_id, caller.workspace_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
