"""/api/credentials: a workspace admin stores provider keys (encrypted; never returned)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from panopticon.api.deps import Admin, EngineDep, SettingsDep
from panopticon.api.schemas import CredentialCreate, CredentialPublic
from panopticon.services.credentials import Credentials

router = APIRouter(prefix="/api/credentials", tags=["credentials"])

Name = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


@router.get("", response_model=list[CredentialPublic])
def list_credentials(
    engine: EngineDep, settings: SettingsDep, caller: Admin
) -> list[CredentialPublic]:
    """Names, dates and the providers that use each: never a secret."""
    rows = Credentials(engine, caller.workspace_id, settings).list()
    return [CredentialPublic(**vars(r)) for r in rows]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CredentialPublic,
    responses={200: {"model": CredentialPublic, "description": "Replaced"}},
)
def set_credential(
    body: CredentialCreate,
    response: Response,
    engine: EngineDep,
    settings: SettingsDep,
    caller: Admin,
) -> CredentialPublic:
    """Store a key under a name (replacing one of that name); providers and models name it
    with ``credential``. 201 when new, 200 when replaced."""
    store = Credentials(engine, caller.workspace_id, settings)
    created = store.set(body.name, body.secret.get_secret_value())
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return next(CredentialPublic(**vars(r)) for r in store.list() if r.name == body.name)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_credential(
    name: Name, engine: EngineDep, settings: SettingsDep, caller: Admin
) -> Response:
    """Delete a credential no provider uses (409 otherwise)."""
    Credentials(engine, caller.workspace_id, settings).delete(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
