"""Message-shape conversions shared by adapters whose APIs take the system prompt apart."""

from __future__ import annotations

from panopticon.providers.base import Message

__all__ = ["normalize_finish", "split_system"]


def split_system(messages: list[Message]) -> tuple[str | None, list[Message]]:
    """Return (system text or None, the other messages in order)."""
    system = [m["content"] for m in messages if m.get("role") == "system"]
    rest = [m for m in messages if m.get("role") != "system"]
    return ("\n\n".join(system) if system else None), rest


_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "stop": "stop",
    "max_tokens": "length",
    "length": "length",
    "safety": "content_filter",
    "refusal": "content_filter",
    "tool_use": "tool_calls",
}


def normalize_finish(reason: str | None) -> str | None:
    """Finish reasons in OpenAI's words (stop, length, content_filter, tool_calls)."""
    if reason is None:
        return None
    key = reason.lower()
    return _FINISH.get(key, key)
