"""Helpers shared by the mappers: messages, tool calls and documents in one shape."""

from __future__ import annotations

from typing import Any

from panopticon.ingest.attrs import as_json

__all__ = ["content_text", "message", "set_if_empty", "tool_call"]


def content_text(value: Any) -> str | None:
    """Message content as text: strings as they are, OpenAI-style parts joined."""
    value = as_json(value)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for part in value:
            if isinstance(part, dict):
                text = part.get("text") or part.get("content")
                if isinstance(text, str):
                    texts.append(text)
            elif isinstance(part, str):
                texts.append(part)
        return "\n".join(texts) if texts else None
    if isinstance(value, dict):
        text = value.get("text") or value.get("content")
        return text if isinstance(text, str) else None
    return str(value)


def tool_call(id_: Any, name: Any, arguments: Any) -> dict[str, Any]:
    if not isinstance(arguments, str) and arguments is not None:
        import json

        # the standard library's encoder: it writes integers of any size (orjson refuses
        # past 64 bits) and anything odd as text
        arguments = json.dumps(arguments, separators=(",", ":"), default=str)
    return {
        "id": None if id_ is None else str(id_),
        "name": None if name is None else str(name),
        "arguments": arguments,
    }


def message(
    role: Any,
    content: Any,
    tool_calls: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"role": str(role or "user"), "content": content_text(content)}
    if tool_calls:
        out["tool_calls"] = tool_calls
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def set_if_empty(span: Any, **values: Any) -> None:
    for name, value in values.items():
        if value is not None and getattr(span, name) is None:
            setattr(span, name, value)
