"""The JSON readers: a top-level array parsed incrementally with ijson, JSON Lines, and records
already in memory (a JSON request body)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import pandas as pd

from service.errors import UnprocessableContent
from service.ingest.limits import Guard, ImportLimits, TooLarge
from service.ingest.readers._common import MALFORMED, Chunk, Numberer, TableReader, cell_text
from service.ingest.readers._encodings import decode_failure


def _records_chunk(records: list[Any], numberer: Numberer) -> Chunk:
    rows: list[dict[str, str | None]] = []
    for rec in records:
        if isinstance(rec, dict):
            rows.append({str(k): cell_text(v) for k, v in rec.items()})
        else:
            rows.append({MALFORMED: str(rec) if isinstance(rec, _BadLine)
                         else f"a record must be an object, got {type(rec).__name__}"})
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    frame = frame.astype("str")
    return Chunk(frame, numberer.take(len(frame)))


class _BadLine(str):
    """Marker for an undecodable JSON Lines line (its reason)."""


def _chunks(records: Iterable[Any], *, encoding: str, chunk_rows: int, guard: Guard,
            reopen: Callable[[], IO[bytes]]) -> Iterator[Chunk]:
    """``records`` (read lazily from a text stream) in chunks of ``chunk_rows``, counted by
    ``guard``; a byte the stream cannot decode is the file's decode failure."""
    numberer = Numberer()
    buf: list[Any] = []
    try:
        for record in records:
            buf.append(record)
            if len(buf) >= chunk_rows:
                guard.tick()
                guard.add_rows(len(buf))
                yield _records_chunk(buf, numberer)
                buf = []
    except UnicodeDecodeError as exc:
        raise decode_failure(exc, reopen, encoding) from exc
    if buf:
        guard.add_rows(len(buf))
        yield _records_chunk(buf, numberer)


def _json_lines(text: IO[str]) -> Iterator[Any]:
    """The records of a JSON Lines stream (blank lines skipped; a line that is not JSON as a
    :class:`_BadLine` with its reason)."""
    for lineno, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError as exc:
            yield _BadLine(f"file line {lineno}: not valid JSON ({exc.args[0]})")
        except RecursionError:
            yield _BadLine(f"file line {lineno}: nested too deeply to be a record")


def jsonl_reader(text: IO[str], encoding: str, chunk_rows: int, closers: list[IO[Any]],
                 guard: Guard, reopen: Callable[[], IO[bytes]]) -> TableReader:
    chunks = _chunks(_json_lines(text), encoding=encoding, chunk_rows=chunk_rows, guard=guard,
                     reopen=reopen)
    return TableReader("jsonl", encoding, [], chunks, closers)


class _Utf8Feed:
    """A text stream as UTF-8 bytes for :mod:`ijson`, counting the bytes handed out since the
    last record so that one record longer than the limit is refused while it is read."""

    def __init__(self, head: str, text: IO[str], block: int, max_bytes: int | None) -> None:
        self.pending = head.encode("utf-8")
        self.text, self.block, self.max_bytes = text, block, max_bytes
        self.since_record = 0
        self.records = 0

    def read(self, n: int = -1) -> bytes:
        while len(self.pending) < max(n, 1):
            more = self.text.read(self.block)
            if not more:
                break
            self.pending += more.encode("utf-8")
        out = self.pending if n < 0 else self.pending[:n]
        self.pending = self.pending[len(out):]
        self.since_record += len(out)
        if self.max_bytes is not None and self.since_record > self.max_bytes + 2 * self.block:
            raise TooLarge(f"a JSON record is longer than {self.max_bytes:,} bytes "
                           "(imports.max_line_bytes); nothing was imported",
                           limit="max_line_bytes", value=self.max_bytes)
        return out


