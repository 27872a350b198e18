"""Online-evaluation rules of a workspace, and the budgets their judge calls are charged to.

A rule is applied from YAML (CLI), JSON (API) or a form (dashboard) through
:meth:`OnlineRules.apply`: validated whole against the metric types and the workspace's
registered models, then stored as a new version only when what it says changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from panopticon.errors import ConfigError, Issue, NotFoundError
from panopticon.evaluation.sources import Located, load_yaml
from panopticon.evaluation.spec import model_price
from panopticon.online.budget import Period, period_start
from panopticon.online.rules import RuleSpec, parse_rule, rule_version
from panopticon.services.registry import ModelRegistry
from panopticon.store.engine import Engine
from panopticon.store.queries import online as q
from panopticon.store.tables.base import utcnow

__all__ = [
    "Applied",
    "BudgetState",
    "Hold",
    "OnlineBudgets",
    "OnlineRules",
    "Refusal",
    "RuleDetail",
    "RulePublic",
    "load_rule_file",
]


@dataclass(frozen=True)
class RulePublic:
    name: str
    enabled: bool
    priority: int
    version: str
    spec: RuleSpec
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RuleDetail(RulePublic):
    versions: list[tuple[str, datetime]]  # newest first


@dataclass(frozen=True)
class Applied:
    rule: RulePublic
    changed: bool  # False: the rule was already exactly this


@dataclass(frozen=True)
class Hold:
    """Money held for one judge call in the windows it was reserved in."""

    windows: tuple[q.Window, ...]
    amount_usd: float


class Refusal(str):
    """Why no hold was given. ``busy``: what is spent leaves room for the call, but holds
    of calls in flight fill it; once they settle (real costs are below their bounds) the
    call may fit, so the caller waits and tries again rather than giving up."""

    busy: bool

    def __new__(cls, reason: str, *, busy: bool = False) -> Refusal:
        made = super().__new__(cls, reason)
        made.busy = busy
        return made


@dataclass(frozen=True)
class BudgetState:
    scope: str
    period: str
    period_start: datetime
    limit_usd: float
    spent_usd: float
    reserved_usd: float


def _public(row: q.RuleRow) -> RulePublic:
    return RulePublic(
        row.name,
        row.enabled,
        row.priority,
        row.version,
        RuleSpec.model_validate(row.spec),
        row.created_at,
        row.updated_at,
    )


def load_rule_file(path: Path) -> tuple[Any, Located]:
    """A rule file's data and the line of every key, for errors that name them."""
    doc = load_yaml(path, {})
    return doc.data, doc


def _unpriced(registry: ModelRegistry, models: dict[str, Any], judge: str) -> bool:
    """Whether a judge's calls have no price (so no budget can bound them)."""
    spec = registry.spec(judge, "judge")
    return spec.provider != "fake" and model_price(spec, models[judge]["provider"]) is None


class OnlineRules:
    def __init__(self, engine: Engine, workspace_id: int) -> None:
        self.engine = engine
        self.ws = workspace_id

    def validate(self, data: Any, *, doc: Located | None = None) -> RuleSpec:
        """Check a rule whole against this workspace (`apply` and `apply --check` alike):
        its settings and metrics, a judge registered here, and a judge with a price when a
        budget would hold its calls (one with no price cannot be bounded, so every span
        would end `over_budget` with no call made)."""
        registry = ModelRegistry(self.engine, self.ws)
        models = {m["id"]: m for m in registry.all()}
        spec, _ = parse_rule(data, doc=doc, judges=dict.fromkeys(models, True))
        if spec.judge is not None and spec.judge in models:
            budgets = [
                f"the rule's {name}"
                for name, value in (
                    ("usd_per_day", spec.budgets.usd_per_day),
                    ("usd_per_month", spec.budgets.usd_per_month),
                )
                if value is not None
            ]
            ws_day, ws_month = OnlineBudgets(self.engine, self.ws).workspace_limits()
            if ws_day is not None or ws_month is not None:
                budgets.append("the workspace's budget (panopticon online budget)")
            if budgets and _unpriced(registry, models, spec.judge):
                raise ConfigError(
                    Issue(
                        f"the judge '{spec.judge}' has no price, so {' and '.join(budgets)} "
                        "cannot bound its cost: every span would be over budget, no call made",
                        hint=f"give '{spec.judge}' a price (POST /api/models with \"price\": "
                        '{"input": USD per million tokens, "output": ...}), or take the '
                        "budgets away",
                        file=doc.file if doc else None,
                        line=doc.line_of(("judge",)) if doc else None,
                        field="judge",
                    )
                )
        return spec

    def apply(self, data: Any, *, doc: Located | None = None) -> Applied:
        spec = self.validate(data, doc=doc)
        spec_json = spec.model_dump(mode="json")
        with self.engine.begin() as conn:
            row, changed = q.save_rule(
                conn,
                self.ws,
                spec.name,
                rule_version(spec),
                spec_json,
                enabled=spec.enabled,
                priority=spec.priority,
            )
        return Applied(_public(row), changed)

    def list(self) -> list[RulePublic]:
        with self.engine.connect() as conn:
            return [_public(r) for r in q.list_rules(conn, self.ws)]

    def _row(self, conn: Any, name: str) -> q.RuleRow:
        row = q.get_rule(conn, self.ws, name)
        if row is None:
            names = ", ".join(r.name for r in q.list_rules(conn, self.ws)) or "none yet"
            raise NotFoundError(
                f"no online rule '{name}' in this workspace (rules: {names}); "
                "create it with `panopticon online apply RULE.yaml` or POST /api/online/rules"
            )
        return row

    def get(self, name: str) -> RuleDetail:
        with self.engine.connect() as conn:
            row = self._row(conn, name)
            versions = q.rule_versions(conn, row.id)
        return RuleDetail(**vars(_public(row)), versions=versions)

    def set_enabled(self, name: str, enabled: bool) -> RulePublic:
        """Pause or resume a rule. Its spec's ``enabled`` is kept in step, so the version
        says whether it was on."""
        current = self.get(name)
        data = current.spec.model_dump(mode="json")
        data["enabled"] = enabled
        return self.apply(data).rule

    def delete(self, name: str) -> None:
        with self.engine.begin() as conn:
            self._row(conn, name)
            q.delete_rule(conn, self.ws, name)


