"""/api/models and /api/providers: the model registry of the workspace."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from panopticon.api.deps import Admin, EngineDep, Id, Member, SettingsDep, Viewer
from panopticon.api.schemas import (
    CompletionCreate,
    CompletionPublic,
    ModelCreate,
    ModelPublic,
    ProviderCreate,
    ProviderPublic,
    ProviderUpdate,
)
from panopticon.errors import ConfigError, Issue
from panopticon.services.completion import complete
from panopticon.services.registry import ModelRegistry

router = APIRouter(tags=["models"])


@router.get("/api/models", response_model=list[ModelPublic])
def list_models(engine: EngineDep, settings: SettingsDep, caller: Viewer) -> list[ModelPublic]:
    return [ModelPublic(**m) for m in ModelRegistry(engine, caller.workspace_id, settings).all()]


@router.get("/api/models/{model_id:path}", response_model=ModelPublic)
def get_model(model_id: str, engine: EngineDep, caller: Viewer) -> ModelPublic:
    return ModelPublic(**ModelRegistry(engine, caller.workspace_id).get(model_id))


@router.post("/api/models", status_code=status.HTTP_201_CREATED, response_model=ModelPublic)
def register_model(
    body: ModelCreate, engine: EngineDep, settings: SettingsDep, caller: Admin
) -> ModelPublic:
    return ModelPublic(
        **ModelRegistry(engine, caller.workspace_id, settings).upsert(
            body.model_dump(exclude_none=True)
        )
    )


@router.delete("/api/models/{model_id:path}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(model_id: str, engine: EngineDep, caller: Admin) -> Response:
    ModelRegistry(engine, caller.workspace_id).delete(model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/api/providers", response_model=list[ProviderPublic])
def list_providers(
    engine: EngineDep, settings: SettingsDep, caller: Viewer
) -> list[ProviderPublic]:
    return [
        ProviderPublic(**p)
        for p in ModelRegistry(engine, caller.workspace_id, settings).providers()
    ]


@router.post("/api/providers", status_code=status.HTTP_201_CREATED, response_model=ProviderPublic)
def create_provider(
    body: ProviderCreate, engine: EngineDep, settings: SettingsDep, caller: Admin
) -> ProviderPublic:
    return ProviderPublic(
        **ModelRegistry(engine, caller.workspace_id, settings).create_provider(body.model_dump())
    )


@router.patch("/api/providers/{provider_id}", response_model=ProviderPublic)
def update_provider(
    provider_id: Id, body: ProviderUpdate, engine: EngineDep, settings: SettingsDep, caller: Admin
) -> ProviderPublic:
    """Change a provider's endpoint or key: every model on it uses the change next."""
    return ProviderPublic(
        **ModelRegistry(engine, caller.workspace_id, settings).update_provider(
            provider_id, body.model_dump(exclude_unset=True)
        )
    )


@router.delete("/api/providers/{provider_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_provider(
    provider_id: Id, engine: EngineDep, settings: SettingsDep, caller: Admin
) -> Response:
    ModelRegistry(engine, caller.workspace_id, settings).delete_provider(provider_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/api/completion", response_model=CompletionPublic, tags=["completion"])
async def completion(
    body: CompletionCreate,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    caller: Member,
) -> CompletionPublic:
    """One call to a registered model (not stored as a run)."""
    if (body.prompt is None) == (body.messages is None):
        raise ConfigError(Issue("give exactly one of 'prompt' and 'messages'", field="messages"))
    messages = (
        [{"role": "user", "content": body.prompt}]
        if body.prompt is not None
        else [m.model_dump() for m in body.messages or []]
    )
    return CompletionPublic(
        **await complete(
            engine,
            settings,
            caller.workspace_id,
            request.app.state.env,
            body.model_id,
            messages,
            body.params,
        )
    )
