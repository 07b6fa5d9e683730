"""Audit every use of the ``import``, ``plan``, ``approve`` and ``admin`` scopes.

Two small pieces:

* :func:`note_key_use` — called by :func:`service.api.deps.require` once a key is verified
  (before the scope check). It stashes, in the request's ASGI state, what an audit entry needs
  when the request uses a write scope, or when a key holding ``admin`` is let in by ``admin``
  rather than by a scope of its own. A key refused for lacking a write scope is noted too.
* :class:`AuditMiddleware` — pure ASGI; after the response, writes one entry per noted request
  through :func:`service.audit.record` (in the thread pool, its own short transaction).

An entry holds: who (``actor = key:<prefix>``, ``detail.key_name``), what (``action =
scope.<scope>``, ``entity_type = "route"``, ``entity_id = "<METHOD> <route template>"``,
``detail.status``), when (``at``), from where (``remote_addr``, the client address as the server
sees it — run uvicorn with ``--proxy-headers`` behind a proxy) and the request id. Never the
query string, the body, path values or the key itself.
"""

from __future__ import annotations

from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from service.api.middleware import HttpMiddleware, route_template
from service.audit import record
from service.store.tables import ApiKey

__all__ = ["AUDITED_SCOPES", "AuditMiddleware", "note_key_use", "audit_action"]

log = structlog.get_logger("forewarn.audit")

#: Scopes whose every use is written to the audit log.
AUDITED_SCOPES = frozenset({"import", "plan", "approve", "admin"})
_STATE_KEY = "audit_scope_use"


def audit_action(scope: str) -> str:
    """Action name of a scope use, e.g. ``scope.approve``."""
    return f"scope.{scope}"


def note_key_use(state: Any, key: ApiKey, scope: str) -> None:
    """Remember on ``request.state`` that ``key`` is used for ``scope`` (when audited).

    The scope audited is ``scope`` itself when it is a write scope; for a ``read`` operation
    it is ``admin`` when only ``admin`` lets the key in. Unaudited uses leave no trace here.
    """
    scopes = set(key.scopes)
    if scope in AUDITED_SCOPES:
        used = scope
        granted = scope if scope in scopes else "admin"
    elif scope not in scopes and "admin" in scopes:
        used = granted = "admin"
    else:
        return
    setattr(state, _STATE_KEY, {"scope": used, "granted_by": granted, "prefix": key.prefix,
                                "key_name": key.name})


class AuditMiddleware(HttpMiddleware):
    """Writes the audit entry of a noted scope use once the response has gone out."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            use = state.get(_STATE_KEY)
            if use is not None:
                await self._write(scope, use, status)

    async def _write(self, scope: Scope, use: dict[str, str], status: int) -> None:
        app = scope.get("app")
        factory = getattr(getattr(app, "state", None), "sessionmaker", None)
        if factory is None:
            return
        client = scope.get("client")
        rid = structlog.contextvars.get_contextvars().get("request_id")
        method, route = scope["method"], route_template(scope)

        def write() -> None:
            with factory() as session:
                record(session=session, actor=f"key:{use['prefix']}",
                       action=audit_action(use["scope"]), entity_type="route",
                       entity_id=f"{method} {route}",
                       detail={"method": method, "route": route, "status": status,
                               "scope": use["scope"], "granted_by": use["granted_by"],
                               "key_name": use["key_name"], "request_id": rid},
                       remote_addr=client[0] if client else None)
                session.commit()

        try:
            await run_in_threadpool(write)
        except Exception as exc:  # the response has gone; never fail it, but say so
            log.error("audit_write_failed", action=audit_action(use["scope"]), route=route,
                      error_type=type(exc).__name__)
