"""Exception handlers that answer with RFC 9457 problem details."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.i18n import localize_problem
from service.errors import (
    PROBLEM_JSON,
    PROBLEM_TYPE_PREFIX,
    BadRequest,
    Conflict,
    DatabaseBusy,
    Forbidden,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    ServiceError,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)

__all__ = ["install_problem_handlers", "problem_response", "problem_type", "problem_doc",
           "overload_error",
           "PROBLEM_RESPONSES", "BODY_RESPONSES", "PROBLEM_EXAMPLES"]

log = structlog.get_logger(__name__)

_PROBLEM_SCHEMA: dict[str, Any] = {
    "content": {
        PROBLEM_JSON: {
            "schema": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "description": "Stable code of the "
                             "problem, `urn:forewarn:problem:<code>` (e.g. `not-found`, "
                             "`unknown-filter-value`); does not change with the language"},
                    "title": {"type": "string", "description": "In Chinese when "
                              "`Accept-Language` prefers `zh`, else English"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string", "description": "Chinese for `zh` "
                               "clients where translated (see the `Content-Language` "
                               "header), else English"},
                    "instance": {"type": "string"},
                    "errors": {
                        "type": "array",
                        "description": "422 only: the invalid fields (location, message, type)",
                        "items": {"type": "object"},
                    },
                },
                "required": ["type", "title", "status"],
            }
        }
    }
}


_CAMPAIGN = "/v1/campaigns/3f2c9a7e5b8d4c1e9a0b6d2f4e8c1a57"

#: A request that fails validation (the RequestValidationError handler below).
_INVALID_REQUEST = {
    "type": "urn:forewarn:problem:invalid-request", "title": "Unprocessable Content",
    "status": 422,
    "detail": "invalid request: query.limit: Input should be less than or equal to 1000",
    "instance": "/v1/series",
    "errors": [{"loc": ["query", "limit"], "msg": "Input should be less than or equal to 1000",
                "type": "less_than_equal"}]}
_CAMPAIGN = "/v1/campaigns/3f2c9a7e5b8d4c1e9a0b6d2f4e8c1a57"
_ERROR_EXAMPLES: tuple[tuple[ServiceError, str], ...] = (
    (BadRequest("the cursor is not one this API returned (pass `next_cursor` of the previous "
                "page unchanged)"), "/v1/peaks"),
    (Unauthorized("this endpoint needs an API key in the X-API-Key header"), "/v1/campaigns"),
    (Forbidden("the API key lacks the 'approve' scope"), f"{_CAMPAIGN}/approve"),
    (NotFound("campaign 3f2c9a7e5b8d4c1e9a0b6d2f4e8c1a57 does not exist"), _CAMPAIGN),
    (Conflict("campaign 3f2c9a7e5b8d4c1e9a0b6d2f4e8c1a57 is sent; it cannot become cancelled",
              status_now="sent", allowed=[]), f"{_CAMPAIGN}/cancel"),
    (PayloadTooLarge("the request body (73400320 bytes) exceeds the maximum of 67108864 "
                     "bytes"), "/v1/complaints/import"),
    (UnsupportedMediaType("send multipart/form-data (field 'file'), application/json or "
                          "application/x-ndjson, not 'text/plain'"), "/v1/complaints/import"),
    (TooManyRequests("rate limit exceeded; retry later", retry_after=1), "/v1/public/reminders"),
    (Overloaded("the server is at capacity (no database connection free); retry after 2 s"),
     "/v1/series"),
)

#: One shared example body per documented error status: the body the service's error gives.
PROBLEM_EXAMPLES: dict[int, dict[str, Any]] = dict(sorted(
    [(error.status, error.problem(instance)) for error, instance in _ERROR_EXAMPLES]
    + [(422, _INVALID_REQUEST)]))


def problem_doc(description: str, status: int | None = None) -> dict[str, Any]:
    """OpenAPI response object of a problem-details error with ``description``.

    With ``status`` (one of :data:`PROBLEM_EXAMPLES`) the media type carries that status's
    shared example body.
    """
    media: dict[str, Any] = dict(_PROBLEM_SCHEMA["content"][PROBLEM_JSON])
    if status is not None:
        media["example"] = PROBLEM_EXAMPLES[status]
    return {"description": description, "content": {PROBLEM_JSON: media}}


_problem_doc = problem_doc

#: Errors every guarded operation can answer with.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: problem_doc("Malformed request (e.g. a body that is not valid JSON, a foreign cursor)",
                     400),
    401: problem_doc("Missing or invalid API key", 401),
    403: problem_doc("The key lacks the required scope", 403),
    422: problem_doc("Invalid parameters or body", 422),
    429: problem_doc("Rate limit exceeded (see the Retry-After header)", 429),
    503: problem_doc("Overloaded: requests in progress, database connections or a lock at "
                     "capacity (`overloaded`, `database-busy`); retry after the Retry-After "
                     "header's seconds", 503),
}

#: Extra errors of operations that take a request body.
BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: problem_doc("The request body is larger than the configured maximum "
                     "(api.max_body_bytes)", 413),
}


#: ``type`` of errors raised outside the service's own classes, by status
_STATUS_TYPES = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
                 405: "method-not-allowed", 409: "conflict", 413: "payload-too-large",
                 415: "unsupported-media-type", 422: "invalid-request",
                 429: "too-many-requests", 500: "internal-error", 503: "service-unavailable"}


def problem_type(status: int) -> str:
    """The stable ``type`` of a problem with ``status`` that has no more specific one."""
    return PROBLEM_TYPE_PREFIX + _STATUS_TYPES.get(status, "error")


def _localized(request: Request | None, body: dict[str, Any], status: int,
               headers: dict[str, str] | None) -> JSONResponse:
    """The problem in the client's language (``Accept-Language``; see service.api.i18n)."""
    lang = "en"
    if request is not None:
        body, lang = localize_problem(body, request.headers.get("accept-language"))
    return JSONResponse(jsonable_encoder(body), status_code=status, media_type=PROBLEM_JSON,
                        headers={**(headers or {}), "Content-Language": lang,
                                 "Vary": "Accept-Language"})


