"""Unknown filter values are errors, not empty pages.

``?category=nonexistent`` or ``?region=999999`` used to answer ``[]`` with 200, which reads as
"nothing there". :func:`check_reference_filters` (an app-wide dependency) answers 422
(``urn:forewarn:problem:unknown-filter-value``) naming the parameter, the value and where the
known values are listed, for every operation with a ``category`` or ``region`` query
parameter. The known codes are cached per process for a few seconds and re-read once before
a value is refused, so a category registered by an import a moment ago is accepted.
"""

from __future__ import annotations

import threading
import time

from fastapi import Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from service.errors import UnknownFilterValue
from service.store.tables import Category, Region

__all__ = ["check_reference_filters", "ReferenceCodes", "FILTERS"]

#: query parameter → (table, where its known values are listed)
FILTERS = {"category": (Category, "GET /v1/categories"),
           "region": (Region, "GET /v1/regions")}


class ReferenceCodes:
    """The deployment's category and region codes, re-read at most every ``ttl`` seconds."""

    def __init__(self, ttl: float = 10.0) -> None:
        self.ttl = ttl
        self._at = float("-inf")
        self._codes: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def load(self, request: Request) -> dict[str, frozenset[str]]:
        with request.app.state.sessionmaker() as session:
            codes = {name: frozenset(session.scalars(select(table.code)))  # type: ignore[attr-defined]
                     for name, (table, _) in FILTERS.items()}
        with self._lock:
            self._codes, self._at = codes, time.monotonic()
        return codes

    def fresh(self) -> dict[str, frozenset[str]] | None:
        with self._lock:
            return self._codes if time.monotonic() - self._at <= self.ttl else None


def _declared(request: Request) -> frozenset[str]:
    """The query parameters the matched operation declares (by their alias)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return frozenset()
    names: set[str] = set()
    stack = [dependant]
    while stack:
        d = stack.pop()
        names.update(p.alias for p in d.query_params)
        stack.extend(d.dependencies)
    return frozenset(names)


async def check_reference_filters(request: Request) -> None:
    """422 for a ``category`` / ``region`` query value the deployment does not know, on
    operations that take that filter."""
    given = {k: v for k in FILTERS if (v := request.query_params.get(k))}
    wanted = {k: v for k, v in given.items() if k in _declared(request)} if given else {}
    if not wanted:
        return
    cache: ReferenceCodes = request.app.state.reference_codes
    fresh = cache.fresh()
    codes = fresh if fresh is not None else await run_in_threadpool(cache.load, request)
    if all(v in codes[k] for k, v in wanted.items()):
        return
    codes = await run_in_threadpool(cache.load, request)  # registered a moment ago?
    for name, value in wanted.items():
        if value not in codes[name]:
            raise UnknownFilterValue(name, value, FILTERS[name][1])
