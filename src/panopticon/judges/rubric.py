"""``rubric``: an LLM judge scores the answer against the metric's criteria on a scale."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from panopticon.errors import JudgeParseError
from panopticon.judges.base import (
    JudgeCall,
    Metric,
    MetricContext,
    MetricResult,
    MetricSpec,
    register_metric,
)
from panopticon.judges.parsing import parse_score
from panopticon.stats.kinds import ScoreKind

__all__ = ["RubricMetric", "RubricSpec", "register"]

SYSTEM = (
    "You are an impartial evaluator of answers written by an AI assistant. "
    "Judge only by the criteria you are given."
)
TEMPLATE = """Evaluate the response below by these criteria:
{criteria}

Score it from {low:g} to {high:g}, where {low:g} is the worst and {high:g} the best.
Answer with JSON only: {{"reasoning": "<one or two sentences>", "score": <number>}}

<question>
{query}
</question>
{context_block}<response>
{response}
</response>"""


class RubricSpec(MetricSpec):
    type: Literal["rubric"] = "rubric"
    prompt: str = Field(min_length=1, description="The criteria the judge applies.")
    scale: tuple[float, float] = Field(default=(1, 10), description="[lowest, highest] score.")
    judge: str | None = Field(default=None, description="Model id of the judge; suite default.")
    include_context: bool = Field(default=True, description="Show the query's context.")

    @model_validator(mode="after")
    def _scale_ordered(self) -> RubricSpec:
        if self.scale[0] >= self.scale[1]:
            raise ValueError("scale must be [lowest, highest] with lowest < highest")
        if self.threshold is not None and not self.scale[0] <= self.threshold <= self.scale[1]:
            raise ValueError(
                f"threshold {self.threshold:g} is outside the scale "
                f"{self.scale[0]:g} to {self.scale[1]:g}"
            )
        return self


class RubricMetric(Metric):
    type = "rubric"
    needs_judge = True
    spec: RubricSpec

    def kind(self) -> ScoreKind:
        return ScoreKind(binary=False, low=self.spec.scale[0], high=self.spec.scale[1])

    def criteria(self) -> str:
        """What the judge applies; subclasses with fixed criteria override this."""
        return self.spec.prompt.strip()

    def messages(self, ctx: MetricContext) -> list[dict[str, str]]:
        low, high = self.spec.scale
        context_block = ""
        if self.spec.include_context and ctx.context:
            context_block = f"<context>\n{ctx.context}\n</context>\n"
        user = TEMPLATE.format(
            criteria=self.criteria(),
            low=low,
            high=high,
            query=ctx.query,
            context_block=context_block,
            response=ctx.response,
        )
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]

    async def score(self, ctx: MetricContext, judge: JudgeCall | None) -> MetricResult:
        assert judge is not None, "the runner gives every judge metric a judge"
        reply = await judge(self.messages(ctx), True)
        if reply.error is not None or reply.text is None:
            return self.error(f"judge call failed: {reply.error}", reply)
        low, high = self.spec.scale
        try:
            value, reasoning = parse_score(reply.text, low, high)
        except JudgeParseError as exc:
            return self.error(str(exc), reply)
        return MetricResult(
            value, (value - low) / (high - low), self.passes(value), reasoning, judge=reply
        )


def register() -> None:
    register_metric("rubric", RubricSpec, RubricMetric)
