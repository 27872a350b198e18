"""What a span says, as text: its input (the value, else the last user turn) and its output
(the value, else the last assistant turn), a message's content parts joined. The trace list,
the results of production scores and the online rules all show a span by these."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["content_text", "span_input_output", "span_input_text", "span_output_text"]

INPUT_ROLES = ("user", "input")
OUTPUT_ROLES = ("assistant", "output")


def content_text(content: Any) -> str:
    """A message's (or document's) content as text: a string as it is, content parts
    (``[{"type": "text", "text": ...}, ...]``) joined, nothing as ``""``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def _last_turn(messages: Any, roles: tuple[str, ...]) -> str | None:
    if not isinstance(messages, list):
        return None
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") in roles and m.get("content"):
            return content_text(m["content"])
    return None


def span_input_text(value: str | None, messages: Any) -> str | None:
    """A span's input: its ``input_value``, else its last user turn of ``input_messages``."""
    return value or _last_turn(messages, INPUT_ROLES)


def span_output_text(value: str | None, messages: Any) -> str | None:
    """A span's output: its ``output_value``, else its last assistant turn."""
    return value or _last_turn(messages, OUTPUT_ROLES)


def span_input_output(row: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(input, output) of a span row (``input_value``, ``input_messages``, ...)."""
    return (
        span_input_text(row.get("input_value"), row.get("input_messages")),
        span_output_text(row.get("output_value"), row.get("output_messages")),
    )
