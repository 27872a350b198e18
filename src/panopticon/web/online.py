"""Online-evaluation rules: the list with budgets, a rule with its versions, and applying,
pausing or deleting rules as in ``panopticon online``."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from panopticon.errors import ConfigError, Issue, NotFoundError
from panopticon.services.access import AuthError, Principal
from panopticon.services.online import OnlineBudgets, OnlineRules
from panopticon.web.common import (
    check_csrf,
    error_context,
    float_param,
    principal_of,
    read_form,
    render,
)
from panopticon.web.session import Session

router = APIRouter(prefix="/ui", include_in_schema=False)

EXAMPLE = """name: helpfulness
metrics:
  - {name: helpful, type: rubric, prompt: 'Does the answer solve the problem?', scale: [1, 5]}
judge: your-judge-model
filter: {span_kinds: [llm]}
sampling: {rate: 0.1}
budgets: {usd_per_day: 5}
"""


def _page(
    request: Request,
    principal: Principal,
    session: Session,
    error: dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    engine = request.app.state.engine
    budgets = OnlineBudgets(engine, principal.workspace_id)
    per_day, per_month = budgets.workspace_limits()
    return render(
        request,
        "online.html",
        {
            "rules": OnlineRules(engine, principal.workspace_id).list(),
            "per_day": per_day,
            "per_month": per_month,
            "windows": budgets.state(),
            "example": EXAMPLE,
            "error": error,
            "form": form or {},
        },
        status=422 if error else 200,
        principal=principal,
        session=session,
    )


@router.get("/online")
def online(request: Request) -> Response:
    principal, session = principal_of(request)
    return _page(request, principal, session)


@router.post("/online")
async def online_action(request: Request) -> Response:
    principal, session = principal_of(request)
    form = await read_form(request)
    check_csrf(request, session, form)
    engine = request.app.state.engine
    rules = OnlineRules(engine, principal.workspace_id)
    action = form.get("action")
    target = "/ui/online?saved=1"
    try:
        if action == "apply":
            principal.require("member")
            try:
                data = yaml.safe_load(form.get("rule", ""))
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" at line {mark.line + 1}" if mark else ""
                raise ConfigError(Issue(f"not valid YAML{where}", field="rule")) from None
            applied = rules.apply(data)
            target = f"/ui/online/{applied.rule.name}?saved=1"
        elif action in ("enable", "disable"):
            principal.require("member")
            rules.set_enabled(form.get("name", ""), action == "enable")
        elif action == "delete":
            principal.require("admin")
            rules.delete(form.get("name", ""))
        elif action == "budget":
            principal.require("admin")
            OnlineBudgets(engine, principal.workspace_id).set_workspace_limits(
                float_param(form.get("usd_per_day"), "usd_per_day"),
                float_param(form.get("usd_per_month"), "usd_per_month"),
            )
        else:
            raise ConfigError(Issue(f"unknown action '{action}'", field="action"))
    except (ConfigError, AuthError, NotFoundError) as exc:
        return _page(request, principal, session, error_context(exc), form)
    return RedirectResponse(target, status_code=303)


@router.get("/online/{rule_name}")
def online_rule(request: Request, rule_name: str) -> Response:
    principal, session = principal_of(request)
    rule = OnlineRules(request.app.state.engine, principal.workspace_id).get(rule_name)
    text = yaml.safe_dump(rule.spec.model_dump(mode="json"), sort_keys=False)
    return render(
        request,
        "online_rule.html",
        {"rule": rule, "text": text},
        principal=principal,
        session=session,
    )