def iter_json_array(text: IO[str], block: int = 1 << 16,
                    max_chars: int | None = None) -> Iterator[Any]:
    """Yield the elements of a top-level JSON array one by one with :mod:`ijson` (an
    incremental parser: memory stays bounded by the largest element, not the file; an element
    longer than ``max_chars`` bytes is refused while it is read, at the latest once the bytes
    read past the last element reach 1.5 × ``max_chars``: the parser reads ahead by blocks of
    at most a quarter of the limit)."""
    import ijson

    if max_chars is not None:
        block = min(block, max(1024, max_chars // 4))

    head = text.read(block).lstrip("\ufeff \t\r\n")
    if not head.startswith("["):
        raise UnprocessableContent("the JSON document is not an array of records")
    feed = _Utf8Feed(head, text, block, max_chars)
    try:
        for value in _array_items(ijson.basic_parse(feed, use_float=True, buf_size=block),
                                  feed):
            yield value
            feed.since_record = 0
            feed.records += 1
    except ijson.JSONError as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "premature EOF" in why:
            raise UnprocessableContent("the JSON array is not closed or its last record is "
                                       "cut off (truncated file?)") from exc
        raise UnprocessableContent(f"the JSON array is not valid JSON ({why}, after data row "
                                   f"{feed.records})") from exc


#: Nesting levels of a JSON array file: the array, a record, and values within a record
#: (a record's nested values become text). Deeper is not a table of records.
MAX_JSON_DEPTH = 32


def _array_items(events: Iterable[tuple[str, Any]], feed: _Utf8Feed) -> Iterator[Any]:
    """The elements of the top-level array, built from :func:`ijson.basic_parse` events.

    Not ``ijson.items``: its event prefixes grow with the depth, so its memory grows with the
    square of it (100,000 nested ``[`` in a 200 KB upload took 24 GB and the server was
    killed). Here a nesting deeper than :data:`MAX_JSON_DEPTH` is refused as it is read. The
    containers are built inline rather than with ijson's ``ObjectBuilder``:
    ``bench/json_array.py`` (200,000 records of 9 fields) measured 0.91 s against 1.35 s
    (``ijson.items``, in C: 0.52 s)."""
    depth = 0
    stack: list[Any] = []  # the containers being built, outermost first
    keys: list[Any] = []  # the pending key of each (None for an array)
    for event, value in events:
        if event == "map_key":
            keys[-1] = value
            continue
        if event == "start_map" or event == "start_array":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise UnprocessableContent(
                    f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels (after data row "
                    f"{feed.records}); a file of records is an array of flat objects")
            if depth > 1:  # not the top-level array
                stack.append({} if event == "start_map" else [])
                keys.append(None)
            continue
        if event == "end_map" or event == "end_array":
            depth -= 1
            if depth == 0:
                continue  # the array ended: the parser refuses anything after it
            keys.pop()
            value = stack.pop()
        if not stack:  # an element of the top-level array, complete
            yield value
        elif type(stack[-1]) is dict:
            stack[-1][keys[-1]] = value
        else:
            stack[-1].append(value)


def json_array_reader(text: IO[str], encoding: str, chunk_rows: int,
                      closers: list[IO[Any]], limits: ImportLimits, guard: Guard,
                      reopen: Callable[[], IO[bytes]]) -> TableReader:
    chunks = _chunks(iter_json_array(text, max_chars=limits.max_line_bytes), encoding=encoding,
                     chunk_rows=chunk_rows, guard=guard, reopen=reopen)
    return TableReader("json", encoding, [], chunks, closers)


def records_reader(records: list[Any], chunk_rows: int = 50_000,
                   guard: Guard | None = None) -> TableReader:
    """A reader over records already in memory (a JSON request body)."""
    numberer = Numberer()

    def gen() -> Iterator[Chunk]:
        for i in range(0, len(records), chunk_rows):
            part = records[i: i + chunk_rows]
            if guard is not None:
                guard.tick()
                guard.add_rows(len(part))
            yield _records_chunk(part, numberer)

    return TableReader("records", None, [], gen(), [])
