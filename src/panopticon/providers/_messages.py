"""Message-shape conversions shared by adapters whose APIs take the system prompt apart."""

from __future__ import annotations

from typing import Any

import orjson

from panopticon.providers.base import Message

__all__ = [
    "anthropic_messages",
    "anthropic_tool_choice",
    "anthropic_tools",
    "normalize_finish",
    "split_system",
]


def split_system(messages: list[Message]) -> tuple[str | None, list[Message]]:
    """Return (system text or None, the other messages in order)."""
    system = [str(m["content"]) for m in messages if m.get("role") == "system"]
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


def anthropic_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """OpenAI function tools in the Messages API's shape (name, description, input_schema)."""
    if not tools:
        return None
    out = []
    for tool in tools:
        fn = tool.get("function") or tool
        out.append(
            {
                "name": fn["name"],
                "description": fn.get("description") or "",
                "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
            }
        )
    return out


def anthropic_tool_choice(choice: Any) -> dict[str, Any] | None:
    """OpenAI's tool_choice ("auto", "required", "none", or a named function) in Anthropic's
    words; None leaves the API's default."""
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        return {"type": "tool", "name": choice["function"]["name"]}
    return None


def anthropic_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Chat turns (system already split off) in the Messages API's shape: an assistant turn's
    tool calls become ``tool_use`` blocks, and ``tool`` turns become ``tool_result`` blocks
    of a user turn (consecutive results share one turn, as the API requires)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": str(m.get("tool_call_id") or ""),
                "content": str(m.get("content") or ""),
            }
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif role == "assistant" and m.get("tool_calls"):
            blocks: list[dict[str, Any]] = []
            if m.get("content"):
                blocks.append({"type": "text", "text": str(m["content"])})
            for call in m["tool_calls"]:
                fn = call.get("function") or {}
                try:
                    arguments = orjson.loads(fn.get("arguments") or "{}")
                except orjson.JSONDecodeError:
                    arguments = {"arguments": fn.get("arguments")}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": str(call.get("id") or ""),
                        "name": str(fn.get("name") or ""),
                        "input": arguments,
                    }
                )
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": role, "content": m.get("content")})
    return out
