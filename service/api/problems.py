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
           "BODY_RESPONSES"]

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
                },
                "required": ["type", "title", "status"],
            }
        }
    }
}


def problem_doc(description: str) -> dict[str, Any]:
    """OpenAPI response object of a problem-details error with ``description``."""
    return {"description": description, **_PROBLEM_SCHEMA}


_problem_doc = problem_doc

#: Errors every guarded operation can answer with.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: problem_doc("Malformed request (e.g. a body that is not valid JSON, a foreign cursor)"),
    401: problem_doc("Missing or invalid API key"),
    403: problem_doc("The key lacks the required scope"),
    422: problem_doc("Invalid parameters or body"),
    429: problem_doc("Rate limit exceeded (see the Retry-After header)"),
}

#: Extra errors of operations that take a request body.
BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: problem_doc("The request body is larger than the configured maximum "
                     "(api.max_body_bytes)"),
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
