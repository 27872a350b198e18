"""An online-evaluation rule: which metrics, judged by which model, on which production spans,
how many of them, and within which budgets.

Rules are written as YAML (like suites) or sent to the API as JSON; both are validated here,
every problem at once, each with its field (and line, from a file). A rule's version is the
hash of what it says, so an edit that changes nothing (a comment, key order) is not a new
version, and every score records the version that produced it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from panopticon.errors import ConfigError, Issue
from panopticon.evaluation.sources import Located, dotted, validation_issues
from panopticon.judges.base import MetricSpec, metric_types, spec_class

__all__ = [
    "SPAN_KINDS",
    "Budgets",
    "RuleFilter",
    "RuleSpec",
    "Sampling",
    "parse_rule",
    "rule_version",
]

SpanKind = Literal["llm", "embedding", "retrieval", "tool", "agent", "chain", "guardrail", "other"]
SPAN_KINDS: tuple[str, ...] = get_args(SpanKind)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def _llm_only() -> list[SpanKind]:
    return ["llm"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleFilter(_Strict):
    """Every condition given must hold. Lists match any of their values; model names may use
    shell wildcards (``gpt-4o*``); ``tags`` must all be on the trace; ``metadata`` values must
    be equal."""

    span_kinds: list[SpanKind] = Field(default_factory=_llm_only)
    models: list[str] = Field(default_factory=list)
    prompt_names: list[str] = Field(default_factory=list)
    prompt_versions: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)
    users: list[str] = Field(default_factory=list)
    environments: list[str] = Field(default_factory=list)
    status: Literal["ok", "error", "any"] = "any"
    min_input_chars: int | None = Field(default=None, ge=0)
    max_input_chars: int | None = Field(default=None, ge=0)
    min_output_chars: int | None = Field(default=None, ge=0)
    max_output_chars: int | None = Field(default=None, ge=0)


class Sampling(_Strict):
    """``rate`` of the matching spans, chosen by a hash of the trace id (every replica and
    every rerun chooses the same); with ``min_per_hour``, at least that many per segment per
    hour are judged even when the rate alone would choose fewer."""

    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    min_per_hour: int | None = Field(default=None, ge=1, le=100_000)
    segment_by: Literal["model", "user", "environment", "prompt"] = "model"


class Budgets(_Strict):
    usd_per_day: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    usd_per_month: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class RuleSpec(_Strict):
    name: str
    description: str | None = None
    enabled: bool = True
    metrics: list[dict[str, Any]] = Field(min_length=1)
    judge: str | None = Field(
        default=None, description="A registered model id; needed by LLM-judged metrics."
    )
    filter: RuleFilter = Field(default_factory=RuleFilter)
    sampling: Sampling = Field(default_factory=Sampling)
    max_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    budgets: Budgets = Field(default_factory=Budgets)
    priority: int = Field(default=0, ge=-1000, le=1000)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "use lowercase letters, digits, '.', '_' or '-' (at most 64), starting with a "
                "letter or digit"
            )
        return value


def rule_version(spec: RuleSpec) -> str:
    """The version of what a rule says: the same text gives the same version."""
    canonical = orjson.dumps(spec.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:12]


def parse_rule(
    data: Any, *, doc: Located | None = None, judges: Mapping[str, bool] | None = None
) -> tuple[RuleSpec, list[MetricSpec]]:
    """Validate a rule and its metrics, reporting every problem at once.

    ``judges``: the registered model ids of the workspace (id -> True); when given, the
    judge must be one of them. A metric that needs a judge needs the rule's ``judge``."""
    file = doc.file if doc else None

    def where(*loc: str | int) -> dict[str, Any]:
        return {"file": file, "line": doc.line_of(loc) if doc else None, "field": dotted(loc)}

    if not isinstance(data, dict):
        raise ConfigError(Issue("a rule is a mapping of its settings", file=file))
    issues: list[Issue] = []
    spec: RuleSpec | None = None
    located = doc or Located(data, {}, "")
    try:
        spec = RuleSpec.model_validate(data)
    except ValidationError as err:
        issues += validation_issues(err, located)
    metrics: list[MetricSpec] = []
    given = data.get("metrics")
    raw_metrics: list[Any] = given if isinstance(given, list) else []
    names: set[str] = set()
    for i, raw in enumerate(raw_metrics):
        type_name = raw.get("type") if isinstance(raw, dict) else None
        cls = spec_class(type_name) if isinstance(type_name, str) else None
        if cls is None:
            issues.append(
                Issue(
                    "missing 'type'" if type_name is None else f"unknown metric type '{type_name}'",
                    hint="use one of: " + ", ".join(metric_types()),
                    **where("metrics", i, "type"),
                )
            )
            continue
        try:
            metric = cls.model_validate(raw)
        except ValidationError as err:
            issues += validation_issues(err, located, ("metrics", i))
            continue
        if metric.name in names:
            issues.append(
                Issue(f"two metrics are named '{metric.name}'", **where("metrics", i, "name"))
            )
        names.add(metric.name)
        metrics.append(metric)
    if spec is not None:
        from panopticon.judges.base import build_metric

        judged = [m.name for m in metrics if build_metric(m).needs_judge]
        if judged and spec.judge is None:
            issues.append(
                Issue(
                    f"{', '.join(judged)} need a judge model",
                    hint="set 'judge' to a registered model id",
                    **where("judge"),
                )
            )
        f = spec.filter
        for low, high in (
            ("min_input_chars", "max_input_chars"),
            ("min_output_chars", "max_output_chars"),
        ):
            lo, hi = getattr(f, low), getattr(f, high)
            if lo is not None and hi is not None and lo > hi:
                issues.append(Issue(f"{low} is above {high}", **where("filter", low)))
    # the judge is checked from the data as given, so that it is reported beside the other
    # problems even when the rule's settings do not validate yet
    judge = data.get("judge")
    if isinstance(judge, str) and judges is not None and judge not in judges:
        known = ", ".join(sorted(judges)) or "none registered yet"
        issues.append(
            Issue(
                f"no model '{judge}' in this workspace",
                hint=f"register it first; known: {known}",
                **where("judge"),
            )
        )
    if issues:
        raise ConfigError(issues)
    assert spec is not None
    return spec, metrics
