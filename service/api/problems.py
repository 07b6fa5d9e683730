"""Exception handlers that answer with RFC 9457 problem details."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import PROBLEM_JSON, ServiceError

__all__ = ["install_problem_handlers", "problem_response", "problem_doc", "PROBLEM_RESPONSES",
           "BODY_RESPONSES", "PROBLEM_EXAMPLES"]

log = structlog.get_logger(__name__)

_PROBLEM_SCHEMA: dict[str, Any] = {
    "content": {
        PROBLEM_JSON: {
            "schema": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
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


#: One shared example body per documented error status.
PROBLEM_EXAMPLES: dict[int, dict[str, Any]] = {
    400: {"type": "about:blank", "title": "Bad Request", "status": 400,
          "detail": "the cursor is not one this API returned (pass `next_cursor` of the "
                    "previous page unchanged)",
          "instance": "/v1/peaks"},
    401: {"type": "about:blank", "title": "Unauthorized", "status": 401,
          "detail": "this endpoint needs an API key in the X-API-Key header",
          "instance": "/v1/campaigns"},
    403: {"type": "about:blank", "title": "Forbidden", "status": 403,
          "detail": "the API key lacks the 'approve' scope",
          "instance": "/v1/campaigns/3f2c9a7e5b8d4c1e9a0b6d2f4e8c1a57/approve"},
    404: {"type": "about:blank", "title": "Not Found", "status": 404,
          "detail": "campaign 3f2c9a7e5b8d4c1e9a0b6d2f4e8c1a57 does not exist",
          "instance": "/v1/campaigns/3f2c9a7e5b8d4c1e9a0b6d2f4e8c1a57"},
    409: {"type": "about:blank", "title": "Conflict", "status": 409,
          "detail": "campaign 3f2c9a7e5b8d4c1e9a0b6d2f4e8c1a57 is sent; it cannot become "
                    "cancelled",
          "status_now": "sent", "allowed": [],
          "instance": "/v1/campaigns/3f2c9a7e5b8d4c1e9a0b6d2f4e8c1a57/cancel"},
    413: {"type": "about:blank", "title": "Content Too Large", "status": 413,
          "detail": "the request body (73400320 bytes) exceeds the maximum of 67108864 bytes",
          "instance": "/v1/complaints/import"},
    415: {"type": "about:blank", "title": "Unsupported Media Type", "status": 415,
          "detail": "send multipart/form-data (field 'file'), application/json or "
                    "application/x-ndjson, not 'text/plain'",
          "instance": "/v1/complaints/import"},
    422: {"type": "about:blank", "title": "Unprocessable Content", "status": 422,
          "detail": "invalid request: query.limit: Input should be less than or equal to 1000",
          "instance": "/v1/series",
          "errors": [{"loc": ["query", "limit"],
                      "msg": "Input should be less than or equal to 1000",
                      "type": "less_than_equal"}]},
    429: {"type": "about:blank", "title": "Too Many Requests", "status": 429,
          "detail": "rate limit exceeded; retry later",
          "instance": "/v1/public/reminders"},
}


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
}

#: Extra errors of operations that take a request body.
BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: problem_doc("The request body is larger than the configured maximum "
                     "(api.max_body_bytes)", 413),
}


def problem_response(
    status: int, title: str, detail: str, *, instance: str | None = None,
    headers: dict[str, str] | None = None, **ext: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status,
                            "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(ext)
    return JSONResponse(jsonable_encoder(body), status_code=status, media_type=PROBLEM_JSON,
                        headers=headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    body = exc.problem(instance=request.url.path)
    return JSONResponse(jsonable_encoder(body), status_code=exc.status, media_type=PROBLEM_JSON,
                        headers=exc.headers or None)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    from http import HTTPStatus

    try:
        title = HTTPStatus(exc.status_code).phrase
    except ValueError:
        title = "Error"
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem_response(exc.status_code, title, detail, instance=request.url.path,
                            headers=dict(exc.headers) if exc.headers else None)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
    return problem_response(422, "Unprocessable Content", f"invalid request: {fields}",
                            instance=request.url.path, errors=errors)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    return problem_response(500, "Internal Server Error", "an unexpected error occurred",
                            instance=request.url.path)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled)
