"""/api/models and /api/providers: the model registry of the workspace."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from panopticon.api.deps import Admin, EngineDep, Viewer
from panopticon.api.schemas import ModelCreate, ModelPublic, ProviderPublic
from panopticon.services.registry import ModelRegistry

router = APIRouter(tags=["models"])


@router.get("/api/models", response_model=list[ModelPublic])
def list_models(engine: EngineDep, caller: Viewer) -> list[ModelPublic]:
    return [ModelPublic(**m) for m in ModelRegistry(engine, caller.workspace_id).all()]


@router.get("/api/models/{model_id}", response_model=ModelPublic)
def get_model(model_id: str, engine: EngineDep, caller: Viewer) -> ModelPublic:
    return ModelPublic(**ModelRegistry(engine, caller.workspace_id).get(model_id))


@router.post("/api/models", status_code=status.HTTP_201_CREATED, response_model=ModelPublic)
def register_model(body: ModelCreate, engine: EngineDep, caller: Admin) -> ModelPublic:
    return ModelPublic(
        **ModelRegistry(engine, caller.workspace_id).upsert(body.model_dump(exclude_none=True))
    )


@router.delete("/api/models/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(model_id: str, engine: EngineDep, caller: Admin) -> Response:
    ModelRegistry(engine, caller.workspace_id).delete(model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/api/providers", response_model=list[ProviderPublic])
def list_providers(engine: EngineDep, caller: Viewer) -> list[ProviderPublic]:
    return [ProviderPublic(**p) for p in ModelRegistry(engine, caller.workspace_id).providers()]
