"""A small in-process LRU cache of serialised responses (``cachetools.LRUCache`` behind a lock).

Everything a finished forecast run produced is immutable, so responses derived from one run
are cached under keys that include the run id; a newer run simply yields new keys.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

from cachetools import LRUCache

__all__ = ["ResponseCache"]


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
