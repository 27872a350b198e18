"""``reference``: an LLM judge decides whether the answer agrees with the expected answer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from panopticon.errors import JudgeParseError
from panopticon.judges.base import (
    JudgeCall,
    Metric,
    MetricContext,
    MetricResult,
    MetricSpec,
    register_metric,
)
from panopticon.judges.parsing import parse_verdict
from panopticon.stats.kinds import ScoreKind

__all__ = ["ReferenceMetric", "ReferenceSpec", "register"]

SYSTEM = (
    "You are an impartial evaluator. You compare an AI assistant's answer with a reference "
    "answer and decide whether it is correct."
)
TEMPLATE = """Compare the response with the reference answer to the question.
{criteria}
The verdict is "correct" when the response states the same facts as the reference (wording
may differ), "partially_correct" when it is right but incomplete, "incorrect" otherwise.
Answer with JSON only:
{{"reasoning": "<one or two sentences>", "verdict": "correct|partially_correct|incorrect"}}

<question>
{query}
</question>
<reference>
{expected}
</reference>
<response>
{response}
</response>"""

VALUES = {"correct": 1.0, "partially_correct": 0.5, "incorrect": 0.0}


class ReferenceSpec(MetricSpec):
    type: Literal["reference"] = "reference"
    prompt: str | None = Field(default=None, description="Extra instructions for the judge.")
    judge: str | None = Field(default=None, description="Model id of the judge; suite default.")
    threshold: float | None = Field(default=1.0, description="Pass at this value (1 = correct).")


class ReferenceMetric(Metric):
    """Value 1 (correct), 0.5 (partially correct) or 0 (incorrect)."""

    type = "reference"
    needs_judge = True
    spec: ReferenceSpec

    def kind(self) -> ScoreKind:
        return ScoreKind(binary=False, low=0.0, high=1.0)  # 0, 0.5 or 1: a three-step scale

    async def score(self, ctx: MetricContext, judge: JudgeCall | None) -> MetricResult:
        assert judge is not None, "the runner gives every judge metric a judge"
        if not ctx.expected:
            return self.error(
                "this query has no expected answer; add 'expected' to it or "
                "drop the reference metric"
            )
        user = TEMPLATE.format(
            criteria=(self.spec.prompt or "").strip(),
            query=ctx.query,
            expected=ctx.expected,
            response=ctx.response,
        )
        reply = await judge(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}], True
        )
        if reply.error is not None or reply.text is None:
            return self.error(f"judge call failed: {reply.error}", reply)
        try:
            verdict, reasoning = parse_verdict(reply.text, tuple(VALUES))
        except JudgeParseError as exc:
            return self.error(str(exc), reply)
        value = VALUES[verdict]
        return MetricResult(value, value, self.passes(value), reasoning, judge=reply)


def register() -> None:
    register_metric("reference", ReferenceSpec, ReferenceMetric)