def problem_response(
    status: int, title: str, detail: str, *, instance: str | None = None,
    headers: dict[str, str] | None = None, request: Request | None = None,
    type_: str | None = None, **ext: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_ or problem_type(status), "title": title,
                            "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(ext)
    return _localized(request, body, status, headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    body = exc.problem(instance=request.url.path)
    if body["type"] == PROBLEM_TYPE_PREFIX + "internal-error" and exc.status != 500:
        body["type"] = problem_type(exc.status)  # subclasses that set only a status
    return _localized(request, body, exc.status, exc.headers or None)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    from http import HTTPStatus

    try:
        title = HTTPStatus(exc.status_code).phrase
    except ValueError:
        title = "Error"
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem_response(exc.status_code, title, detail, instance=request.url.path,
                            headers=dict(exc.headers) if exc.headers else None,
                            request=request)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
    return problem_response(422, "Unprocessable Content", f"invalid request: {fields}",
                            instance=request.url.path, errors=errors, request=request)


#: PostgreSQL SQLSTATEs of a busy database: lock_not_available, query_canceled (statement or
#: lock timeout), serialization_failure, deadlock_detected, too_many_connections,
#: cannot_connect_now
_BUSY_SQLSTATES = {"55P03": "a lock was not granted in time",
                   "57014": "a statement took too long",
                   "40001": "a concurrent update", "40P01": "a deadlock",
                   "53300": "too many connections", "57P03": "the database is starting"}


def overload_error(exc: BaseException, retry_after: int = 2) -> Overloaded | None:
    """The 503 a database error means, or None when it is not an overload: a pool that had
    no connection free in time, a lock not granted (SQLite's ``database is locked``, the
    PostgreSQL SQLSTATEs above), a connection the server dropped."""
    if isinstance(exc, sa_exc.TimeoutError):  # QueuePool limit reached, timed out
        return Overloaded(f"the server is at capacity (no database connection free); retry "
                          f"after {retry_after} s", retry_after=retry_after)
    if isinstance(exc, sa_exc.DBAPIError):
        orig = exc.orig
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        text = str(orig).lower()
        why = _BUSY_SQLSTATES.get(str(code)) if code else None
        if why is None and ("database is locked" in text or "database is busy" in text
                            or "database table is locked" in text):
            why = "the write lock was not granted in time"
        if why is None and exc.connection_invalidated:
            why = "the connection was lost"
        if why is not None:
            return DatabaseBusy(f"the database is busy ({why}); retry after {retry_after} s",
                                retry_after=retry_after)
    return None


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    settings = getattr(request.app.state, "settings", None)
    retry = settings.api.retry_after_seconds if settings is not None else 2
    busy = overload_error(exc, retry)
    if busy is None:
        return await _unhandled(request, exc)
    log.warning("overloaded", path=request.url.path, problem=busy.type.rsplit(":", 1)[-1],
                error_type=type(exc).__name__)
    return await _service_error(request, busy)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    return problem_response(500, "Internal Server Error", "an unexpected error occurred",
                            instance=request.url.path, request=request)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(sa_exc.TimeoutError, _database_error)
    app.add_exception_handler(sa_exc.DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unhandled)
