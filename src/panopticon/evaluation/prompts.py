"""Prompt variants: the system prompt and template a query is sent with.

A suite without ``prompts:`` has one variant, the default (id ``""``), which renders
exactly as before. With ``prompts:``, every query is sent once per variant and model; the
variant's id and content hash go with each answer, so answers of different variants are
never mixed up, in the cache, on resume or in a comparison.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import orjson

from panopticon.evaluation.queries import QueryItem
from panopticon.evaluation.spec import Suite

__all__ = ["DEFAULT_PROMPT", "PromptVariant", "arm_label", "prompt_variants", "render_messages"]

DEFAULT_PROMPT = ""


@dataclass(frozen=True)
class PromptVariant:
    id: str  # DEFAULT_PROMPT for a suite without prompts
    system: str | None
    template: str | None

    @cached_property
    def content_hash(self) -> str:
        payload = orjson.dumps({"system": self.system, "template": self.template})
        return hashlib.sha256(payload).hexdigest()[:32]

    @property
    def is_default(self) -> bool:
        return self.id == DEFAULT_PROMPT


def prompt_variants(suite: Suite) -> list[PromptVariant]:
    """The variants each query is sent with; a prompt's unset fields take the suite's."""
    if not suite.prompts:
        # the suite's system prompt is already in each query's messages (queries.py)
        return [PromptVariant(DEFAULT_PROMPT, None, suite.template)]
    return [
        PromptVariant(
            p.id,
            p.system if p.system is not None else suite.system,
            p.template if p.template is not None else suite.template,
        )
        for p in suite.prompts
    ]


def arm_label(model: str, prompt: str | None) -> str:
    """What a run compares: a model, or a model with a prompt variant (``model@prompt``)."""
    return f"{model}@{prompt}" if prompt else model


def render_messages(
    suite: Suite, q: QueryItem, variant: PromptVariant | None = None
) -> list[dict[str, str]]:
    """The chat messages sent for a query, with the variant's (or the suite's) template and
    system prompt applied."""
    msgs = [{"role": r, "content": c} for r, c in q.messages]
    template = variant.template if variant is not None else suite.template
    if variant is not None and variant.system and not any(m["role"] == "system" for m in msgs):
        msgs.insert(0, {"role": "system", "content": variant.system})
    if template:
        fields = {
            "text": q.text,
            "context": q.context or "",
            "theme": q.theme,
            "expected": q.expected or "",
            **{str(k): v for k, v in q.metadata.items()},
        }
        for m in reversed(msgs):
            if m["role"] == "user":
                m["content"] = template.format(**fields)
                break
    return msgs
