"""The model registry and providers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from panopticon.errors import ConfigError, Issue, NotFoundError
from panopticon.services.access import AuthError, Principal
from panopticon.services.credentials import Credentials
from panopticon.services.registry import (
    CredentialCreate,
    ModelCreate,
    ModelRegistry,
    ProviderCreate,
    ProviderUpdate,
)
from panopticon.web.common import (
    check_csrf,
    clean,
    error_context,
    float_param,
    int_param,
    json_field,
    principal_of,
    read_form,
    render,
    validate,
)
from panopticon.web.session import Session

router = APIRouter(prefix="/ui", include_in_schema=False)


# -- models and providers ----------------------------------------------------------------------


def _registry_page(
    request: Request,
    principal: Principal,
    session: Session,
    error: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    registry = ModelRegistry(
        request.app.state.engine, principal.workspace_id, request.app.state.settings
    )
    credentials = (
        Credentials(
            request.app.state.engine, principal.workspace_id, request.app.state.settings
        ).list()
        if principal.role == "admin"
        else []
    )
    form = {k: v for k, v in (form or {}).items() if k != "secret"}  # never echoed back
    return render(
        request,
        "models.html",
        {
            "models": registry.all(),
            "providers": registry.providers(),
            "credentials": credentials,
            "error": error,
            "form": form,
        },
        status=422 if error else 200,
        principal=principal,
        session=session,
    )


@router.get("/models")
def models(request: Request) -> Response:
    principal, session = principal_of(request)
    return _registry_page(request, principal, session)


@router.post("/models")
async def models_action(request: Request) -> Response:
    """Register a model, delete one, or add, edit or delete a provider (admins)."""
    principal, session = principal_of(request)
    form = await read_form(request)
    check_csrf(request, session, form)
    registry = ModelRegistry(
        request.app.state.engine, principal.workspace_id, request.app.state.settings
    )
    action = form.get("action", "")
    try:
        principal.require("admin")
        if action == "add-model":
            body = clean(form, "id", "provider", "model", "base_url", "api_key_env", "credential")
            concurrency = int_param(form.get("concurrency"), "concurrency")
            if concurrency is not None:
                body["concurrency"] = concurrency
            price_in = float_param(form.get("price_input"), "price_input")
            price_out = float_param(form.get("price_output"), "price_output")
            if price_in is not None or price_out is not None:
                body["price"] = {"input": price_in or 0.0, "output": price_out or 0.0}
            params = json_field(form, "params")
            if params is not None:
                body["params"] = params
            registry.upsert(validate(ModelCreate, body).model_dump(exclude_none=True))
        elif action == "delete-model":
            registry.delete(form.get("id", ""))
        elif action == "add-provider":
            body = clean(form, "name", "kind", "base_url", "api_key_env", "credential")
            registry.create_provider(validate(ProviderCreate, body).model_dump())
        elif action == "edit-provider":
            pid = int_param(form.get("provider_id"), "provider_id")
            body = {
                k: (form.get(k) or "").strip() or None
                for k in ("base_url", "api_key_env", "credential")
            }
            registry.update_provider(pid or 0, validate(ProviderUpdate, body).model_dump())
        elif action == "delete-provider":
            registry.delete_provider(int_param(form.get("provider_id"), "provider_id") or 0)
        elif action == "set-credential":
            valid = validate(CredentialCreate, clean(form, "name", "secret"))
            assert isinstance(valid, CredentialCreate)
            Credentials(
                request.app.state.engine, principal.workspace_id, request.app.state.settings
            ).set(valid.name, valid.secret.get_secret_value())
        elif action == "delete-credential":
            Credentials(
                request.app.state.engine, principal.workspace_id, request.app.state.settings
            ).delete(form.get("name", ""))
        else:
            raise ConfigError(Issue(f"unknown action '{action}'", field="action"))
    except (ConfigError, AuthError, NotFoundError) as exc:
        return _registry_page(request, principal, session, error_context(exc), form)
    return RedirectResponse("/ui/models?saved=1", status_code=303)
