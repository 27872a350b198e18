"""Answers read from the store, kept for as long as the store has not changed since.

A cache that can never be stale: each value is kept with the store's change token
(:class:`panopticon.store.changes.ChangeWatch`) read before the value was computed, and is
given again only while the token is still the same, that is while no transaction of any
process has committed to the database. A write anywhere (a run's worker, the gateway, an
import through another server) makes the next request compute afresh, so a client always
reads its own writes and everyone else's. What it saves is the reading and rendering of the
same page again and again between writes: a dashboard polling, clients paging through the
results of a finished run.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from panopticon.store.changes import ChangeWatch
from panopticon.store.engine import Engine

__all__ = ["FreshCache"]


class FreshCache:
    """``get(key, compute)``: the bytes ``compute()`` gave for ``key`` when nothing has been
    committed since, else ``compute()`` now. Every value kept shares one token: the first
    request that sees a new one drops them all (none could be given again). Bounded: at
    most ``max_entries`` values and ``max_bytes`` in all, the least recently used dropped
    first; a value larger than a sixteenth of ``max_bytes`` is not kept. Thread-safe; call
    it off the event loop (the token is a statement)."""

    def __init__(
        self, engine: Engine, *, max_entries: int = 1024, max_bytes: int = 32 * 2**20
    ) -> None:
        self.watch = ChangeWatch(engine)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._token: object = None  # the token of every value kept
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], bytes]) -> bytes:
        token = self.watch.token()  # before computing: see ChangeWatch
        if token is not None:
            with self._lock:
                if token != self._token:  # a commit: no value kept can be given again
                    self._entries.clear()
                    self._bytes = 0
                    self._token = token
                kept = self._entries.get(key)
                if kept is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return kept
        value = compute()
        with self._lock:
            self.misses += 1
            if token is not None and token == self._token and len(value) <= self.max_bytes // 16:
                old = self._entries.pop(key, None)
                if old is not None:
                    self._bytes -= len(old)
                self._entries[key] = value
                self._bytes += len(value)
                while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                    _, dropped = self._entries.popitem(last=False)
                    self._bytes -= len(dropped)
        return value

    def close(self) -> None:
        self.watch.close()
