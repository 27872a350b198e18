"""Values every database can store: no NUL characters, no lone surrogates, integers that
fit in 64 bits, finite numbers, nesting no deeper than MAX_DEPTH.

PostgreSQL rejects the first two in text and JSON columns (SQLite takes them); SQLite's JSON
cannot hold an integer past 64 bits, and a deeply nested value exhausts the recursion of
whoever reads it next. So they are refused at the door, with the field named, instead of
failing a write half-way through a run or every later read.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MAX_DEPTH", "unstorable"]

MAX_DEPTH = 32
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


def unstorable(value: Any, path: str = "", depth: int = 0) -> str | None:
    """The path of the first value that cannot be stored, with why, or None."""
    if depth > MAX_DEPTH:
        return f"{path or 'value'}: is nested too deeply (more than {MAX_DEPTH} levels); flatten it"
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            return f"{path or 'value'}: the integer does not fit in 64 bits; send it as a string"
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"{path or 'value'}: {value} is not a finite number; use null or a string"
        return None
    if isinstance(value, str):
        if "\x00" in value:
            return (
                f"{path or 'value'}: contains a NUL character (\\u0000), which databases "
                "cannot store; remove it"
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path or 'value'}: is not valid Unicode (a lone surrogate); fix the text"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            problem = unstorable(k, path, depth) or unstorable(
                v, f"{path}.{k}" if path else str(k), depth + 1
            )
            if problem:
                return problem
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            problem = unstorable(v, f"{path}[{i}]", depth + 1)
            if problem:
                return problem
    return None
