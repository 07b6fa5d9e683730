"""ASGI middleware: request id + access log + metrics, body-size limit, security headers,
per-key rate limits. Pure ASGI (no BaseHTTPMiddleware) to keep the hot path cheap."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import uuid

import redis.asyncio
import structlog
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import RedisStorage as AsyncRedisStorage
from limits.aio.strategies import MovingWindowRateLimiter as AsyncMovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import problem_type
from service.errors import PROBLEM_JSON
from service.metrics import HTTP_LATENCY, HTTP_REQUESTS

__all__ = ["HttpMiddleware", "ObservabilityMiddleware", "BodyLimitMiddleware",
           "RateLimitMiddleware", "InFlightMiddleware", "route_template"]

log = structlog.get_logger("forewarn.http")

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_HTML_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
     b"script-src 'self' 'unsafe-inline'; frame-ancestors 'none'"),
]


def _problem(status: int, title: str, detail: str, headers: list[tuple[bytes, bytes]]
             ) -> tuple[Message, Message]:
    body = json.dumps({"type": problem_type(status), "title": title, "status": status,
                       "detail": detail}).encode()
    start: Message = {"type": "http.response.start", "status": status,
                      "headers": [(b"content-type", PROBLEM_JSON.encode()),
                                  (b"content-length", str(len(body)).encode()), *headers]}
    return start, {"type": "http.response.body", "body": body}


def route_template(scope: Scope) -> str:
    """The matched route's path template (bounded label cardinality), e.g.
    ``/v1/series/{series_id}/counts``; FastAPI ≥ 0.16x keeps the prefixed path of included
    routers in its effective route context."""
    ctx = (scope.get("fastapi") or {}).get("effective_route_context")
    path = getattr(ctx, "path", None) or getattr(scope.get("route"), "path", None)
    return str(path) if path else "unmatched"


class HttpMiddleware:
    """A pure ASGI middleware for HTTP requests: :meth:`http` handles them, every other
    scope (lifespan, websocket) passes through unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class ObservabilityMiddleware(HttpMiddleware):
    """Request id, one structured access-log line per request (no query strings, no bodies),
    HTTP metrics, and security headers."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = ""
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                rid = v.decode("latin-1")[:64]
                break
        rid = rid or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=rid)
        t0 = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                headers.extend(_SECURITY_HEADERS)
                ctype = next((v for k, v in headers if k == b"content-type"), b"")
                if ctype.startswith(b"text/html"):
                    headers.extend(_HTML_HEADERS)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - t0
            route = route_template(scope)
            method = scope["method"]
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(elapsed)
            state = scope.get("state") or {}
            log.info("request", method=method, route=route, status=status,
                     ms=round(elapsed * 1000, 2), key=state.get("api_key_prefix"))
            structlog.contextvars.clear_contextvars()


class BodyLimitMiddleware(HttpMiddleware):
    """413 problem for bodies over ``max_bytes`` (Content-Length or counted while streaming)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        for k, v in scope["headers"]:
            if k == b"content-length" and v.isdigit() and int(v) > self.max_bytes:
                start, body = _problem(413, "Content Too Large",
                                       f"the request body exceeds {self.max_bytes} bytes", [])
                await send(start)
                await send(body)
                return
        received = 0
        limit = self.max_bytes

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, receive_wrapper, send)
        except _TooLarge:
            start, body = _problem(413, "Content Too Large",
                                   f"the request body exceeds {limit} bytes", [])
            await send(start)
            await send(body)


class _TooLarge(Exception):
    pass


_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

#: While the rate-limit storage is unreachable, it is tried again after this many seconds.
_STORAGE_RETRY_SECONDS = 5.0


