"""HTTP helpers shared by adapters that speak JSON over aiohttp."""

from __future__ import annotations

import email.utils
import time
from typing import Any

from panopticon.errors import ProviderError
from panopticon.providers.redact import mask_secrets

__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_ERROR_BYTES",
    "error_from_status",
    "parse_retry_after",
    "read_at_most",
    "redirect_error",
]

# An endpoint is whatever an admin of any workspace registered: what it answers is read up
# to a bound, so that one answering without end cannot fill the server's memory.
MAX_ANSWER_BYTES = 32 * 1024 * 1024  # an answer (an error past it: the endpoint's fault)
MAX_ERROR_BYTES = 64 * 1024  # an error body (the rest is not read; messages cut it anyway)


async def read_at_most(resp: Any, limit: int) -> tuple[bytes, bool]:
    """An aiohttp response's body, read up to ``limit`` bytes: (the bytes, whether that is
    the whole body)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await resp.content.read(min(limit + 1 - size, 1 << 20))
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:limit], False


def parse_retry_after(headers: dict[str, str] | object) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (OpenAI) or ``Retry-After`` (seconds or date)."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    ms = get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def error_from_status(status: int, body: str, retry_after: float | None, url: str) -> ProviderError:
    """Map an HTTP error status to a classified, actionable ProviderError. The body is cut
    and key-like text in it masked: an endpoint may echo the request's key."""
    snippet = mask_secrets(body.strip().replace("\n", " "), limit=300)
    if status == 429:
        return ProviderError(
            f"rate limited (429) by {url}: {snippet}",
            status=status,
            retry_after=retry_after,
            retryable=True,
            kind="rate_limit",
        )
    if status in (401, 403):
        return ProviderError(
            f"authentication failed ({status}) at {url}: {snippet}; check the key of the "
            "model's provider (its credential or api_key_env)",
            status=status,
            kind="auth",
        )
    if status == 404:
        return ProviderError(
            f"not found (404) at {url}: {snippet}; check base_url and the model name",
            status=status,
            kind="not_found",
        )
    if status in (408, 409) or status >= 500:
        return ProviderError(
            f"server error ({status}) from {url}: {snippet}",
            status=status,
            retry_after=retry_after,
            retryable=True,
            kind="server",
        )
    return ProviderError(
        f"request rejected ({status}) by {url}: {snippet}", status=status, kind="bad_request"
    )


def redirect_error(status: int, location: str | None, url: str) -> ProviderError:
    """Redirects are never followed: they could send the request, and its key, elsewhere."""
    where = mask_secrets(location or "(no Location)", limit=200)
    return ProviderError(
        f"{url} answered with a redirect ({status}) to {where}, which is not followed; "
        "set base_url to the final address",
        status=status,
        kind="bad_request",
    )
