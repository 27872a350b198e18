"""``pairwise``: a judge sees two models' answers to the same query and picks one, or a tie.

Each pair is judged twice, once in each order. A verdict other than a tie needs both orders
to agree; when they disagree the pair is a tie. Both verdicts are kept, so that reports
show the judge's position preference, P(first shown wins) - P(second shown wins), beside
the share of pairs whose orders disagreed (:mod:`panopticon.stats.position`).
The runner judges pairs after every model has answered (see ``evaluation.runner``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field

from panopticon.errors import JudgeParseError
from panopticon.judges.base import (
    JudgeCall,
    JudgeReply,
    Metric,
    MetricContext,
    MetricResult,
    MetricSpec,
    register_metric,
)
from panopticon.judges.parsing import parse_verdict

__all__ = ["PairVerdict", "PairwiseMetric", "PairwiseSpec", "register"]

SYSTEM = (
    "You are an impartial evaluator comparing two answers by AI assistants. The order "
    "in which they are shown says nothing about their quality."
)
TEMPLATE = """Compare the two responses to the question by these criteria:
{criteria}

Answer with JSON only: {{"reasoning": "<one or two sentences>", "verdict": "A" | "B" | "tie"}}
"A" means Response A is better, "B" that Response B is better.

<question>
{query}
</question>
<response_a>
{first}
</response_a>
<response_b>
{second}
</response_b>"""


class PairwiseSpec(MetricSpec):
    type: Literal["pairwise"] = "pairwise"
    prompt: str = Field(
        default="Which response answers the question better: more helpful, correct and complete?",
        min_length=1,
    )
    judge: str | None = Field(default=None, description="Model id of the judge.")
    models: list[str] | None = Field(default=None, description="Models to pair (default: all).")


@dataclass(frozen=True)
class PairVerdict:
    verdict_ab: str | None  # in terms of a and b: "a", "b", "tie"
    verdict_ba: str | None
    final: str | None
    reasoning_ab: str | None
    reasoning_ba: str | None
    replies: tuple[JudgeReply, ...]
    error: str | None = None


def _one(text: str) -> tuple[str, str | None]:
    verdict, reasoning = parse_verdict(text, ("a", "b", "tie"))
    return verdict, reasoning


class PairwiseMetric(Metric):
    type = "pairwise"
    needs_judge = True
    pairwise: ClassVar[bool] = True
    spec: PairwiseSpec

    async def score(self, ctx: MetricContext, judge: JudgeCall | None) -> MetricResult:
        return self.error("pairwise judges pairs of answers, not single answers")

    def messages(self, query: str, first: str, second: str) -> list[dict[str, str]]:
        user = TEMPLATE.format(
            criteria=self.spec.prompt.strip(), query=query, first=first, second=second
        )
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]

    async def judge_pair(
        self, query: str, answer_a: str, answer_b: str, judge: JudgeCall
    ) -> PairVerdict:
        reply_ab = await judge(self.messages(query, answer_a, answer_b), True)
        reply_ba = await judge(self.messages(query, answer_b, answer_a), True)
        replies = (reply_ab, reply_ba)
        for reply in replies:
            if reply.error is not None or reply.text is None:
                return PairVerdict(
                    None, None, None, None, None, replies, f"judge call failed: {reply.error}"
                )
        try:
            ab, reasoning_ab = _one(reply_ab.text or "")
            ba_shown, reasoning_ba = _one(reply_ba.text or "")
        except JudgeParseError as exc:
            return PairVerdict(None, None, None, None, None, replies, str(exc))
        ba = {"a": "b", "b": "a", "tie": "tie"}[ba_shown]  # b was shown first
        final = ab if ab == ba else "tie"
        return PairVerdict(ab, ba, final, reasoning_ab, reasoning_ba, replies)


def register() -> None:
    register_metric("pairwise", PairwiseSpec, PairwiseMetric)
