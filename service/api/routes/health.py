"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.api.db_metrics import lease_state
from service.migrate import is_current

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Process is alive",
            responses={200: {"description": "The process answers",
                             "content": {"application/json": {"example": {"status": "ok"}}}}})
def healthz() -> dict[str, str]:
    """Liveness probe: answers ``{"status": "ok"}`` without touching the database. No key."""
    return {"status": "ok"}


_READY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ready", "not ready"]},
        "checks": {
            "type": "object",
            "properties": {
                "database": {"type": "string"},
                "migrations": {"type": "string", "enum": ["current", "outdated"]},
                "scheduler": {
                    "type": "object",
                    "description": "The scheduler lease (informational: API processes are "
                                   "ready without a scheduler)",
                    "properties": {"holder": {"type": ["string", "null"]},
                                   "expires_at": {"type": ["string", "null"],
                                                  "format": "date-time"},
                                   "alive": {"type": "boolean"}},
                },
            },
        },
    },
}
_READY_EXAMPLE = {"status": "ready", "checks": {
    "database": "ok", "migrations": "current",
    "scheduler": {"holder": "api-1:4242:a1b2c3", "expires_at": "2026-11-02T01:00:30+00:00",
                  "alive": True}}}
_NOT_READY_EXAMPLE = {"status": "not ready", "checks": {
    "database": "ok", "migrations": "outdated"}}


@router.get("/readyz", summary="Database reachable, migrations current, scheduler lease state",
            responses={
                200: {"description": "Ready",
                      "content": {"application/json": {"schema": _READY_SCHEMA,
                                                       "example": _READY_EXAMPLE}}},
                503: {"description": "Not ready (database unreachable or migrations outdated)",
                      "content": {"application/json": {"schema": _READY_SCHEMA,
                                                       "example": _NOT_READY_EXAMPLE}}}})
def readyz(request: Request) -> JSONResponse:
    """Readiness probe (no key): 200 when the database answers and its schema is at the
    newest migration, else 503. The scheduler lease is reported but never fails readiness."""
    checks: dict[str, Any] = {}
    engine = request.app.state.engine
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        checks["migrations"] = "current" if is_current(engine) else "outdated"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    if checks.get("migrations") == "current":
        try:
            with request.app.state.sessionmaker() as session:
                checks["scheduler"] = lease_state(
                    session, request.app.state.settings.scheduler.advisory_lock_key)
        except Exception as exc:  # informational only: never fails readiness
            checks["scheduler"] = {"holder": None, "expires_at": None, "alive": False,
                                   "error": type(exc).__name__}
    ready = checks.get("database") == "ok" and checks.get("migrations") == "current"
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                        status_code=200 if ready else 503)
