"""``panel``: several judge models score the same answer; their scores are combined.

Each judge sees the rubric prompt of the metric. ``aggregate`` is ``mean``, ``median`` or
``majority`` (pass when most judges' scores reach the threshold). With ``debate: true`` a
second round shows each judge the others' scores and reasoning and asks for a final score
(the multi-LLM debate of the LLMOps toolkit design). Every vote, of every round, is kept in
the score's details; the report measures the judges' agreement (Krippendorff's alpha).
"""

from __future__ import annotations

import asyncio
from statistics import fmean, median
from typing import Any, Literal

from pydantic import Field, model_validator

from panopticon.errors import JudgeParseError
from panopticon.judges.base import (
    JudgeCall,
    JudgeReply,
    MetricContext,
    MetricResult,
    register_metric,
)
from panopticon.judges.parsing import parse_score
from panopticon.judges.rubric import RubricMetric, RubricSpec

__all__ = ["PanelMetric", "PanelSpec", "register"]

DEBATE = """Other judges assessed the same response:
{others}
Consider their arguments; keep your score or change it. Answer with JSON only:
{{"reasoning": "<one or two sentences>", "score": <number from {low:g} to {high:g}>}}"""


class PanelSpec(RubricSpec):
    type: Literal["panel"] = "panel"  # type: ignore[assignment]
    judges: list[str] = Field(min_length=2, description="Judge model ids (two or more).")
    aggregate: Literal["mean", "median", "majority"] = "mean"
    debate: bool = False

    @model_validator(mode="after")
    def _majority_needs_threshold(self) -> PanelSpec:
        if self.aggregate == "majority" and self.threshold is None:
            raise ValueError("aggregate: majority needs a threshold (a judge's pass mark)")
        if len(set(self.judges)) != len(self.judges):
            raise ValueError("a judge is listed twice")
        return self


def _combine(replies: list[JudgeReply]) -> JudgeReply:
    """The votes as one reply. Its cost is what was paid: the votes that were answered (a
    failed call has no cost to count, and must not hide the others'), and of those only the
    ones not from the cache, unless all were (as a cached score keeps its cost)."""
    answered = [r for r in replies if r.error is None]
    cached = bool(answered) and all(r.cached for r in answered)
    costs = [r.cost_usd for r in answered if cached or not r.cached]
    return JudgeReply(
        text=None,
        model="panel:" + ",".join(dict.fromkeys(r.model for r in replies)),
        input_tokens=sum(r.input_tokens or 0 for r in replies),
        output_tokens=sum(r.output_tokens or 0 for r in replies),
        cost_usd=None if any(c is None for c in costs) else sum(c or 0 for c in costs),
        cached=cached,
    )


class PanelMetric(RubricMetric):
    type = "panel"
    spec: PanelSpec

    async def score(self, ctx: MetricContext, judge: JudgeCall | None) -> MetricResult:
        assert judge is not None, "the runner gives every judge metric a judge"
        low, high = self.spec.scale
        messages = self.messages(ctx)
        replies: list[JudgeReply] = []

        async def ask(name: str, msgs: list[dict[str, str]], rnd: int) -> dict[str, Any]:
            reply = await judge(msgs, True, model=name)
            replies.append(reply)
            vote: dict[str, Any] = {
                "judge": name,
                "round": rnd,
                "value": None,
                "reasoning": None,
                "error": reply.error,
                "text": reply.text,
            }
            if reply.error is None and reply.text is not None:
                try:
                    vote["value"], vote["reasoning"] = parse_score(reply.text, low, high)
                except JudgeParseError as exc:
                    vote["error"] = str(exc)
            return vote

        votes = list(await asyncio.gather(*(ask(j, messages, 1) for j in self.spec.judges)))
        final = votes
        if self.spec.debate:

            def others(name: str) -> str:
                return "\n".join(
                    f"- {v['judge']}: score {v['value']:g}: {v['reasoning']}"
                    for v in votes
                    if v["judge"] != name and v["value"] is not None
                )

            second = []
            for v in votes:
                if v["value"] is None:
                    continue
                follow = [
                    *messages,
                    {"role": "assistant", "content": v["text"] or ""},
                    {
                        "role": "user",
                        "content": DEBATE.format(others=others(v["judge"]), low=low, high=high),
                    },
                ]
                second.append(ask(v["judge"], follow, 2))
            round2 = list(await asyncio.gather(*second))
            by_judge = {v["judge"]: v for v in votes}
            for v in round2:  # a judge that fails round 2 keeps its first score
                if v["value"] is not None:
                    by_judge[v["judge"]] = v
            final = list(by_judge.values())
            votes = votes + round2
        details = {
            "votes": [
                {k: v[k] for k in ("judge", "round", "value", "reasoning", "error")} for v in votes
            ],
            "aggregate": self.spec.aggregate,
            "debate": self.spec.debate,
        }
        values = [v["value"] for v in final if v["value"] is not None]
        if len(values) < 2:
            return MetricResult(
                None,
                None,
                None,
                error=f"the panel needs two judges' scores, got {len(values)}",
                judge=_combine(replies),
                details=details,
            )
        value = float(median(values)) if self.spec.aggregate == "median" else fmean(values)
        if self.spec.aggregate == "majority":
            threshold = self.spec.threshold or 0.0
            yes = sum(1 for v in values if v >= threshold)
            passed: bool | None = yes * 2 > len(values)
        else:
            passed = self.passes(value)
        reasoning = f"{len(values)} judges, {self.spec.aggregate}: " + "; ".join(
            f"{v['judge']} {v['value']:g}" for v in final if v["value"] is not None
        )
        return MetricResult(
            value,
            (value - low) / (high - low),
            passed,
            reasoning,
            judge=_combine(replies),
            details=details,
        )


def register() -> None:
    register_metric("panel", PanelSpec, PanelMetric)
