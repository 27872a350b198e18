"""Checks every request passes before any route sees it: a body no larger than the
operator's limit (counted as it arrives, not taken from Content-Length), and no NUL
character in the path or the query string (PostgreSQL cannot compare text holding one)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestLimits"]


async def _refuse(
    send: Send, status: int, message: str, field: str | None, hint: str | None
) -> None:
    item = {"message": message, "field": field, "hint": hint}
    body = orjson.dumps({"error": item, "errors": [item]})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _nul_field(scope: Scope) -> tuple[str, str | None] | None:
    """(where, parameter) of the first NUL character, or None."""
    if "\x00" in scope.get("path", "") or "%00" in scope.get("raw_path", b"").decode("latin-1"):
        return "the path", None
    query = scope.get("query_string", b"").decode("latin-1")
    if "%00" in query or "\x00" in query:
        for name, value in parse_qsl(query, keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                shown = name.replace("\x00", "")
                return f"the query parameter '{shown}'", shown
    return None


class RequestLimits:
    """Pure ASGI middleware (no per-request task or copy beyond the body it must count)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nul = _nul_field(scope)
        if nul is not None:
            where, field = nul
            await _refuse(
                send,
                422,
                f"{where} contains a NUL character (%00), which cannot be stored or compared",
                field,
                "remove it",
            )
            return
        too_big = (
            f"the request body is larger than the limit of {self.max} bytes "
            "(PANOPTICON_MAX_REQUEST_BYTES)"
        )
        hint = "send less per request, or ask the operator to raise the limit"
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max:
                    await _refuse(send, 413, too_big, None, hint)
                    return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        # read and count the whole body first: a declared length may be absent or a lie
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max:
                await _refuse(send, 413, too_big, None, hint)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)
