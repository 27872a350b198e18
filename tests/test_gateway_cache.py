"""The gateway's response cache: bounded in entries and bytes, least recently used out."""

from __future__ import annotations

from panopticon.gateway.cache import ResponseCache


def test_the_response_cache_is_bounded_by_entries_and_bytes() -> None:
    cache = ResponseCache(max_entries=3, max_bytes=100, total_bytes=250)
    keys = [ResponseCache.key(1, "chat.completions", "m", str(i).encode()) for i in range(5)]
    for k in keys:
        cache.put(k, b"x" * 100, 60, "m", "t")
    assert cache.size <= 250 and len(cache._items) == 2
    assert cache.get(keys[-1]) is not None and cache.get(keys[0]) is None
    cache.put(keys[0], b"y" * 101, 60, "m", "t")  # one answer over its limit: not kept
    assert cache.get(keys[0]) is None
