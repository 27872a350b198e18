"""Bytes on the wire: server-sent events in and out, and errors in the shape each API's
clients expect (OpenAI's ``{"error": {...}}``, Anthropic's ``{"type": "error", ...}``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from panopticon.providers.http import MAX_ANSWER_BYTES

__all__ = ["SSEParser", "anthropic_error", "openai_error", "sse"]


class SSEParser:
    """Splits a byte stream into events. ``feed`` returns the complete events so far, each
    as (raw bytes including the blank line, event name or None, data or None)."""

    def __init__(self, limit: int = MAX_ANSWER_BYTES) -> None:
        self._buf = b""
        self._limit = self._left = limit  # bytes the whole stream may have

    def feed(self, chunk: bytes) -> list[tuple[bytes, str | None, bytes | None]]:
        """Raises ValueError past the stream's ``limit``: an endpoint that never stops."""
        self._left -= len(chunk)
        if self._left < 0:
            raise ValueError(f"a stream longer than {self._limit} bytes")
        buf = self._buf + chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        out: list[tuple[bytes, str | None, bytes | None]] = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            raw = buf[start : end + 2]
            start = end + 2
            event: str | None = None
            data: list[bytes] = []
            for line in raw.split(b"\n"):
                if line.startswith(b"data:"):
                    data.append(line[5:].lstrip(b" "))
                elif line.startswith(b"event:"):
                    event = line[6:].strip().decode("utf-8", "replace")
            out.append((raw, event, b"\n".join(data) if data else None))
        self._buf = buf[start:]
        return out

    @property
    def leftover(self) -> bytes:
        return self._buf


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def openai_error(
    message: str, kind: str, code: str | None = None, param: str | None = None
) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def anthropic_error(status: int, message: str) -> bytes:
    kind = _ANTHROPIC_TYPES.get(status, "api_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def iter_text_parts(content: Any) -> Iterator[str]:
    """The text of a message's content: a string, or a list of parts with ``text``."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    yield text
                elif part.get("type") == "tool_result":
                    yield from iter_text_parts(part.get("content"))
            elif isinstance(part, str):
                yield part
