"""Judges that need no reference answer: ``faithfulness`` (is the answer supported by the
query's context), ``context_relevance`` (does the context bear on the question) and
``answer_relevance`` (does the answer address the question). Rubric judges with fixed
criteria, on a 1 to 5 scale unless the suite says otherwise."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from panopticon.judges.base import JudgeCall, MetricContext, MetricResult, register_metric
from panopticon.judges.rubric import RubricMetric, RubricSpec

__all__ = ["register"]

CRITERIA = {
    "faithfulness": "Faithfulness to the context: every claim in the response must be "
    "supported by the context. Claims the context does not support, or contradicts, lower "
    "the score; a response that only restates the context faithfully scores highest.",
    "context_relevance": "Relevance of the context to the question: does the context hold "
    "the information needed to answer it? (Judge the context, not the response.)",
    "answer_relevance": "Relevance of the response to the question: does it address what "
    "was asked, directly and completely, without digressing?",
}


class _GroundlessSpec(RubricSpec):
    prompt: str = Field(default="", description="Extra criteria (optional).")
    scale: tuple[float, float] = (1, 5)


class FaithfulnessSpec(_GroundlessSpec):
    type: Literal["faithfulness"] = "faithfulness"  # type: ignore[assignment]


class ContextRelevanceSpec(_GroundlessSpec):
    type: Literal["context_relevance"] = "context_relevance"  # type: ignore[assignment]


class AnswerRelevanceSpec(_GroundlessSpec):
    type: Literal["answer_relevance"] = "answer_relevance"  # type: ignore[assignment]


class _Groundless(RubricMetric):
    needs_context = True

    def criteria(self) -> str:
        extra = self.spec.prompt.strip()
        return CRITERIA[self.type] + (f"\n{extra}" if extra else "")

    async def score(self, ctx: MetricContext, judge: JudgeCall | None) -> MetricResult:
        if self.needs_context and not ctx.context:
            return self.error(
                f"{self.type} needs the query's context; add 'context' to the "
                "query (the retrieved passages)"
            )
        return await super().score(ctx, judge)


class FaithfulnessMetric(_Groundless):
    type = "faithfulness"


class ContextRelevanceMetric(_Groundless):
    type = "context_relevance"


class AnswerRelevanceMetric(_Groundless):
    type = "answer_relevance"
    needs_context = False


def register() -> None:
    register_metric("faithfulness", FaithfulnessSpec, FaithfulnessMetric)
    register_metric("context_relevance", ContextRelevanceSpec, ContextRelevanceMetric)
    register_metric("answer_relevance", AnswerRelevanceSpec, AnswerRelevanceMetric)
