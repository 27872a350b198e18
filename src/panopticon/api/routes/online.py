"""/api/online: online-evaluation rules (versioned) and the workspace's online budgets.

A rule's body is the same as its YAML file (see README, "Online evaluation"); it is
validated whole and every problem is answered at once, each with its field.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from panopticon.api.deps import Admin, EngineDep, Member, Viewer
from panopticon.api.schemas import JobPublic, Moment
from panopticon.services.backfill import KIND, backfill_payload
from panopticon.services.jobs import job_status
from panopticon.services.ledger import OnlineLedger
from panopticon.services.online import OnlineBudgets, OnlineRules, RulePublic

router = APIRouter(prefix="/api/online", tags=["online evaluation"])

RULE_NAME = r"^[a-z0-9][a-z0-9_.-]{0,63}$"  # as a rule's name is validated
RuleName = Annotated[str, Path(min_length=1, max_length=64, description="The rule's name.")]


class OnlineRulePublic(BaseModel):
    name: str
    enabled: bool
    priority: int
    version: str
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class OnlineRuleVersion(BaseModel):
    version: str
    created_at: datetime


class OnlineRuleDetail(OnlineRulePublic):
    versions: list[OnlineRuleVersion]


class OnlineRuleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool | None = Field(default=None, description="Resume (true) or pause (false).")


class OnlineBudgetLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # `true` is no amount of dollars

    usd_per_day: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    usd_per_month: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class OnlineBudgetWindow(BaseModel):
    scope: str
    period: str
    period_start: datetime
    limit_usd: float
    spent_usd: float
    reserved_usd: float


class OnlineBudgetPublic(OnlineBudgetLimits):
    model_config = ConfigDict(extra="forbid", strict=False)

    windows: list[OnlineBudgetWindow]


def _public(rule: RulePublic) -> OnlineRulePublic:
    return OnlineRulePublic(
        name=rule.name,
        enabled=rule.enabled,
        priority=rule.priority,
        version=rule.version,
        spec=rule.spec.model_dump(mode="json"),
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


@router.get("/rules", response_model=list[OnlineRulePublic])
def list_rules(engine: EngineDep, caller: Viewer) -> list[OnlineRulePublic]:
    return [_public(r) for r in OnlineRules(engine, caller.workspace_id).list()]


@router.post(
    "/rules",
    response_model=OnlineRulePublic,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "The rule was already exactly this: nothing changed."}},
)
def apply_rule(
    engine: EngineDep,
    caller: Member,
    response: Response,
    body: Annotated[dict[str, Any], Body(description="A rule, as in its YAML file.")],
) -> OnlineRulePublic:
    """Create a rule, or give an existing one (same name) a new version."""
    applied = OnlineRules(engine, caller.workspace_id).apply(body)
    if not applied.changed:
        response.status_code = status.HTTP_200_OK
    return _public(applied.rule)


@router.get("/rules/{rule_name}", response_model=OnlineRuleDetail)
def get_rule(rule_name: RuleName, engine: EngineDep, caller: Viewer) -> OnlineRuleDetail:
    rule = OnlineRules(engine, caller.workspace_id).get(rule_name)
    return OnlineRuleDetail(
        **_public(rule).model_dump(),
        versions=[OnlineRuleVersion(version=v, created_at=t) for v, t in rule.versions],
    )


@router.patch("/rules/{rule_name}", response_model=OnlineRulePublic)
def update_rule(
    rule_name: RuleName, body: OnlineRuleUpdate, engine: EngineDep, caller: Member
) -> OnlineRulePublic:
    """Pause or resume a rule (a new version, so scores say which was in force)."""
    rules = OnlineRules(engine, caller.workspace_id)
    if body.enabled is None:
        return _public(rules.get(rule_name))
    return _public(rules.set_enabled(rule_name, body.enabled))


@router.delete("/rules/{rule_name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_rule(rule_name: RuleName, engine: EngineDep, caller: Admin) -> Response:
    OnlineRules(engine, caller.workspace_id).delete(rule_name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _budget(budgets: OnlineBudgets) -> OnlineBudgetPublic:
    per_day, per_month = budgets.workspace_limits()
    return OnlineBudgetPublic(
        usd_per_day=per_day,
        usd_per_month=per_month,
        windows=[OnlineBudgetWindow(**vars(w)) for w in budgets.state()],
    )


@router.get("/budget", response_model=OnlineBudgetPublic)
def get_budget(engine: EngineDep, caller: Viewer) -> OnlineBudgetPublic:
    """The workspace's limits, and what every budget window has spent and holds."""
    return _budget(OnlineBudgets(engine, caller.workspace_id))


