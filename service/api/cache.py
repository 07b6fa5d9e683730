"""A small in-process LRU cache of serialised responses (``cachetools.LRUCache`` behind a lock).

Everything a finished forecast run produced is immutable, so responses derived from one run
are cached under keys that include the run id; a newer run simply yields new keys.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any

from cachetools import LRUCache

__all__ = ["ResponseCache", "READ_CACHEABLE", "allow_read_cache"]


class ResponseCache:
    def __init__(self, maxsize: int = 4096) -> None:
        self.maxsize = maxsize
        self._data: LRUCache[Hashable, bytes] = LRUCache(maxsize=maxsize)
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            return self._data.get(key)

    def put(self, key: Hashable, value: bytes) -> None:
        with self._lock:
            self._data[key] = value

    def __len__(self) -> int:
        return len(self._data)


#: ``request.state`` attribute a hot read route sets when its answer may be kept by the read
#: cache in front of it (:mod:`service.api.read_cache`): a 200 derived only from a finished
#: run (immutable) or from there being no finished run at all.
READ_CACHEABLE = "read_cacheable"


def allow_read_cache(state: Any) -> None:
    """Mark the answer of this request as one the read cache may keep (see
    :data:`READ_CACHEABLE`)."""
    setattr(state, READ_CACHEABLE, True)
