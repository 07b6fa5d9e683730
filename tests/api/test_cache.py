"""The in-process caches: responses (LRU) and verified keys (TTL, expiry honoured)."""

from __future__ import annotations

import datetime as dt

from service.api.cache import ResponseCache
from service.api.deps import KeyCache
from service.store.tables import ApiKey


def test_response_cache_drops_the_least_recently_used() -> None:
    cache = ResponseCache(maxsize=2)
    cache.put("a", b"1")
    cache.put("b", b"2")
    assert cache.get("a") == b"1"  # a is now the most recently used
    cache.put("c", b"3")
    assert cache.get("b") is None and cache.get("a") == b"1" and cache.get("c") == b"3"
    assert len(cache) == 2


def test_key_cache_forgets_after_ttl_and_never_serves_an_expired_key() -> None:
    now = [100.0]
    key = ApiKey(prefix="p", name="n", scopes=["read"], key_hash="h")
    cache = KeyCache(ttl=30, timer=lambda: now[0])
    cache.put("d", key)
    now[0] += 29
    assert cache.get("d") is key
    now[0] += 1
    assert cache.get("d") is None
    expired = ApiKey(prefix="q", name="n", scopes=["read"], key_hash="h",
                     expires_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    cache.put("e", expired)
    assert cache.get("e") is None
    off = KeyCache(ttl=0)
    off.put("d", key)
    assert off.get("d") is None
