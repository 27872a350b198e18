"""Reading span attributes: typed ``take`` that remembers what was read, so whatever no
convention understood is kept, unchanged, as the span's remaining attributes."""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

__all__ = ["Attrs", "as_json", "unflatten"]

MAX_COUNT = 2**31 - 1  # token counts are 32-bit integers in the store

_LIST_KEY = re.compile(r"^(.+?)\.\d+(?:\.|$)")
_INDEX = re.compile(r"\.\d+(?:\.|$)")  # the first numeric segment: a search, no backtracking


def as_json(value: Any) -> Any:
    """A JSON-encoded string decoded; anything else (or bad JSON) as it is."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def unflatten(items: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``{prefix.0.a: 1, prefix.0.b: 2, prefix.1.a: 3}`` -> ``[{a: 1, b: 2}, {a: 3}]``
    (sorted by index; the rest of each key stays dotted)."""
    if not items:
        return []
    groups: dict[int, dict[str, Any]] = {}
    start = len(prefix) + 1
    for key, value in items.items():
        if not key.startswith(prefix + "."):
            continue
        index, _, rest = key[start:].partition(".")
        if not index.isdigit() or not rest:
            continue
        groups.setdefault(int(index), {})[rest] = value
    return [groups[i] for i in sorted(groups)]


class Attrs:
    """A span's attributes, consumed by the convention mappers."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.used: set[str] = set()
        # flattened lists by their prefix (the key up to its first numeric segment), built
        # in one pass on the first look-up, so that each look-up is a dict read, not a scan
        self._lists: dict[str, dict[str, Any]] | None = None
        # the first segment of every key: a mapper whose namespaces are absent skips
        self.namespaces = {key.partition(".")[0] for key in values}

    def has(self, key: str) -> bool:
        return key in self.values

    def take(self, *keys: str) -> Any:
        """The first of ``keys`` present (all of them are marked as read)."""
        found = None
        values = self.values
        for key in keys:
            if key in values:  # most keys asked for are absent: one look-up each
                self.used.add(key)
                value = values[key]
                if found is None and value is not None and value != "":
                    found = value
        return found

    def text(self, *keys: str) -> str | None:
        value = self.take(*keys)
        if value is None:
            return None
        if type(value) is str:
            return value
        if isinstance(value, list):
            return ", ".join(str(v) for v in value) if value else None
        return str(value)

    def _unread(self, keys: tuple[str, ...]) -> None:
        """A value that cannot be read as asked stays among the raw attributes."""
        self.used.difference_update(keys)

    def integer(self, *keys: str) -> int | None:
        value = self.take(*keys)
        if value is None:
            return None
        try:
            if isinstance(value, bool):
                raise ValueError("a boolean is not a count")
            number = int(float(value))
        except (TypeError, ValueError, OverflowError):
            self._unread(keys)
            return None
        if not 0 <= number <= MAX_COUNT:
            self._unread(keys)
            return None
        return number

    def number(self, *keys: str) -> float | None:
        value = self.take(*keys)
        if value is None:
            return None
        try:
            if isinstance(value, bool):
                raise ValueError("a boolean is not a number")
            number = float(value)
        except (TypeError, ValueError):
            self._unread(keys)
            return None
        if not math.isfinite(number):
            self._unread(keys)
            return None
        return number

    def prefixed(self, prefix: str) -> dict[str, Any]:
        """Every attribute under ``prefix.`` (marked as read)."""
        out = {}
        for key, value in self.values.items():
            if key.startswith(prefix + "."):
                self.used.add(key)
                out[key] = value
        return out

    def listed(self, prefix: str) -> dict[str, Any]:
        """The flattened list under ``prefix`` (``prefix.0.x``, ``prefix.1.y``; marked as
        read): the same as :meth:`prefixed` for list attributes, without a scan."""
        if self._lists is None:
            self._lists = {}
            lists = self._lists
            for key, value in self.values.items():
                m = _INDEX.search(key)
                if m is None:
                    continue
                if m.start() > 0:
                    name = key[: m.start()]
                else:  # a key that starts with its index: the first one after a name
                    found = _LIST_KEY.match(key)
                    if found is None:
                        continue
                    name = found.group(1)
                lists.setdefault(name, {})[key] = value
        out = self._lists.get(prefix)
        if not out:
            return {}
        self.used.update(out)
        return out

    def remaining(self) -> dict[str, Any]:
        return {k: v for k, v in self.values.items() if k not in self.used}
