"""Reading a judge's answer: JSON first (also inside code fences or prose), then text forms
such as ``Score: 7``, ``7/10`` or ``Verdict: correct``. Nothing readable is an error."""

from __future__ import annotations

import re
from typing import Any

import orjson

from panopticon.errors import JudgeParseError

__all__ = ["parse_score", "parse_verdict", "strip_code_fence"]

_NUMBER = r"(-?\d+(?:\.\d+)?)"
_SCORE_PATTERNS = (
    re.compile(r"\bscore\b\s*(?:is|of|=|:)?\s*\**\s*" + _NUMBER + r"(?:\s*/\s*\d+)?", re.I),
    re.compile(r"\brating\b\s*(?:is|of|=|:)?\s*\**\s*" + _NUMBER, re.I),
    re.compile(_NUMBER + r"\s*/\s*\d+(?:\.\d+)?\b"),
    re.compile(r"^\s*\**\s*" + _NUMBER + r"\s*\**\s*$"),
)
_VERDICT = re.compile(r"\bverdict\b\s*(?:is|=|:)?\s*\**\s*\"?([a-z_ ]+)", re.I)


def strip_code_fence(text: str) -> str:
    """The text inside a Markdown code fence (```json ... ```), or the text, trimmed."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.strip("`").removeprefix("json").strip()
    return stripped


def _json_object(text: str) -> dict[str, Any] | None:
    stripped = strip_code_fence(text)
    for candidate in (stripped, _outer_braces(stripped)):
        if not candidate:
            continue
        try:
            value = orjson.loads(candidate)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _outer_braces(text: str) -> str | None:
    i, j = text.find("{"), text.rfind("}")
    return text[i : j + 1] if 0 <= i < j else None


def parse_score(text: str, low: float, high: float) -> tuple[float, str | None]:
    """The score and the reasoning. Raises JudgeParseError when absent or off the scale."""
    data = _json_object(text)
    score: float | None = None
    reasoning: str | None = None
    if data is not None:
        raw = data.get("score", data.get("rating"))
        reasoning_raw = data.get("reasoning") or data.get("explanation") or data.get("reason")
        reasoning = str(reasoning_raw) if reasoning_raw is not None else None
        if isinstance(raw, bool) or raw is None:
            score = None
        elif isinstance(raw, (int, float)):
            score = float(raw)
        else:
            try:
                score = float(str(raw).strip())
            except ValueError:
                score = None
    if score is None:
        lines = [line for line in text.splitlines() if line.strip()]
        for pattern in _SCORE_PATTERNS:
            matches = [m for line in lines for m in pattern.finditer(line)]
            if matches:
                score = float(matches[-1].group(1))  # the last mention is the conclusion
                break
        if reasoning is None:
            reasoning = text.strip()[:2000] or None
    if score is None:
        raise JudgeParseError(f"the judge's answer has no score: {text.strip()[:200]!r}")
    if not low <= score <= high:
        raise JudgeParseError(f"the judge gave {score:g}, outside the scale {low:g} to {high:g}")
    return score, reasoning


def parse_verdict(text: str, allowed: tuple[str, ...]) -> tuple[str, str | None]:
    """One of ``allowed`` and the reasoning. Raises JudgeParseError otherwise."""
    data = _json_object(text)
    reasoning: str | None = None
    verdict: str | None = None
    if data is not None:
        raw = data.get("verdict")
        verdict = str(raw).strip().lower() if raw is not None else None
        reasoning_raw = data.get("reasoning") or data.get("explanation")
        reasoning = str(reasoning_raw) if reasoning_raw is not None else None
    if verdict is None:
        matches = list(_VERDICT.finditer(text))
        if matches:
            verdict = matches[-1].group(1).strip().lower()
        reasoning = text.strip()[:2000] or None
    if verdict is not None:
        verdict = verdict.replace(" ", "_")
        for option in sorted(allowed, key=len, reverse=True):
            if verdict.startswith(option):
                return option, reasoning
    raise JudgeParseError(
        f"the judge's answer has no verdict among {', '.join(allowed)}: {text.strip()[:200]!r}"
    )
