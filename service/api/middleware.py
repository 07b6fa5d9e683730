"""ASGI middleware: request id + access log + metrics, body-size limit, security headers,
per-key rate limits. Pure ASGI (no BaseHTTPMiddleware) to keep the hot path cheap."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PROBLEM_JSON
from service.metrics import HTTP_LATENCY, HTTP_REQUESTS

__all__ = ["ObservabilityMiddleware", "BodyLimitMiddleware", "RateLimitMiddleware",
           "InFlightMiddleware", "route_template"]

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
    body = json.dumps({"type": "about:blank", "title": title, "status": status,
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


class ObservabilityMiddleware:
    """Request id, one structured access-log line per request (no query strings, no bodies),
    HTTP metrics, and security headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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


class BodyLimitMiddleware:
    """413 problem for bodies over ``max_bytes`` (Content-Length or counted while streaming)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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


class RateLimitMiddleware:
    """Token buckets per presented API key and per client address, per process.

    ``per_minute`` requests a minute per key, with bursts up to the same number; a client
    address gets ``ip_factor`` times that across all the keys it presents, so inventing key
    prefixes does not buy a fresh allowance. Over either limit: a 429 problem with
    ``Retry-After``. Health endpoints are not limited. Idle buckets are dropped so memory stays
    bounded.
    """

    def __init__(self, app: ASGIApp, per_minute: int, ip_factor: int = 4) -> None:
        self.app = app
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.ip_factor = ip_factor
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()
        self._last_sweep = time.monotonic()

    def _take(self, key: str, factor: float = 1.0) -> float:
        """0 when allowed (a token is taken), else seconds until a token is available."""
        rate, capacity = self.rate * factor, self.capacity * factor
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self.buckets[key] = (tokens - 1.0, now)
                return 0.0
            self.buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate

    def _sweep(self) -> None:
        """Forget buckets idle long enough to have refilled completely."""
        now = time.monotonic()
        if now - self._last_sweep < 60.0:
            return
        idle = self.ip_factor * self.capacity / self.rate
        with self.lock:
            self._last_sweep = now
            for k in [k for k, (_, last) in self.buckets.items() if now - last > idle]:
                del self.buckets[k]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.rate <= 0 or scope["path"] in ("/healthz", "/readyz"):
            await self.app(scope, receive, send)
            return
        self._sweep()
        client = scope.get("client")
        ip = f"ip:{client[0] if client else '-'}"
        key: str | None = None
        for k, v in scope["headers"]:
            if k == b"x-api-key":
                parts = v.decode("latin-1").split("_")
                key = "key:" + (parts[1] if len(parts) > 2 and parts[0] == "fw" else parts[0])
                break
        wait = self._take(ip, self.ip_factor) if key is not None else self._take(ip)
        if wait == 0 and key is not None:
            wait = self._take(key)
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            start, body = _problem(429, "Too Many Requests",
                                   "rate limit exceeded; retry later",
                                   [(b"retry-after", retry.encode())])
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
