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
    │   └── InsufficientHistory (422)
    ├── TooManyRequests (429)
    └── ChannelUnavailable (503)

One handler on :class:`ServiceError` turns every subclass into ``application/problem+json``.
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
    "TooManyRequests",
    "ChannelUnavailable",
]

PROBLEM_JSON = "application/problem+json"


class ServiceError(Exception):
    """Base of all errors that become problem details."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    type: ClassVar[str] = "about:blank"

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


class Unauthorized(ServiceError):
    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers["WWW-Authenticate"] = 'ApiKey header="X-API-Key"'


class Forbidden(ServiceError):
    status = 403
    title = "Forbidden"


class NotFound(ServiceError):
    status = 404
    title = "Not Found"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"


class PayloadTooLarge(ServiceError):
    status = 413
    title = "Content Too Large"


class UnsupportedMediaType(ServiceError):
    status = 415
    title = "Unsupported Media Type"


class UnprocessableContent(ServiceError):
    status = 422
    title = "Unprocessable Content"


class InsufficientHistory(UnprocessableContent):
    title = "Insufficient History"


class TooManyRequests(ServiceError):
    status = 429
    title = "Too Many Requests"

    def __init__(self, detail: str, retry_after: int, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers["Retry-After"] = str(retry_after)


class ChannelUnavailable(ServiceError):
    status = 503
    title = "Service Unavailable"
