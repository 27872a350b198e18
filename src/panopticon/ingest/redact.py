"""Redaction at ingest (per workspace, off by default): e-mail addresses, phone numbers,
payment card numbers (Luhn-checked), API keys, bearer tokens and JSON Web Tokens (after
'Bearer' or bare) in the text of messages, inputs, outputs, documents and attributes are
replaced by ``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[KEY]`` before anything is stored."""

from __future__ import annotations

import re
from typing import Any

from panopticon.providers.redact import JWT_PATTERN

__all__ = ["redact_span", "redact_text"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_KEY = re.compile(
    r"\b(?:sk|pk|rk)[-_](?:[A-Za-z0-9_-]{16,})|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}|(?<=Bearer )[A-Za-z0-9._~+/=-]{16,}"
    rf"|{JWT_PATTERN}"
)
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,4}\)?){2,5}(?!\w)")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[CARD]" if 13 <= len(digits) <= 19 and _luhn(digits) else match.group()


def _phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[PHONE]" if 9 <= len(digits) <= 15 else match.group()


def redact_text(text: str) -> str:
    text = _KEY.sub("[KEY]", text)
    text = _EMAIL.sub("[EMAIL]", text)
    text = _CARD.sub(_card, text)
    return _PHONE.sub(_phone, text)


def _walk(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_walk(v) for v in value]
    if isinstance(value, dict):
        return {k: _walk(v) for k, v in value.items()}
    return value


def redact_span(span: Any) -> None:
    for name in (
        "input_messages",
        "output_messages",
        "documents",
        "input_value",
        "output_value",
        "error",
    ):
        setattr(span, name, _walk(getattr(span, name)))
    span.attributes = _walk(span.attributes)
