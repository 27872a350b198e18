"""OpenLIT: its own cost (``gen_ai.usage.cost``), time to first token
(``gen_ai.server.time_to_first_token``, seconds), the prompt and completion as span events
(``gen_ai.content.prompt`` / ``gen_ai.content.completion``) and ``gen_ai.environment``."""

from __future__ import annotations

from panopticon.ingest.attrs import Attrs
from panopticon.ingest.conventions._messages import message
from panopticon.ingest.model import RawSpan, ScoreIn, Span

__all__ = ["apply"]


def apply(a: Attrs, raw: RawSpan, span: Span, scores: list[ScoreIn]) -> None:
    if "gen_ai" not in a.namespaces and not span.events:
        return
    cost = a.number("gen_ai.usage.cost")
    if cost is not None and span.cost_usd is None:
        span.cost_usd, span.cost_source = cost, "span"
    ttft = a.number("gen_ai.server.time_to_first_token", "gen_ai.server.ttft")
    if ttft is not None and span.ttft_ms is None:
        span.ttft_ms = ttft * 1000.0
    a.take("gen_ai.usage.total_tokens", "gen_ai.endpoint")
    span.hints.environment = span.hints.environment or a.text("gen_ai.environment")
    span.hints.release = span.hints.release or a.text("gen_ai.application_version")
    if span.events:
        kept = []
        for event in span.events:
            attrs = event["attributes"]
            if event["name"] == "gen_ai.content.prompt" and span.input_messages is None:
                span.input_messages = [message("user", attrs.get("gen_ai.prompt"))]
            elif event["name"] == "gen_ai.content.completion" and span.output_messages is None:
                span.output_messages = [message("assistant", attrs.get("gen_ai.completion"))]
            else:
                kept.append(event)
        span.events = kept or None
