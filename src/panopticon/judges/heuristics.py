"""Deterministic checks: no model call, value 1 (pass) or 0 (fail) unless stated.

``exact``, ``contains``, ``regex``, ``json_valid``, ``json_schema``, ``length`` (value: the
length), ``latency`` (value: milliseconds), ``cost`` (value: USD).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

import orjson
import regex
from pydantic import Field, field_validator, model_validator

from panopticon.judges.base import (
    JudgeCall,
    Metric,
    MetricContext,
    MetricResult,
    MetricSpec,
    register_metric,
)
from panopticon.judges.parsing import strip_code_fence
from panopticon.stats.kinds import ScoreKind

__all__ = ["PATTERN_TIMEOUT_S", "compile_pattern", "register"]

# A pattern is a workspace's (a suite, an online rule, a gateway key's guardrail) and the
# text is a client's: a pattern that backtracks without end on it ((a+)+$ on "aaa...!") is
# stopped after this long, and other threads run meanwhile (see compile_pattern).
PATTERN_TIMEOUT_S = 1.0


def compile_pattern(pattern: str, flags: str = "") -> Any:
    """``pattern`` with its flags (any of i, m, s), compiled by the ``regex`` module (the
    syntax of ``re``): unlike ``re``, its matches take a ``timeout`` and, with
    ``concurrent=True``, let go of the GIL. Raises ``regex.error``."""
    bits = 0
    for char, flag in (("i", regex.I), ("m", regex.M), ("s", regex.S)):
        if char in flags:
            bits |= flag
    return regex.compile(pattern, bits | regex.V0)


def _binary(ok: bool, reasoning: str) -> MetricResult:
    value = 1.0 if ok else 0.0
    return MetricResult(value, value, ok, reasoning)


def _norm(text: str, case_sensitive: bool, strip: bool = True) -> str:
    text = text.strip() if strip else text
    return text if case_sensitive else text.casefold()


class ExactSpec(MetricSpec):
    type: Literal["exact"] = "exact"
    value: str | None = Field(
        default=None, description="Expected text; default: the query's expected answer."
    )
    case_sensitive: bool = False


class ExactMetric(Metric):
    type = "exact"
    spec: ExactSpec

    async def score(self, ctx: MetricContext, judge: JudgeCall | None) -> MetricResult:
        target = self.spec.value if self.spec.value is not None else ctx.expected
        if target is None:
            return self.error(
                "no value to compare with: set 'value' on the metric or 'expected' on the query"
            )
        ok = _norm(ctx.response, self.spec.case_sensitive) == _norm(
            target, self.spec.case_sensitive
        )
        return _binary(ok, "matches exactly" if ok else f"differs from {target[:80]!r}")


class ContainsSpec(MetricSpec):
    type: Literal["contains"] = "contains"
    values: list[str] = Field(
        default_factory=list, description="Texts to look for; default: the expected answer."
    )
    mode: Literal["any", "all", "none"] = "any"
    case_sensitive: bool = False


class ContainsMetric(Metric):
    type = "contains"
    spec: ContainsSpec

    async def score(self, ctx: MetricContext, judge: JudgeCall | None) -> MetricResult:
        values = self.spec.values or ([ctx.expected] if ctx.expected else [])
        if not values:
            return self.error(
                "nothing to look for: set 'values' on the metric or 'expected' on the query"
            )
        hay = _norm(ctx.response, self.spec.case_sensitive, strip=False)
        found = [v for v in values if _norm(v, self.spec.case_sensitive, strip=False) in hay]
        ok = {"any": bool(found), "all": len(found) == len(values), "none": not found}[
            self.spec.mode
        ]
        return _binary(ok, f"found {len(found)} of {len(values)} ({self.spec.mode})")


class RegexSpec(MetricSpec):
    type: Literal["regex"] = "regex"
    pattern: str
    flags: str = Field(default="", description="Any of i (ignore case), m, s.")
    match: Literal["search", "full"] = "search"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            compile_pattern(v)
        except regex.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return v

    @field_validator("flags")
    @classmethod
    def _known_flags(cls, v: str) -> str:
        if set(v) - set("ims"):
            raise ValueError("flags may contain only i, m and s")
        return v


class RegexMetric(Metric):
    type = "regex"
    spec: RegexSpec

    def __init__(self, spec: MetricSpec) -> None:
        super().__init__(spec)
        self._re = compile_pattern(self.spec.pattern, self.spec.flags)

    def _find(self, text: str) -> Any:
        if self.spec.match == "full":
            return self._re.fullmatch(text.strip(), timeout=PATTERN_TIMEOUT_S, concurrent=True)
        return self._re.search(text, timeout=PATTERN_TIMEOUT_S, concurrent=True)

    async def score(self, ctx: MetricContext, judge: JudgeCall | None) -> MetricResult:
        try:  # in a thread: the caller's event loop goes on while it runs
            found = await asyncio.to_thread(self._find, ctx.response)
        except TimeoutError:
            return MetricResult(
                None,
                None,
                None,
                error=f"the pattern took more than {PATTERN_TIMEOUT_S:g} s on this text; "
                "simplify it (a nested quantifier such as (a+)+ backtracks without end)",
            )
        return _binary(found is not None, "pattern found" if found else "pattern not found")


class JsonValidSpec(MetricSpec):
    type: Literal["json_valid"] = "json_valid"


class JsonValidMetric(Metric):
    type = "json_valid"

    async def score(self, ctx: MetricContext, judge: JudgeCall | None) -> MetricResult:
        try:
            orjson.loads(strip_code_fence(ctx.response))
        except orjson.JSONDecodeError as exc:
            return _binary(False, f"not JSON: {exc}")
        return _binary(True, "valid JSON")


class JsonSchemaSpec(MetricSpec):
    type: Literal["json_schema"] = "json_schema"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    schema_file: str | None = Field(default=None, description="Path, relative to the suite.")

    @model_validator(mode="after")
    def _one_schema(self) -> JsonSchemaSpec:
        if (self.schema_ is None) == (self.schema_file is None):
            raise ValueError("give exactly one of 'schema' and 'schema_file'")
        if self.schema_ is not None:
            from jsonschema import validators

            cls = validators.validator_for(self.schema_)
            try:
                cls.check_schema(self.schema_)
            except Exception as exc:  # jsonschema.SchemaError
                raise ValueError(f"not a valid JSON schema: {exc}") from None
        return self


class JsonSchemaMetric(Metric):
    type = "json_schema"
    spec: JsonSchemaSpec

    def __init__(self, spec: MetricSpec) -> None:
        super().__init__(spec)
        from jsonschema import validators

        schema = self.spec.schema_
        if schema is None:  # the suite loader resolves schema_file to an absolute path
            schema = orjson.loads(Path(str(self.spec.schema_file)).read_bytes())
        self._validator = validators.validator_for(schema)(schema)

    async def score(self, ctx: MetricContext, judge: JudgeCall | None) -> MetricResult:
        try:
            data = orjson.loads(strip_code_fence(ctx.response))
        except orjson.JSONDecodeError as exc:
            return _binary(False, f"not JSON: {exc}")
        errors = sorted(self._validator.iter_errors(data), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.path) or "(root)"
            return _binary(
                False, f"{len(errors)} schema error(s); first at {where}: {first.message}"
            )
        return _binary(True, "matches the schema")


class LengthSpec(MetricSpec):
    type: Literal["length"] = "length"
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    unit: Literal["chars", "words"] = "chars"

    @model_validator(mode="after")
    def _bounds(self) -> LengthSpec:
        if self.min is None and self.max is None:
            raise ValueError("give 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("'min' is larger than 'max'")
        return self


class LengthMetric(Metric):
    """Value: the length; passes within [min, max]."""

    type = "length"
    spec: LengthSpec

    def kind(self) -> ScoreKind:
        return ScoreKind(binary=True)  # passes or not; the value, a length, has no bound

    def passes(self, value: float) -> bool:
        return (self.spec.min is None or value >= self.spec.min) and (
            self.spec.max is None or value <= self.spec.max
        )

    async def score(self, ctx: MetricContext, judge: JudgeCall | None) -> MetricResult:
        n = len(ctx.response) if self.spec.unit == "chars" else len(ctx.response.split())
        ok = self.passes(n)
        return MetricResult(
            float(n),
            1.0 if ok else 0.0,
            ok,
            f"{n} {self.spec.unit} ({self._bounds()})",
        )

    def _bounds(self) -> str:
        """The bounds in words (the reasoning said 'allowed None..800' of a max alone)."""
        low, high = self.spec.min, self.spec.max
        if low is not None and high is not None:
            return f"allowed {low:g} to {high:g}"
        return f"at least {low:g}" if low is not None else f"at most {high:g}"


class LatencySpec(MetricSpec):
    type: Literal["latency"] = "latency"
    max_ms: float = Field(gt=0)


class LatencyMetric(Metric):
    """Value: the answer's latency in ms; passes at or under ``max_ms``."""

    type = "latency"
    quality = False
    spec: LatencySpec

    def kind(self) -> ScoreKind:
        return ScoreKind(binary=True, quality=False)

    def passes(self, value: float) -> bool:
        return value <= self.spec.max_ms

    async def score(self, ctx: MetricContext, judge: JudgeCall | None) -> MetricResult:
        if ctx.latency_ms is None:
            return self.error(
                "the answer has no latency (it came from the cache of an earlier run without one)"
            )
        ok = self.passes(ctx.latency_ms)
        return MetricResult(
            ctx.latency_ms,
            1.0 if ok else 0.0,
            ok,
            f"{ctx.latency_ms:.0f} ms (limit {self.spec.max_ms:g} ms)",
        )


