"""Repeated identical reads of the hot routes, answered before FastAPI parses them (issue 13).

A cached ``GET /v1/peaks`` or ``GET /v1/series/{id}/forecast`` spent over half its time in
FastAPI's per-request parameter validation and dependency solving, not in the database (the
routes already keep finished runs' bodies in :class:`service.api.cache.ResponseCache`).
:class:`ReadCacheMiddleware` sits in front of the app (inside rate limiting, load shedding
and audit) and answers a repeated read from :class:`ReadCache` without entering FastAPI:

* **Authentication first, as the routes do it.** The key is checked with
  :func:`service.api.deps.authenticate` — the function, key cache, audit note and access-log
  key of the routes' ``require("read")``. A missing, unknown, revoked or insufficient key is
  never answered from the cache: the request goes on to the app, which answers the same 401
  or 403 problem it always did (an unknown key is looked up a second time there).
* **Keyed by everything that can change the answer**: the route, the path (series id), the
  query string (parameters in name order, repeated names kept in their order — the last one
  wins in the route), the language ``Accept-Language`` selects, the key's scope set, and the
  data version (:func:`data_version`: the newest finished run id the routes themselves use and
  the evaluation inputs' generation, which every import, run, campaign change and dispatch
  bumps).
* **Only what the route marks cacheable** (:func:`service.api.cache.allow_read_cache`: a 200
  derived from a finished, immutable run, or from there being none) is kept, with the
  route's headers (content type and length, ``Content-Language``, ``Vary``), and only when
  the data version read after the answer is still the one it was keyed by. Never a 4xx or
  5xx, never a running run's partial answer.
* **Bounded**: a ``cachetools.TTLCache`` by total body bytes
  (``FOREWARN_API__READ_CACHE_MAX_BYTES``) whose entries expire after
  ``FOREWARN_API__READ_CACHE_SECONDS`` (0 turns the cache off) — a safety net; the key's data
  version is what keeps answers current. A run finished by another process (the scheduler's,
  the CLI) changes the version within ``LATEST_RUN_TTL`` (1 s), as it changes the routes'.

The routes do not answer conditional requests (no ``ETag``), and neither does the cache.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from cachetools import TTLCache
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.cache import READ_CACHEABLE
from service.api.deps import authenticate
from service.api.i18n import preferred_language
from service.api.routes.evaluation import ServedAnswers
from service.api.routes.forecasts import LATEST_RUN_TTL, latest_run_id

__all__ = ["ReadCache", "ReadCacheMiddleware", "canonical_query", "data_version", "route_of"]


@dataclass(frozen=True, slots=True)
class _Route:
    """What a hit leaves in ``scope["route"]``: the template the metrics, the access log and
    the audit log name the route by (:func:`service.api.middleware.route_template`)."""

    path: str


#: The routes served from the cache: pattern of the path → the route (GET only; all need the
#: ``read`` scope).
ROUTES: dict[re.Pattern[str], _Route] = {
    re.compile(r"/v1/peaks"): _Route("/v1/peaks"),
    re.compile(r"/v1/series/[^/]+/forecast"): _Route("/v1/series/{series_id}/forecast"),
}
_SCOPE = "read"


def route_of(path: str) -> _Route | None:
    """The cached route ``path`` belongs to, if any."""
    for pattern, route in ROUTES.items():
        if pattern.fullmatch(path):
            return route
    return None


def canonical_query(query_string: bytes) -> tuple[tuple[str, str], ...]:
    """The query parameters decoded as Starlette decodes them, in name order; a name given
    more than once keeps its values' order (the route takes the last)."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return tuple(sorted(pairs, key=lambda kv: kv[0]))


@dataclass(frozen=True, slots=True)
class Entry:
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


class ReadCache:
    """Answers by key: a ``TTLCache`` bounded by total body bytes (``max_bytes``), entries
    expiring after ``ttl`` seconds on ``timer``. Used on the event loop only (no lock)."""

    def __init__(self, ttl: float, max_bytes: int,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.max_bytes = ttl, max_bytes
        self.enabled = ttl > 0 and max_bytes > 0
        self._data: TTLCache[Hashable, Entry] = TTLCache(
            maxsize=max(max_bytes, 1), ttl=max(ttl, 1e-9), timer=timer,
            getsizeof=lambda entry: len(entry.body) or 1)
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> Entry | None:
        entry = self._data.get(key)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def put(self, key: Hashable, entry: Entry) -> None:
        if len(entry.body) <= self.max_bytes:
            self._data[key] = entry

    @property
    def size_bytes(self) -> int:
        return int(self._data.currsize)

    def __len__(self) -> int:
        return len(self._data)


async def data_version(request: Request) -> tuple[str | None, int]:
    """What the cached answers depend on besides the request: the newest finished run id
    (the routes' own memo, :func:`service.api.routes.forecasts.latest_run_id`, dropped when
    the app's executor finishes a run) and the generation of the evaluation's inputs (the
    evaluation routes' memo, re-read at once after a change made by this process)."""
    run_id = await latest_run_id(request)
    served: ServedAnswers = request.app.state.evaluation_served
    generation = served.generation(request)
    if generation is None:
        generation = await run_in_threadpool(served.refresh_generation, request)
    return run_id, generation


def _remembered_version(request: Request) -> tuple[str | None, int] | None:
    """:func:`data_version` as remembered now, without reading the database (None when
    either memo has expired)."""
    at, run_id = request.app.state.latest_run_memo
    if time.monotonic() - at > LATEST_RUN_TTL:
        return None
    generation = request.app.state.evaluation_served.generation(request)
    return None if generation is None else (run_id, generation)


class ReadCacheMiddleware:
    """Serves repeated identical reads of :data:`ROUTES` from ``app.state.read_cache``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        route = route_of(scope["path"])
        cache: ReadCache | None = getattr(scope["app"].state, "read_cache", None)
        if route is None or cache is None or not cache.enabled:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            key = await authenticate(request, request.headers.get("x-api-key"), _SCOPE)
            version = await data_version(request)
        except Exception:
            # a refused key (401/403), a busy database (503), …: the app answers, with its
            # problem handlers, exactly as without a cache
            await self.app(scope, receive, send)
            return
        cache_key = (route.path, scope["path"], canonical_query(scope["query_string"]),
                     preferred_language(request.headers.get("accept-language")),
                     tuple(sorted(key.scopes)), version)
        entry = cache.get(cache_key)
        if entry is not None:
            scope["route"] = route  # the route's name in the metrics, access and audit logs
            await send({"type": "http.response.start", "status": 200,
                        "headers": list(entry.headers)})
            await send({"type": "http.response.body", "body": entry.body})
            return
        await self._answer_and_keep(scope, receive, send, request, cache, cache_key)

    async def _answer_and_keep(self, scope: Scope, receive: Receive, send: Send,
                               request: Request, cache: ReadCache,
                               cache_key: tuple[Any, ...]) -> None:
        status = 0
        headers: tuple[tuple[bytes, bytes], ...] = ()
        chunks: list[bytes] = []
        complete = False

        async def keeping(message: Message) -> None:
            nonlocal status, headers, complete
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = tuple(message.get("headers", ()))
            elif message["type"] == "http.response.body" and status == 200:
                chunks.append(message.get("body", b""))
                complete = not message.get("more_body", False)
            await send(message)

        await self.app(scope, receive, keeping)
        state = scope.get("state") or {}
        if (status == 200 and complete and state.get(READ_CACHEABLE)
                and _remembered_version(request) == cache_key[-1]):
            cache.put(cache_key, Entry(headers, b"".join(chunks)))
