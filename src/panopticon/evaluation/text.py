"""Text every database can store: no NUL characters, no lone surrogates.

PostgreSQL rejects both in text and JSON columns (SQLite takes them), so they are refused
at the door, with the field named, instead of failing a write half-way through a run.
"""

from __future__ import annotations

from typing import Any

__all__ = ["unstorable"]


def unstorable(value: Any, path: str = "") -> str | None:
    """The path of the first string that cannot be stored, with why, or None."""
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
            problem = unstorable(k, path) or unstorable(v, f"{path}.{k}" if path else str(k))
            if problem:
                return problem
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            problem = unstorable(v, f"{path}[{i}]")
            if problem:
                return problem
    return None