class CostSpec(MetricSpec):
    type: Literal["cost"] = "cost"
    max_usd: float = Field(gt=0)


class CostMetric(Metric):
    """Value: the answer's cost in USD; passes at or under ``max_usd``."""

    type = "cost"
    quality = False
    spec: CostSpec

    def kind(self) -> ScoreKind:
        return ScoreKind(binary=True, quality=False)

    def passes(self, value: float) -> bool:
        return value <= self.spec.max_usd

    async def score(self, ctx: MetricContext, judge: JudgeCall | None) -> MetricResult:
        if ctx.cost_usd is None:
            return self.error(
                "the answer's cost is unknown (no price for this model); set "
                "'price' on the model in the suite"
            )
        ok = self.passes(ctx.cost_usd)
        return MetricResult(
            ctx.cost_usd,
            1.0 if ok else 0.0,
            ok,
            f"${ctx.cost_usd:.6f} (limit ${self.spec.max_usd:g})",
        )


def register() -> None:
    for spec, metric in (
        (ExactSpec, ExactMetric),
        (ContainsSpec, ContainsMetric),
        (RegexSpec, RegexMetric),
        (JsonValidSpec, JsonValidMetric),
        (JsonSchemaSpec, JsonSchemaMetric),
        (LengthSpec, LengthMetric),
        (LatencySpec, LatencyMetric),
        (CostSpec, CostMetric),
    ):
        register_metric(metric.type, spec, metric)
