"""Dependencies: settings, database session, API-key authentication with scopes."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from cachetools import TTLCache
from fastapi import Depends, Header, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.api.audit_hook import note_key_use
from service.config import Settings
from service.errors import Forbidden, Unauthorized
from service.store.keys import has_scope, verify_key
from service.store.tables import ApiKey, utcnow

__all__ = ["SessionDep", "SettingsDep", "LanguageDep", "KeyCache", "authenticate", "require",
           "get_session", "get_settings", "get_language"]

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                               description="API key created with `forewarn keys create`")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_language(accept_language: Annotated[str | None, Header(
        description="`zh` (or `zh-CN`, …) for explanations in Chinese; English "
                    "otherwise")] = None) -> str:
    """``zh`` or ``en`` from ``Accept-Language`` (service.api.i18n). ``async`` so that it runs
    on the event loop: a plain ``def`` dependency costs a thread-pool hop per request."""
    from service.api.i18n import preferred_language

    return preferred_language(accept_language)


LanguageDep = Annotated[str, Depends(get_language)]


class KeyCache:
    """Recently verified keys by the SHA-256 of the presented key, for ``ttl`` seconds.

    Keeps the database off the hot path of every request; a revoked or expired key stops
    working within ``ttl`` seconds (``FOREWARN_API__KEY_CACHE_SECONDS``, 0 disables). A
    ``cachetools.TTLCache`` of at most ``maxsize`` keys (the least recently used go first).
    """

    def __init__(self, ttl: float, maxsize: int = 10_000,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._data: TTLCache[str, ApiKey] | None = (
            TTLCache(maxsize=maxsize, ttl=ttl, timer=timer) if ttl > 0 else None)
        self._lock = threading.Lock()

    def get(self, digest: str) -> ApiKey | None:
        if self._data is None:
            return None
        with self._lock:
            key = self._data.get(digest)
        if key is None:
            return None
        if key.expires_at is not None and key.expires_at <= utcnow():
            return None
        return key

    def put(self, digest: str, key: ApiKey) -> None:
        if self._data is None:
            return
        with self._lock:
            self._data[digest] = key


def _verify(request: Request, api_key: str) -> ApiKey | None:
    with request.app.state.sessionmaker() as session:
        return verify_key(session=session, plaintext=api_key)


async def authenticate(request: Request, api_key: str | None, scope: str) -> ApiKey:
    """The verified key presented as ``api_key``, holding ``scope`` (``admin`` implies every
    scope): :class:`Unauthorized` without a valid key, :class:`Forbidden` without the scope.

    Verified keys are cached briefly (:class:`KeyCache`); a miss reads the database in the
    thread pool. Notes the key's use for the audit log and the access log's ``key``. The one
    check of every route (:func:`require`) and of the read cache in front of the hot routes
    (:mod:`service.api.read_cache`).
    """
    if not api_key:
        raise Unauthorized("this endpoint needs an API key in the X-API-Key header")
    cache: KeyCache = request.app.state.key_cache
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    key = cache.get(digest)
    if key is None:
        key = await run_in_threadpool(_verify, request, api_key)
        if key is None:
            raise Unauthorized("the API key is unknown, revoked or expired")
        cache.put(digest, key)
    note_key_use(request.state, key, scope)  # audited once the response is out
    if not has_scope(key, scope):
        raise Forbidden(f"the API key lacks the '{scope}' scope")
    request.state.api_key_prefix = key.prefix
    return key


def require(scope: str) -> Callable[..., Awaitable[ApiKey]]:
    """Dependency factory: a valid API key with ``scope`` (:func:`authenticate`).

    The scope is listed in the operation's OpenAPI ``security`` requirement
    (``{"APIKeyHeader": ["read"]}``), so clients can see which scope each operation needs.
    """

    async def _dep(
        request: Request,
        api_key: str | None = Security(_api_key_header, scopes=[scope]),
    ) -> ApiKey:
        return await authenticate(request, api_key, scope)

    _dep.__name__ = f"require_{scope}"
    return _dep
