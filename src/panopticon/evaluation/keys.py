"""Cache keys: what makes two calls the same call."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

__all__ = ["answer_key", "judge_key"]


def _digest(payload: Any) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()[:40]


def answer_key(
    model_fingerprint: dict[str, Any],
    messages: list[dict[str, str]],
    repeat: int,
    prompt: tuple[str, str] | None = None,
) -> str:
    """Same model settings, same messages, same repeat number: the same answer. A prompt
    variant (id, content hash) is part of the key, so two variants never share an answer;
    without one the key is what it always was."""
    if prompt is None:
        return _digest(["answer", model_fingerprint, messages, repeat])
    return _digest(["answer", model_fingerprint, messages, repeat, list(prompt)])


def judge_key(
    model_fingerprint: dict[str, Any], messages: list[dict[str, str]], json_mode: bool
) -> str:
    return _digest(["judge", model_fingerprint, messages, json_mode])
