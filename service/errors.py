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
    ├── ChannelUnavailable (503)
    └── AssetMissing (503)

Each class states its status, title and code as class keywords
(``class NotFound(ServiceError, status=404, title="Not Found", code="not-found")``); a subclass
inherits what it does not state. One handler on :class:`ServiceError` turns every subclass into
``application/problem+json``.
Each class has a stable ``type`` (``urn:forewarn:problem:<code>``) that clients can rely on;
the ``title`` and ``detail`` are translated for clients that ask for Chinese
(:mod:`service.api.i18n`). :class:`UnknownFilterValue` names the parameter, the value and
where the known values are listed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
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
    "AssetMissing",
    "installed_package_dir",
]

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:forewarn:problem:"


class ServiceError(Exception):
    """Base of all errors that become problem details."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    type: ClassVar[str] = PROBLEM_TYPE_PREFIX + "internal-error"

    def __init_subclass__(cls, *, status: int | None = None, title: str | None = None,
                          code: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if title is not None:
            cls.title = title
        if code is not None:
            cls.type = PROBLEM_TYPE_PREFIX + code

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


class BadRequest(ServiceError, status=400, title="Bad Request", code="bad-request"):
    """A malformed request (e.g. a body that is not valid JSON)."""


class Unauthorized(ServiceError, status=401, title="Unauthorized", code="unauthorized"):
    """No API key or an unknown one; the answer names the ``X-API-Key`` header."""

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers["WWW-Authenticate"] = 'ApiKey header="X-API-Key"'


class Forbidden(ServiceError, status=403, title="Forbidden", code="forbidden"):
    """The API key lacks the scope the operation needs."""


class NotFound(ServiceError, status=404, title="Not Found", code="not-found"):
    """No such resource."""


class Conflict(ServiceError, status=409, title="Conflict", code="conflict"):
    """The resource's state does not allow the operation (e.g. a sent campaign cancelled)."""


class PayloadTooLarge(ServiceError, status=413, title="Content Too Large",
                      code="payload-too-large"):
    """A request body over the configured maximum."""


class UnsupportedMediaType(ServiceError, status=415, title="Unsupported Media Type",
                           code="unsupported-media-type"):
    """A request body of a media type the operation does not take."""


class UnprocessableContent(ServiceError, status=422, title="Unprocessable Content",
                           code="unprocessable-content"):
    """Parameters or a body the service cannot act on."""


class InsufficientHistory(UnprocessableContent, title="Insufficient History",
                          code="insufficient-history"):
    """Too little history to forecast from (422)."""


class UnknownFilterValue(UnprocessableContent, title="Unknown Filter Value",
                         code="unknown-filter-value"):
    """A filter names a category or region the deployment does not know."""

    def __init__(self, parameter: str, value: str, known_at: str) -> None:
        super().__init__(f"unknown {parameter} '{value}'; {known_at} lists the known values",
                         parameter=parameter, value=value, known_at=known_at)


class TooManyRequests(ServiceError, status=429, title="Too Many Requests",
                      code="too-many-requests"):
    """Rate limit exceeded: retry after ``Retry-After`` seconds."""

    def __init__(self, detail: str, retry_after: int, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers["Retry-After"] = str(retry_after)


class Overloaded(ServiceError, status=503, title="Service Unavailable", code="overloaded"):
    """The server is at capacity (requests in progress, database connections, a full
    queue): retry after ``Retry-After`` seconds (503)."""

    def __init__(self, detail: str, retry_after: int = 2, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers["Retry-After"] = str(retry_after)


class DatabaseBusy(Overloaded, code="database-busy"):
    """A lock the request needed was not granted in time (SQLite's write lock, a PostgreSQL
    row or table lock, a statement timeout): retry (503)."""


class ChannelUnavailable(ServiceError, status=503, title="Service Unavailable",
                         code="service-unavailable"):
    """A delivery channel is unavailable (503)."""


class AssetMissing(ServiceError, status=503, title="Service Unavailable",
                   code="service-unavailable"):
    """A file the server serves from an installed package (the API console's Swagger UI, the
    dashboard's plotly.js) is missing: the installation is incomplete (503)."""


def installed_package_dir(module: str, *, dist: str, needed_by: str) -> Path:
    """Folder of the installed package ``module`` (distribution ``dist``).

    Raises
    ------
    AssetMissing
        If it is not installed: "the <dist> package is not installed; <needed_by>".
    """
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise AssetMissing(f"the {dist} package is not installed; {needed_by} "
                           f"(pip install {dist})")
    return Path(spec.origin).resolve().parent
