"""Provider error text is cut and anything that looks like a key is masked, before it is
stored, logged or shown: an endpoint may echo the request's key in its error body."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["JWT_PATTERN", "MAX_ERROR_CHARS", "mask_secrets"]

MAX_ERROR_CHARS = 500
MASK = "***"

# a JSON Web Token (an access, ID or session token) anywhere in text, not only after
# 'Bearer': base64url segments separated by dots (JWS: 3, JWE: 5), the first a JSON object's
# header ('{"' encodes as 'eyJ'); whole tokens only, so prose and dotted names never match
JWT_PATTERN = (
    r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{10,}"
    # signed (JWS, 3 segments; JWE, 5), or unsigned ("alg": "none"): a JSON payload (eyJ
    # too) and an empty signature, so that a dotted name ending a sentence is not one
    r"(?:(?:\.[A-Za-z0-9_-]{2,}){2,4}|\.eyJ[A-Za-z0-9_-]*\.)(?![A-Za-z0-9_-])"
)

_PATTERNS = re.compile(
    r"(?P<label>(?i:bearer|basic)\s+)[A-Za-z0-9._~+/=\-]{6,}"  # Authorization header values
    r"|sk-[A-Za-z0-9_\-]{6,}"  # OpenAI, Anthropic (sk-ant-...), many compatible servers
    r"|pk_[A-Za-z0-9_\-]{10,}"  # Panopticon's own API keys
    r"|AIza[0-9A-Za-z_\-]{20,}"  # Google API keys
    r"|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"  # user:password@ in URLs
    rf"|{JWT_PATTERN}"
    r"|(?P<field>(?i:api[-_]?key|token|secret|password)[\"']?\s*[:=]\s*[\"']?)"
    r"[^\s\"',;}]{4,}"
)


def mask_secrets(
    text: str, secrets: Iterable[str | None] = (), limit: int | None = MAX_ERROR_CHARS
) -> str:
    """``text`` with each of ``secrets`` and every key-like token replaced by ``***``, then
    cut to ``limit`` characters (masking first, so that a key cut in two is still found)."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _PATTERNS.sub(lambda m: (m.group("label") or m.group("field") or "") + MASK, text)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    return text
