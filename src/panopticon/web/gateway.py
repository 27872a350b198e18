"""The gateway's keys: create (the key is shown once), change settings, revoke (admins)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from panopticon.errors import ConfigError, Issue, NotFoundError
from panopticon.services import gateway_keys
from panopticon.services.access import AuthError, Principal
from panopticon.web.common import (
    check_csrf,
    error_context,
    float_param,
    int_param,
    principal_of,
    read_form,
    render,
)
from panopticon.web.session import Session

router = APIRouter(prefix="/ui", include_in_schema=False)


def _json_list(form: dict[str, str], key: str) -> Any:
    raw = form.get(key, "").strip()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            Issue(f"not valid JSON: {exc.msg} at character {exc.pos}", field=key)
        ) from None


def _config_body(form: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in ("rpm", "tpm", "cache_ttl_s"):
        value = int_param(form.get(name), name)
        if value is not None:
            body[name] = value
    for name in ("budget_day_usd", "budget_month_usd"):
        amount = float_param(form.get(name), name)
        if amount is not None:
            body[name] = amount
    models = [m.strip() for m in form.get("models", "").split(",") if m.strip()]
    if models:
        body["models"] = models
    if form.get("default_model", "").strip():
        body["default_model"] = form["default_model"].strip()
    for name in ("guardrails", "fallbacks"):
        value = _json_list(form, name)
        if value is not None:
            body[name] = value
    return body


def _page(
    request: Request,
    principal: Principal,
    session: Session,
    *,
    error: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
    created: str | None = None,
) -> Response:
    keys = gateway_keys.list_gateway_keys(request.app.state.engine, principal.workspace_id)
    now = datetime.now(UTC)
    spend = gateway_keys.key_spend(
        request.app.state.engine, [k.id for k in keys], f"{now:%Y-%m-%d}", f"{now:%Y-%m}"
    )
    rows = [
        {
            "id": k.id,
            "name": k.name,
            "prefix": k.prefix,
            "active": k.active,
            "created_at": k.created_at,
            "settings": json.dumps(k.config.model_dump(mode="json", exclude_defaults=True)),
            "spent_day": spend[k.id][0],
            "spent_month": spend[k.id][1],
            "budget_day": k.config.budget_day_usd,
            "budget_month": k.config.budget_month_usd,
        }
        for k in keys
    ]
    base = str(request.base_url).rstrip("/") + "/v1"
    return render(
        request,
        "gateway.html",
        {"keys": rows, "error": error, "form": form or {}, "created": created, "base_url": base},
        status=422 if error else 200,
        principal=principal,
        session=session,
    )


@router.get("/gateway")
def gateway_page(request: Request) -> Response:
    principal, session = principal_of(request)
    return _page(request, principal, session)


@router.post("/gateway")
async def gateway_action(request: Request) -> Response:
    principal, session = principal_of(request)
    form = await read_form(request)
    check_csrf(request, session, form)
    engine = request.app.state.engine
    action = form.get("action", "")
    try:
        principal.require("admin")
        if action == "create":
            config = gateway_keys.parse_key_config(_config_body(form), field="form")
            _, key = gateway_keys.create_gateway_key(
                engine, principal.workspace, form.get("name", ""), config
            )
            return _page(request, principal, session, created=key)
        key_id = int_param(form.get("key_id"), "key_id") or 0
        if action == "revoke":
            gateway_keys.revoke_gateway_key(engine, key_id, principal.workspace_id)
        elif action == "update":
            settings = _json_list(form, "settings")
            if not isinstance(settings, dict):
                raise ConfigError(Issue("must be a JSON object", field="settings"))
            config = gateway_keys.parse_key_config(settings, field="settings")
            gateway_keys.update_gateway_key(engine, key_id, principal.workspace_id, config)
        else:
            raise ConfigError(Issue(f"unknown action '{action}'", field="action"))
    except (ConfigError, AuthError, NotFoundError) as exc:
        return _page(request, principal, session, error=error_context(exc), form=form)
    return RedirectResponse("/ui/gateway?saved=1", status_code=303)
