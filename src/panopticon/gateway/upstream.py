"""Errors of one upstream attempt, classified so the gateway knows whether to retry, fall
back to the next model, or pass the provider's answer on."""

from __future__ import annotations

from typing import Any

__all__ = ["RETRYABLE", "UpstreamError", "retry_after"]

RETRYABLE = {408, 409, 429, 500, 502, 503, 504, 529}


class UpstreamError(Exception):
    """An upstream attempt failed; ``retryable`` ones go to a retry or the next model."""

    def __init__(
        self,
        message: str,
        status: int,
        *,
        retryable: bool,
        retry_after: float | None = None,
        body: bytes | None = None,
        kind: str = "api_error",
        forwarded: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.body = body
        self.kind = kind
        self.forwarded = forwarded  # the client already has the provider's error


def retry_after(headers: Any) -> float | None:
    from panopticon.providers.http import parse_retry_after

    try:
        return parse_retry_after(headers)
    except (ValueError, TypeError, OverflowError):
        return None