class OnlineBudgets:
    """The budgets a rule's judge calls are charged to: the rule's own (per day and month)
    and the workspace's. A reservation holds the estimated cost in all of them at once, or
    is refused; settling replaces it with the real cost."""

    def __init__(
        self,
        engine: Engine,
        workspace_id: int,
        *,
        clock: Callable[[], datetime] = utcnow,
        limits: tuple[float | None, float | None] | None = None,
    ) -> None:
        """``limits``: the workspace's (per day, per month) limits as read just before, so
        that a worker judging many entries at once reads them once, not once per call."""
        self.engine = engine
        self.ws = workspace_id
        self.clock = clock
        self._limits = limits

    def workspace_limits(self) -> tuple[float | None, float | None]:
        if self._limits is not None:
            return self._limits
        with self.engine.connect() as conn:
            return q.workspace_budgets(conn, self.ws)

    def set_workspace_limits(self, per_day: float | None, per_month: float | None) -> None:
        for name, value in (("usd_per_day", per_day), ("usd_per_month", per_month)):
            if value is not None and not (value > 0 and value < float("inf")):
                raise ConfigError(Issue("must be a positive number of dollars", field=name))
        if per_day is not None or per_month is not None:
            # a rule whose judge has no price could not be bounded: every span it selects
            # would end over budget, no call made (as a rule saved under a budget is refused)
            registry = ModelRegistry(self.engine, self.ws)
            models = {m["id"]: m for m in registry.all()}
            unpriced = [
                f"'{r.name}' (judge '{r.spec.judge}')"
                for r in OnlineRules(self.engine, self.ws).list()
                if r.enabled
                and r.spec.judge is not None
                and r.spec.judge in models
                and _unpriced(registry, models, r.spec.judge)
            ]
            if unpriced:
                raise ConfigError(
                    Issue(
                        f"the enabled rule(s) {', '.join(unpriced)} judge with a model that "
                        "has no price, so a workspace budget cannot bound their cost: every "
                        "span they select would be over budget, no call made",
                        hint='give those judges a price (POST /api/models with "price"), '
                        "or pause those rules (panopticon online disable NAME), then set the "
                        "budget",
                        field="usd_per_day" if per_day is not None else "usd_per_month",
                    )
                )
        with self.engine.begin() as conn:
            q.set_workspace_budgets(conn, self.ws, per_day, per_month)

    def windows(self, rule: RuleSpec) -> list[q.Window]:
        now = self.clock()
        ws_day, ws_month = self.workspace_limits()
        limits: list[tuple[str, Period, float | None]] = [
            (f"rule:{rule.name}", "day", rule.budgets.usd_per_day),
            (f"rule:{rule.name}", "month", rule.budgets.usd_per_month),
            ("workspace", "day", ws_day),
            ("workspace", "month", ws_month),
        ]
        return [
            q.Window(scope, period, period_start(now, period), limit)
            for scope, period, limit in limits
            if limit is not None
        ]

    def reserve(
        self, rule: RuleSpec, estimate_usd: float, *, extra: tuple[q.Window, ...] = ()
    ) -> Hold | Refusal:
        """A hold of ``estimate_usd`` in every budget of the rule (and the ``extra`` ones, a
        backfill's own), or the reason it was refused (then no call may be made). Settle
        every hold, whatever the call did."""
        windows = tuple(self.windows(rule)) + extra
        if not windows:
            return Hold(windows, 0.0)
        if estimate_usd != estimate_usd:  # NaN: a judge with no price cannot be bounded
            return Refusal("the judge model has no price, so a budget cannot bound its cost")
        with self.engine.begin() as conn:
            refused = q.reserve(conn, self.ws, list(windows), estimate_usd)
            if refused is not None:
                conn.rollback()
                label, busy = refused
                if busy:
                    return Refusal(
                        f"the {label} budget's room is held by judge calls in flight", busy=True
                    )
                return Refusal(f"the {label} budget would be passed")
        return Hold(windows, estimate_usd)

    def settle(self, hold: Hold, actual_usd: float | None) -> None:
        """Release the hold and charge what the call cost (None: it was not billed). The
        hold names its windows, so a call that ends after midnight settles yesterday's."""
        if hold.windows:
            with self.engine.begin() as conn:
                q.settle(conn, self.ws, list(hold.windows), hold.amount_usd, actual_usd)

    def state(self) -> list[BudgetState]:
        with self.engine.connect() as conn:
            return [BudgetState(**vars(r)) for r in q.budget_rows(conn, self.ws)]
