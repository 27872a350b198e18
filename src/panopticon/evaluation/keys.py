"""Cache keys: what makes two calls the same call."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

__all__ = ["answer_key", "judge_key"]


def _digest(payload: Any) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()[:40]


def answer_key(
    model_fingerprint: dict[str, Any], messages: list[dict[str, str]], repeat: int
) -> str:
    """Same model settings, same messages, same repeat number: the same answer."""
    return _digest(["answer", model_fingerprint, messages, repeat])


def judge_key(
    model_fingerprint: dict[str, Any], messages: list[dict[str, str]], json_mode: bool
) -> str:
    return _digest(["judge", model_fingerprint, messages, json_mode])
