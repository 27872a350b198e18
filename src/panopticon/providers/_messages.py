"""Message-shape conversions shared by adapters whose APIs take the system prompt apart."""

from __future__ import annotations

from panopticon.providers.base import Message

__all__ = ["split_system"]


def split_system(messages: list[Message]) -> tuple[str | None, list[Message]]:
    """Return (system text or None, the other messages in order)."""
    system = [m["content"] for m in messages if m.get("role") == "system"]
    rest = [m for m in messages if m.get("role") != "system"]
    return ("\n\n".join(system) if system else None), rest
