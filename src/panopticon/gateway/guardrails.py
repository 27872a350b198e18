"""Guardrails: the key's checks on a call's input and output, with the existing heuristic
and safety metrics (``judges/``). Each verdict is kept (stored as a score on the span);
``block`` refuses the call with a clear error, ``redact`` rewrites the text (PII and regex
checks), ``flag`` only records.

The text under check is put in the metric's ``response`` (and ``query``), so every metric
reads it as it reads an answer. LLM-judge checks (``rubric``, ``prompt_injection`` with a
``judge``) call the registered model they name through the gateway's own upstream path; a
judge that fails is recorded as an error and does not block. Output checks see the whole
answer: on a stream they run when it ends and can only flag (the chunks are already with
the client).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from panopticon.errors import GatewayError
from panopticon.judges.base import (
    JudgeCall,
    Metric,
    MetricContext,
    build_metric,
    spec_class,
)
from panopticon.judges.heuristics import PATTERN_TIMEOUT_S, compile_pattern
from panopticon.judges.safety import redact_pii
from panopticon.services.gateway_keys import GuardrailSpec

__all__ = ["GuardrailBlocked", "Guardrails", "JudgeFactory", "Verdict"]


# The judge call for a registered model (the gateway sends it upstream itself)
JudgeFactory = Callable[[str], JudgeCall]


@dataclass
class Verdict:
    name: str
    on: str  # input | output
    action: str
    passed: bool | None
    value: float | None
    reasoning: str | None
    latency_ms: float
    error: str | None = None

    def score(self) -> dict[str, Any]:
        return {
            "name": f"guardrail.{self.name}",
            "value": self.value,
            "passed": self.passed,
            "label": self.action if self.passed is False else "pass",
            "comment": self.reasoning if self.error is None else self.error,
            "stage": self.on,
            "latency_ms": round(self.latency_ms, 3),
        }


@dataclass
class _Check:
    spec: GuardrailSpec
    metric: Metric
    regex: Any  # a compiled pattern (judges.heuristics.compile_pattern), or None


class Guardrails:
    """The compiled checks of one key."""

    def __init__(self, specs: list[GuardrailSpec]) -> None:
        self.checks: list[_Check] = []
        for spec in specs:
            cls = spec_class(str(spec.metric["type"]))
            assert cls is not None
            metric = build_metric(cls.model_validate(spec.metric))
            regex = None
            if spec.metric["type"] == "regex":
                regex = compile_pattern(
                    str(spec.metric["pattern"]), str(spec.metric.get("flags", ""))
                )
            self.checks.append(_Check(spec, metric, regex))
        self.on_input = [c for c in self.checks if c.spec.on in ("input", "both")]
        self.on_output = [c for c in self.checks if c.spec.on in ("output", "both")]

    def __bool__(self) -> bool:
        return bool(self.checks)

    async def run(
        self,
        stage: str,
        text: str,
        *,
        can_block: bool = True,
        judge: JudgeFactory | None = None,
    ) -> tuple[str, list[Verdict]]:
        """Check ``text`` at ``stage`` (input | output); the text after redaction and the
        verdicts. Raises a 400 GatewayError when a ``block`` check fails."""
        checks = self.on_input if stage == "input" else self.on_output
        verdicts: list[Verdict] = []
        for check in checks:
            started = time.perf_counter()
            ctx = MetricContext(query=text, response=text, messages=[])
            name = check.spec.metric.get("judge")
            call = judge(str(name)) if judge is not None and name else None
            try:
                result = await check.metric.score(ctx, call)
                error = result.error
            except Exception as exc:
                result, error = None, f"{exc.__class__.__name__}: {exc}"
            passed = None if result is None else result.passed
            verdict = Verdict(
                check.metric.name,
                stage,
                check.spec.action,
                passed,
                None if result is None else result.value,
                None if result is None else result.reasoning,
                0.0,
                error,
            )
            if passed is False and check.spec.action == "redact":
                text = await asyncio.to_thread(self._redact, check, text)
            verdict.latency_ms = (time.perf_counter() - started) * 1000.0
            verdicts.append(verdict)
            if passed is False and check.spec.action == "block" and can_block:
                raise GuardrailBlocked(verdict, verdicts)
        return text, verdicts

    @staticmethod
    def _redact(check: _Check, text: str) -> str:
        if check.regex is not None:
            try:
                redacted: str = check.regex.sub(
                    "[REDACTED]", text, timeout=PATTERN_TIMEOUT_S, concurrent=True
                )
            except TimeoutError:
                return "[REDACTED]"  # what could not be searched in time is not let through
            return redacted
        if check.spec.metric["type"] == "pii":
            kinds = tuple(check.spec.metric.get("kinds") or ()) or None
            return redact_pii(text, kinds)[0] if kinds else redact_pii(text)[0]
        return text


class GuardrailBlocked(GatewayError):
    def __init__(self, verdict: Verdict, verdicts: list[Verdict]) -> None:
        where = "request" if verdict.on == "input" else "answer"
        super().__init__(
            f"blocked by guardrail '{verdict.name}' on the {where}: {verdict.reasoning}",
            400,
            "invalid_request_error",
            code="guardrail_blocked",
        )
        self.verdicts = verdicts
