"""Limits of one import, and the errors that name them.

Every limit is a setting (``FOREWARN_IMPORTS__...``, see :class:`service.config.ImportSettings`)
and is checked while the file streams, so a file over a limit is refused as soon as the limit
is crossed -- before anything is published -- with a problem that names the setting:

========================== ====== ==========================================================
limit                      status checked
========================== ====== ==========================================================
max_bytes                  413    bytes read after decompression (a plain file: its size)
max_compression_ratio      413    decompressed / compressed bytes, once past 64 MiB (gzip)
                                  or over the whole archive (XLSX)
max_line_bytes             413    one physical line of CSV / JSON Lines, one JSON record
max_rows                   413    rows read (XLSX: sheet rows scanned, empty ones included)
max_columns                413    columns of the header (XLSX: cells of any row)
max_text_chars             --     a longer complaint text is cut, with a marker; other fields
                                  have their column's length and reject the row
max_seconds                422    wall time of the import, checked between chunks and every
                                  1,000 rows inside a reader
========================== ====== ==========================================================

Fixed, not settings: a JSON array file nested deeper than 32 levels is refused (422) as it is
read, and a JSON Lines line nested past the parser's recursion limit is a rejected row.
"""

from __future__ import annotations

import gzip
import io
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from service.errors import PayloadTooLarge, ServiceError, UnprocessableContent

__all__ = [
    "ImportLimits",
    "Guard",
    "TooLarge",
    "TooSlow",
    "ImportBusy",
    "Interrupted",
    "BoundedReader",
    "RATIO_FLOOR_BYTES",
]

RATIO_FLOOR_BYTES = 64 * 1024 * 1024
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, OSError)


class TooLarge(PayloadTooLarge):
    """A file over a size limit (413); ``limit`` names the setting."""

    def __init__(self, detail: str, *, limit: str, value: float) -> None:
        super().__init__(detail, limit=f"imports.{limit}", limit_value=value)


class TooSlow(UnprocessableContent):
    """An import that ran out of its wall time (422)."""

    def __init__(self, detail: str, *, value: float) -> None:
        super().__init__(detail, limit="imports.max_seconds", limit_value=value)


class ImportBusy(ServiceError):
    """The database (SQLite's write lock) or the import queue is busy: retry later (503)."""

    status = 503
    title = "Service Unavailable"

    def __init__(self, detail: str, retry_after: int = 30, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers["Retry-After"] = str(retry_after)


class Interrupted(ImportBusy):
    """The import was stopped (server shutting down); nothing of it was published."""


@dataclass(frozen=True)
class ImportLimits:
    """Limits of one import (defaults as in :class:`service.config.ImportSettings`)."""

    max_bytes: int = 2 * 1024**3
    max_compression_ratio: float = 200.0
    max_line_bytes: int = 64 * 1024**2
    max_rows: int = 10_000_000
    max_columns: int = 1_000
    max_text_chars: int = 20_000
    max_seconds: float = 1800.0

    @classmethod
    def from_settings(cls, settings: Any) -> ImportLimits:
        return cls(**{f: getattr(settings, f) for f in cls.__dataclass_fields__})


class Guard:
    """Runtime checks of one import: wall time, rows, cancellation.

    ``clock`` is injectable (tests); ``cancel`` is set when the server shuts down.
    """

    def __init__(self, limits: ImportLimits, *, clock: Callable[[], float] = time.monotonic,
                 cancel: threading.Event | None = None) -> None:
        self.limits = limits
        self.clock = clock
        self.cancel = cancel
        self.started = clock()
        self.rows = 0

    def tick(self) -> None:
        """Raise when the import is past its wall time or was cancelled."""
        if self.cancel is not None and self.cancel.is_set():
            raise Interrupted("the import was interrupted (the server is shutting down); "
                              "nothing of it was published; send it again")
        if self.clock() - self.started > self.limits.max_seconds:
            raise TooSlow(f"the import did not finish within {self.limits.max_seconds:g} s "
                          "(imports.max_seconds); nothing of it was published; split the file "
                          "or raise the limit", value=self.limits.max_seconds)

    def add_rows(self, n: int) -> None:
        self.rows += n
        if self.rows > self.limits.max_rows:
            raise TooLarge(f"the file has more than {self.limits.max_rows:,} rows "
                           "(imports.max_rows); nothing of it was published; split the file",
                           limit="max_rows", value=self.limits.max_rows)


class BoundedReader(io.RawIOBase):
    """A read-only stream over ``inner`` that refuses to give more than ``max_bytes`` (and,
    when ``compressed`` reports the compressed bytes consumed, more than
    ``max_compression_ratio`` times them once past 64 MiB), and turns a broken gzip stream
    into a clear 422. ``line_limit`` also bounds the bytes between two newlines."""

    def __init__(self, inner: IO[bytes], limits: ImportLimits, *,
                 compressed: Callable[[], int] | None = None, line_limit: bool = False,
                 what: str = "the file") -> None:
        super().__init__()
        self.inner = inner
        self.limits = limits
        self.compressed = compressed
        self.line_limit = line_limit
        self.what = what
        self.count = 0
        self._since_newline = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        try:
            data = self.inner.read(len(view))
        except _GZIP_ERRORS as exc:
            raise UnprocessableContent(
                f"the gzip stream is truncated or corrupt after {self.count:,} decompressed "
                f"bytes ({type(exc).__name__}: {exc}); nothing was imported; compress the "
                "file again") from exc
        n = len(data)
        view[:n] = data
        self._account(data)
        return n

    def _account(self, data: bytes) -> None:
        self.count += len(data)
        lim = self.limits
        if self.count > lim.max_bytes:
            raise TooLarge(f"{self.what} holds more than {lim.max_bytes:,} bytes "
                           "(imports.max_bytes); nothing was imported",
                           limit="max_bytes", value=lim.max_bytes)
        if self.compressed is not None and self.count > RATIO_FLOOR_BYTES:
            packed = max(self.compressed(), 1)
            if self.count / packed > lim.max_compression_ratio:
                raise TooLarge(
                    f"{self.what} decompresses to more than {lim.max_compression_ratio:g} "
                    f"times its compressed size (imports.max_compression_ratio): "
                    f"{self.count:,} bytes from {packed:,}; refused as a compression bomb",
                    limit="max_compression_ratio", value=lim.max_compression_ratio)
        if self.line_limit:
            if len(data) > lim.max_line_bytes and \
                    max(map(len, data.split(b"\n"))) > lim.max_line_bytes:
                self._since_newline = lim.max_line_bytes + 1
            first = data.find(b"\n")
            if self._since_newline > lim.max_line_bytes:
                pass
            elif first < 0:
                self._since_newline += len(data)
            else:
                if self._since_newline + first > lim.max_line_bytes:
                    self._since_newline += first
                else:
                    self._since_newline = len(data) - data.rfind(b"\n") - 1
            if self._since_newline > lim.max_line_bytes:
                raise TooLarge(f"{self.what} has a line longer than {lim.max_line_bytes:,} "
                               "bytes (imports.max_line_bytes); nothing was imported",
                               limit="max_line_bytes", value=lim.max_line_bytes)