@router.put("/budget", response_model=OnlineBudgetPublic)
def set_budget(body: OnlineBudgetLimits, engine: EngineDep, caller: Admin) -> OnlineBudgetPublic:
    """The workspace's online-evaluation limits (null: none), over every rule together."""
    budgets = OnlineBudgets(engine, caller.workspace_id)
    budgets.set_workspace_limits(body.usd_per_day, body.usd_per_month)
    return _budget(budgets)


class OnlineLedgerEntry(BaseModel):
    rule: str
    rule_version: str
    span_id: str
    outcome: str = Field(
        description="evaluated, deduplicated, filtered_out, not_sampled, over_budget, "
        "rate_limited, failed, superseded, pending or running"
    )
    reason: str | None
    error: str | None
    cost_usd: float | None
    attempts: int
    backfill_job: int | None
    created_at: datetime
    updated_at: datetime


class OnlineTraceEvaluation(BaseModel):
    trace_id: str
    summary: str = Field(description="What happened to the trace, or why nothing did.")
    entries: list[OnlineLedgerEntry]


class OnlineHourly(BaseModel):
    rule: str
    hour: datetime
    outcome: str
    count: int
    cost_usd: float


TraceId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The trace's id.")]


@router.get("/traces/{trace_id}", response_model=OnlineTraceEvaluation)
def trace_evaluation(trace_id: TraceId, engine: EngineDep, caller: Viewer) -> OnlineTraceEvaluation:
    """Why this trace was (or was not) evaluated: each rule's outcome on each span."""
    found = OnlineLedger(engine, caller.workspace_id).for_trace(trace_id)
    return OnlineTraceEvaluation(
        trace_id=found.trace_id,
        summary=found.summary,
        entries=[OnlineLedgerEntry(**vars(e)) for e in found.entries],
    )


@router.get("/activity", response_model=list[OnlineHourly])
def activity(
    engine: EngineDep,
    caller: Viewer,
    rule: Annotated[str | None, Query(pattern=RULE_NAME, description="One rule only.")] = None,
    hours: Annotated[int, Query(ge=1, le=24 * 90)] = 24,
) -> list[OnlineHourly]:
    """Outcomes per rule per hour (newest first), with what the judging cost."""
    return [
        OnlineHourly(**vars(h))
        for h in OnlineLedger(engine, caller.workspace_id).hourly(rule, hours)
    ]


class OnlineBackfillCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: str = Field(pattern=RULE_NAME, description="The rule to run.")
    since: Moment = Field(description="Spans that started at or after this time (with its zone)...")
    until: Moment = Field(description="...and before this one.")
    budget_usd: float = Field(gt=0, allow_inf_nan=False, description="The backfill's own budget.")
    rejudge: bool = Field(
        default=False, description="Judge again spans this rule version has judged already."
    )


@router.post("/backfills", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def create_backfill(
    body: OnlineBackfillCreate, request: Request, engine: EngineDep, caller: Member
) -> JobPublic:
    """Run a rule over past traces of a time range, as a job (follow it at
    ``/api/jobs/{id}``: progress and cost)."""
    payload = backfill_payload(
        engine,
        caller.workspace_id,
        body.rule,
        body.since,
        body.until,
        body.budget_usd,
        rejudge=body.rejudge,
    )
    job_id = request.app.state.jobs.submit_job(caller.workspace_id, KIND, payload)
    return JobPublic(**asdict(job_status(engine, caller.workspace_id, job_id)))
