"""Errors raised by the service and their RFC 9457 problem-details form.

Exception tree::

    ServiceError (500)
    ├── BadRequest (400)
    ├── Unauthorized (401)
    ├── Forbidden (403)
    ├── NotFound (404)
    ├── Conflict (409)
    ├── PayloadTooLarge (413)
    ├── UnsupportedMediaType (415)
    ├── UnprocessableContent (422)
    │   ├── InsufficientHistory (422)
    │   └── UnknownFilterValue (422)
    ├── TooManyRequests (429)
    ├── Overloaded (503, Retry-After)
    │   └── DatabaseBusy (503, Retry-After)
    └── ChannelUnavailable (503)

One handler on :class:`ServiceError` turns every subclass into ``application/problem+json``.
Each class has a stable ``type`` (``urn:forewarn:problem:<code>``) that clients can rely on;
the ``title`` and ``detail`` are translated for clients that ask for Chinese
(:mod:`service.api.i18n`). :class:`UnknownFilterValue` names the parameter, the value and
where the known values are listed.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "PROBLEM_JSON",
    "ServiceError",
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "Conflict",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "UnprocessableContent",
    "InsufficientHistory",
    "UnknownFilterValue",
    "PROBLEM_TYPE_PREFIX",
    "TooManyRequests",
    "Overloaded",
    "DatabaseBusy",
    "ChannelUnavailable",
]

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:forewarn:problem:"


class ServiceError(Exception):
    """Base of all errors that become problem details."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    type: ClassVar[str] = "urn:forewarn:problem:internal-error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = {}

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


class BadRequest(ServiceError):
    status = 400
    title = "Bad Request"
    type = "urn:forewarn:problem:bad-request"


class Unauthorized(ServiceError):
    status = 401
    title = "Unauthorized"
    type = "urn:forewarn:problem:unauthorized"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers["WWW-Authenticate"] = 'ApiKey header="X-API-Key"'


class Forbidden(ServiceError):
    status = 403
    title = "Forbidden"
    type = "urn:forewarn:problem:forbidden"


class NotFound(ServiceError):
    status = 404
    title = "Not Found"
    type = "urn:forewarn:problem:not-found"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"
    type = "urn:forewarn:problem:conflict"


class PayloadTooLarge(ServiceError):
    status = 413
    title = "Content Too Large"
    type = "urn:forewarn:problem:payload-too-large"


class UnsupportedMediaType(ServiceError):
    status = 415
    title = "Unsupported Media Type"
    type = "urn:forewarn:problem:unsupported-media-type"


class UnprocessableContent(ServiceError):
    status = 422
    title = "Unprocessable Content"
    type = "urn:forewarn:problem:unprocessable-content"


class InsufficientHistory(UnprocessableContent):
    title = "Insufficient History"
    type = "urn:forewarn:problem:insufficient-history"


class UnknownFilterValue(UnprocessableContent):
    """A filter names a category or region the deployment does not know."""

    title = "Unknown Filter Value"
    type = "urn:forewarn:problem:unknown-filter-value"

    def __init__(self, parameter: str, value: str, known_at: str) -> None:
        super().__init__(f"unknown {parameter} '{value}'; {known_at} lists the known values",
                         parameter=parameter, value=value, known_at=known_at)


class TooManyRequests(ServiceError):
    status = 429
    title = "Too Many Requests"
    type = "urn:forewarn:problem:too-many-requests"

    def __init__(self, detail: str, retry_after: int, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers["Retry-After"] = str(retry_after)


class Overloaded(ServiceError):
    """The server is at capacity (requests in progress, database connections, a full
    queue): retry after ``Retry-After`` seconds (503)."""

    status = 503
    title = "Service Unavailable"
    type = "urn:forewarn:problem:overloaded"

    def __init__(self, detail: str, retry_after: int = 2, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers["Retry-After"] = str(retry_after)


class DatabaseBusy(Overloaded):
    """A lock the request needed was not granted in time (SQLite's write lock, a PostgreSQL
    row or table lock, a statement timeout): retry (503)."""

    type = "urn:forewarn:problem:database-busy"


class ChannelUnavailable(ServiceError):
    status = 503
    title = "Service Unavailable"
    type = "urn:forewarn:problem:service-unavailable"