class RateLimitMiddleware:
    """Moving-window rate limits per presented API key and per client address (``limits``).

    At most ``per_minute`` requests in any 60 seconds per key; a client address gets
    ``ip_factor`` times that across all the keys it presents, so inventing key prefixes does
    not buy a fresh allowance (a request without a key counts ``ip_factor`` times against its
    address: ``per_minute`` a minute). Over either limit: a 429 problem with ``Retry-After``
    (seconds until the oldest counted request leaves the window). Health endpoints are not
    limited; ``per_minute <= 0`` turns limiting off.

    ``storage``: ``memory://`` counts in this process (each API process has its own limits); a
    Redis URL (``redis://host:6379/0``, ``rediss://``, ``unix://``: redis-py's forms) counts in
    Redis, shared by every process using it, through limits' asyncio API on redis-py so a round
    trip never blocks the event loop. A Redis that does not answer within 0.5 s counts as
    unreachable (the URL's ``socket_timeout`` / ``socket_connect_timeout`` override that);
    while it is, requests are let through and it is tried again every
    :data:`_STORAGE_RETRY_SECONDS` (logged once per outage): the limit protects the service,
    it must not take it down. ``key_prefix`` starts every counter's key (deployments sharing
    one Redis stay apart). The connection pool is closed at lifespan shutdown.
    """

    def __init__(self, app: ASGIApp, per_minute: int, ip_factor: int = 4,
                 storage: str = "memory://", key_prefix: str = "forewarn") -> None:
        self.app = app
        self.enabled = per_minute > 0
        self.ip_factor = ip_factor
        self.key_prefix = key_prefix
        self.per_key = RateLimitItemPerMinute(max(per_minute, 1))
        self.per_ip = RateLimitItemPerMinute(max(per_minute, 1) * ip_factor)
        self._sync: MovingWindowRateLimiter | None = None
        self._async: AsyncMovingWindowRateLimiter | None = None
        self._down_until: float | None = None  # monotonic time of the next storage try
        self._pool: redis.asyncio.ConnectionPool | None = None
        if not self.enabled:
            return
        if storage.startswith("memory://"):  # in-process: a lock and a list, a few µs
            self._sync = MovingWindowRateLimiter(storage_from_string(storage))
        elif storage.startswith(_REDIS_SCHEMES):
            # our own pool (closed at shutdown), limits' asyncio Redis storage on redis-py
            self._pool = redis.asyncio.ConnectionPool.from_url(
                storage, socket_timeout=0.5, socket_connect_timeout=0.5)
            self._async = AsyncMovingWindowRateLimiter(AsyncRedisStorage(
                "async+redis://", implementation="redispy", wrap_exceptions=True,
                connection_pool=self._pool))  # type: ignore[arg-type]  # documented option
        else:
            raise ValueError(f"rate limit storage: memory:// or a Redis URL "
                             f"({', '.join(_REDIS_SCHEMES)}), not {storage.split(':')[0]}")

    def _closing_at_shutdown(self, send: Send) -> Send:
        pool = self._pool
        assert pool is not None

        async def closing(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await pool.aclose()  # the Redis connections, on the loop that opened them
            await send(message)
        return closing

    async def _hit(self, item: RateLimitItem, ids: tuple[str, ...], cost: int) -> bool:
        if self._sync is not None:
            return self._sync.hit(item, self.key_prefix, *ids, cost=cost)
        assert self._async is not None
        return await self._async.hit(item, self.key_prefix, *ids, cost=cost)

    async def _retry_after(self, item: RateLimitItem, ids: tuple[str, ...]) -> int:
        if self._sync is not None:
            stats = self._sync.get_window_stats(item, self.key_prefix, *ids)
        else:
            assert self._async is not None
            stats = await self._async.get_window_stats(item, self.key_prefix, *ids)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def _over_limit(self, ip: tuple[str, ...], key: tuple[str, ...] | None) -> int:
        """0 when the request is allowed (and counted), else seconds to wait."""
        if not await self._hit(self.per_ip, ip, 1 if key is not None else self.ip_factor):
            return await self._retry_after(self.per_ip, ip)
        if key is not None and not await self._hit(self.per_key, key, 1):
            return await self._retry_after(self.per_key, key)
        return 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self._pool is not None:
            await self.app(scope, receive, self._closing_at_shutdown(send))
            return
        if scope["type"] != "http" or not self.enabled or scope["path"] in ("/healthz",
                                                                            "/readyz"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = ("ip", client[0] if client else "-")
        key: tuple[str, ...] | None = None
        for k, v in scope["headers"]:
            if k == b"x-api-key":
                parts = v.decode("latin-1").split("_")
                # a key's public prefix; anything else by its hash: no presented secret is
                # stored as a counter's name (in Redis)
                key = ("key", parts[1] if len(parts) > 2 and parts[0] == "fw"
                       else hashlib.blake2b(parts[0].encode("latin-1"),
                                            digest_size=16).hexdigest())
                break
        wait = 0
        if self._down_until is None or time.monotonic() >= self._down_until:
            try:
                wait = await self._over_limit(ip, key)
            except StorageError as exc:  # unreachable: let requests through for a while
                if self._down_until is None:
                    log.warning("rate_limit_storage_unavailable",
                                error_type=type(exc.storage_error).__name__)
                self._down_until = time.monotonic() + _STORAGE_RETRY_SECONDS
            else:
                if self._down_until is not None:
                    self._down_until = None
                    log.info("rate_limit_storage_available")
        if wait > 0:
            start, body = _problem(429, "Too Many Requests",
                                   "rate limit exceeded; retry later",
                                   [(b"retry-after", str(wait).encode())])
            await send(start)
            await send(body)
            return
        await self.app(scope, receive, send)


class InFlightMiddleware:
    """Load shedding and abandoned requests (issue 13).

    - More than ``max_in_flight`` requests in progress in this process: 503 problem
      ``urn:forewarn:problem:overloaded`` with ``Retry-After`` at once, instead of a queue
      that serves nothing for a minute (health endpoints are exempt).
    - A GET or HEAD whose client disconnects before the response starts is cancelled: a
      request still waiting for a worker thread never starts, one waiting on an ``await``
      stops there (a thread already running finishes its statement; its result is dropped).
      Requests with a body are left alone (their body is the app's to read).
    """

    def __init__(self, app: ASGIApp, max_in_flight: int, retry_after: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after = retry_after
        self.in_flight = 0
        self.abandoned = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in ("/healthz", "/readyz", "/metrics"):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            body = json.dumps({
                "type": "urn:forewarn:problem:overloaded", "title": "Service Unavailable",
                "status": 503, "detail": f"the server is at capacity (requests in progress); "
                                         f"retry after {self.retry_after} s",
                "instance": scope["path"]}).encode()
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(self.retry_after).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        self.in_flight += 1
        try:
            if scope["method"] in ("GET", "HEAD"):
                await self._cancel_when_abandoned(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _cancel_when_abandoned(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app in this task; a watcher task reads ``receive`` and, on a disconnect
        before the response started, cancels this task. Plain asyncio (one task per request,
        ~20 µs): an anyio task group cost ~250 µs a request on the cached hot routes."""
        task = asyncio.current_task()
        state = _Watch()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                state.started = True
            await send(message)

        async def receive_wrapper() -> Message:  # what the watcher read, in order
            while not state.box:
                if state.done:
                    return {"type": "http.disconnect"}
                state.wake.clear()
                await state.wake.wait()
            return state.box.pop(0)

        async def watch() -> None:
            while True:
                message = await receive()
                state.box.append(message)
                state.wake.set()
                if message["type"] == "http.disconnect":
                    state.done = True
                    if not state.started and task is not None:
                        state.abandoned = True  # the client left before an answer
                        task.cancel()
                    return

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except asyncio.CancelledError:
            if not state.abandoned or task is None:
                raise
            task.uncancel()
            self.abandoned += 1
        finally:
            watcher.cancel()


class _Watch:
    __slots__ = ("started", "done", "abandoned", "box", "wake")

    def __init__(self) -> None:
        self.started = self.done = self.abandoned = False
        self.box: list[Message] = []
        self.wake = asyncio.Event()
