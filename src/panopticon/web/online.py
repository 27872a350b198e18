"""Online-evaluation rules: the list with budgets, a rule with its versions, and applying,
pausing or deleting rules as in ``panopticon online``."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from panopticon.errors import ConfigError, Issue, NotFoundError
from panopticon.services.access import AuthError, Principal
from panopticon.services.ledger import HourlyOutcome, OnlineLedger
from panopticon.services.online import OnlineBudgets, OnlineRules
from panopticon.web.common import (
    check_csrf,
    error_context,
    float_param,
    posted,
    principal_of,
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


OUTCOMES = (
    "evaluated",
    "deduplicated",
    "pending",
    "running",
    "rate_limited",
    "over_budget",
    "failed",
    "superseded",
    "not_sampled",
    "filtered_out",
)


def _activity(rows: list[HourlyOutcome]) -> list[dict[str, Any]]:
    """One row per (hour, rule), a count per outcome, newest first."""
    table: dict[tuple[Any, str], dict[str, Any]] = {}
    for r in rows:
        row = table.setdefault((r.hour, r.rule), {"hour": r.hour, "rule": r.rule, "cost": 0.0})
        row[r.outcome] = row.get(r.outcome, 0) + r.count
        row["cost"] += r.cost_usd
    return sorted(table.values(), key=lambda x: (x["hour"], x["rule"]), reverse=True)


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
            "activity": _activity(OnlineLedger(engine, principal.workspace_id).hourly(hours=24)),
            "example": EXAMPLE,
            "outcomes": OUTCOMES,
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
    return await posted(request, _online_action)


def _online_action(request: Request, form: dict[str, Any]) -> Response:
    principal, session = principal_of(request)
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
