"""What every reader shares: the chunk and reader types, cell text, row numbering and the
seekable-stream helpers."""

from __future__ import annotations

import datetime as dt
import io
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import pandas as pd

from service.errors import UnprocessableContent
from service.ingest.limits import BoundedReader, ImportLimits

MALFORMED = "__malformed__"
FORMATS = ("csv", "xlsx", "json", "jsonl")
ACCEPTED = ("accepted formats: CSV or TSV (.csv, .tsv, .txt), XLSX (.xlsx), a JSON array of "
            "records (.json) and JSON Lines (.jsonl), each also gzip-compressed (.gz)")
SAMPLE_BYTES = 256 * 1024


@dataclass
class Chunk:
    """Rows ``first_row .. first_row + len(frame) - 1`` (1-based) of the file."""

    frame: pd.DataFrame
    row_numbers: np.ndarray


@dataclass
class TableReader:
    """A detected, opened file. Iterate :meth:`chunks`; :meth:`close` when done."""

    format: str
    encoding: str | None
    headers: list[str]
    _iter: Iterator[Chunk]
    _closers: list[IO[Any]] = field(default_factory=list)
    position: Callable[[], int] = lambda: 0  # bytes of the upload consumed so far
    size: int | None = None  # bytes of the upload, when known

    def chunks(self) -> Iterator[Chunk]:
        return self._iter

    def close(self) -> None:
        for f in reversed(self._closers):
            f.close()


def cell_text(value: Any) -> str | None:
    """A cell of XLSX/JSON as the string a CSV would hold (``None`` when empty)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class Numberer:
    """Assigns 1-based row numbers, skipping those already used by malformed lines."""

    def __init__(self) -> None:
        self.next = 1
        self.skip: set[int] = set()

    def take(self, n: int) -> np.ndarray:
        if not self.skip:
            out = np.arange(self.next, self.next + n, dtype=np.int64)
            self.next += n
            return out
        nums: list[int] = []
        while len(nums) < n:
            if self.next in self.skip:
                self.skip.discard(self.next)
            else:
                nums.append(self.next)
            self.next += 1
        return np.asarray(nums, dtype=np.int64)


def open_seekable(source: Path | BinaryIO, limits: ImportLimits) -> tuple[IO[bytes], bool]:
    if isinstance(source, Path | str):
        try:
            return open(source, "rb"), True
        except OSError as exc:
            raise UnprocessableContent(f"cannot open {source}: {exc.strerror}") from exc
    if source.seekable():
        return source, False
    spool = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)  # noqa: SIM115
    bounded = BoundedReader(source, limits)
    while block := bounded.read(1 << 20):
        spool.write(block)
    spool.seek(0)
    return spool, True


def size_of(f: IO[bytes]) -> int | None:
    try:
        pos = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(pos)
        return int(end)
    except (OSError, ValueError):
        return None


def peek(f: IO[bytes], n: int) -> bytes:
    pos = f.tell()
    data = f.read(n)
    f.seek(pos)
    return data


class Replay(io.RawIOBase):
    """Bytes already read (``head``), then the rest of ``inner``."""

    def __init__(self, head: bytes, inner: IO[bytes]) -> None:
        super().__init__()
        self.head = head
        self.inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        if self.head:
            n = min(len(view), len(self.head))
            view[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.inner.read(len(view))
        view[: len(data)] = data
        return len(data)


class Restoring(io.RawIOBase):
    """A stream that puts the shared file back where it was when closed."""

    def __init__(self, inner: IO[bytes], f: IO[bytes], pos: int) -> None:
        super().__init__()
        self.inner, self.f, self.pos = inner, f, pos

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self.inner.read(n)

    def close(self) -> None:
        self.f.seek(self.pos)
        super().close()
