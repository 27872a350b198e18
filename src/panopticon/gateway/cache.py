"""The opt-in exact-match response cache: per key, in memory, with a TTL and a size cap.

The cache key is a hash of the endpoint, the model served and the request body as sent
upstream, so any change to the request (a parameter, one character of a message) misses.
Only complete, successful, non-streamed answers are kept, at most 10,000 of them and
128 MB in all (the least recently used go first).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["CachedAnswer", "ResponseCache"]


@dataclass(frozen=True)
class CachedAnswer:
    body: bytes
    model_served: str | None
    output_text: str | None
    expires: float


class ResponseCache:
    def __init__(
        self, max_entries: int = 10_000, max_bytes: int = 1_000_000, total_bytes: int = 128 << 20
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes  # one answer
        self.total_bytes = total_bytes  # all of them: the least recently used go first
        self.size = 0
        self._items: OrderedDict[bytes, CachedAnswer] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(key_id: int, endpoint: str, model: str, body: bytes) -> bytes:
        h = hashlib.blake2b(digest_size=20)
        h.update(f"{key_id}\x1f{endpoint}\x1f{model}\x1f".encode())
        h.update(body)
        return h.digest()

    def get(self, key: bytes) -> CachedAnswer | None:
        found = self._items.get(key)
        if found is None or found.expires < time.monotonic():
            if found is not None:
                del self._items[key]
                self.size -= len(found.body)
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return found

    def put(
        self, key: bytes, body: bytes, ttl_s: float, model_served: str | None, text: str | None
    ) -> None:
        if len(body) > self.max_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= len(old.body)
        self._items[key] = CachedAnswer(body, model_served, text, time.monotonic() + ttl_s)
        self.size += len(body)
        while len(self._items) > self.max_entries or self.size > self.total_bytes:
            _, evicted = self._items.popitem(last=False)
            self.size -= len(evicted.body)
