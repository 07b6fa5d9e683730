"""Readers: detect the format and encoding of an upload and stream it in chunks of strings.

Formats: CSV (UTF-8, UTF-8 with BOM, UTF-16 with BOM, GB18030/GBK — detected; delimiter
``,``, tab, ``;`` or ``|``), gzip-compressed CSV / JSON Lines (``.gz``), XLSX (first sheet,
openpyxl read-only, streamed), a JSON array (parsed incrementally, one object at a time) and
JSON Lines. Every reader yields :class:`pandas.DataFrame` chunks of at most ``chunk_rows``
rows whose values are ``str`` or missing, under the file's own headers.

Row numbers are 1-based over data rows: the header is not counted, nor are blank lines (CSV)
or fully empty rows (XLSX). A CSV line with more fields than the header and a JSON record that
is not an object become rows whose only value is :data:`MALFORMED` (the reason), so they are
rejected with their row number instead of sinking the file.
"""

from __future__ import annotations

import codecs
import datetime as dt
import gzip
import io
import json
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import pandas as pd
from charset_normalizer import from_bytes

from service.errors import UnprocessableContent, UnsupportedMediaType

__all__ = ["MALFORMED", "FORMATS", "Chunk", "TableReader", "open_reader", "cell_text"]

MALFORMED = "__malformed__"
FORMATS = ("csv", "xlsx", "json", "jsonl")
_SAMPLE = 256 * 1024
_UNSUPPORTED_EXT = {
    ".xls": "legacy Excel .xls is not supported; save the sheet as .xlsx or CSV",
    ".pdf": "PDF is not a data file; export the records as CSV, XLSX, JSON or JSON Lines",
    ".doc": "Word documents are not supported; export the records as CSV or XLSX",
    ".docx": "Word documents are not supported; export the records as CSV or XLSX",
    ".zip": "zip archives are not supported; upload one CSV, XLSX, JSON or JSON Lines file",
    ".parquet": "Parquet is not supported; use CSV, XLSX, JSON or JSON Lines",
}
_EXT_FORMAT = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx",
               ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_SKIP_LINE = re.compile(r"Skipping line (\d+): (.*)")


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


class _Numberer:
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


def _seekable(source: Path | BinaryIO) -> tuple[IO[bytes], bool]:
    if isinstance(source, Path | str):
        try:
            return open(source, "rb"), True
        except OSError as exc:
            raise UnprocessableContent(f"cannot open {source}: {exc.strerror}") from exc
    if source.seekable():
        return source, False
    spool = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)  # noqa: SIM115
    shutil.copyfileobj(source, spool)
    spool.seek(0)
    return spool, True


def _peek(f: IO[bytes], n: int) -> bytes:
    pos = f.tell()
    data = f.read(n)
    f.seek(pos)
    return data


def _detect_encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for enc in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(enc)().decode(sample, final=False)
        except UnicodeDecodeError:
            continue
        return enc
    best = from_bytes(sample).best()
    if best is None:
        raise UnsupportedMediaType(
            "the file is not text in a known encoding (UTF-8, GB18030/GBK, UTF-16) nor "
            "XLSX, JSON or gzip"
        )
    return str(best.encoding)


def _looks_binary(sample: bytes) -> bool:
    return b"\x00" in sample[:8192] and not sample.startswith(
        (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    )


def _sniff_delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def open_reader(
    source: Path | BinaryIO,
    *,
    filename: str | None = None,
    chunk_rows: int = 50_000,
    skip_column: Callable[[str], bool] | None = None,
) -> TableReader:
    """Detect the format of ``source`` and open it for chunked reading.

    ``skip_column(header)`` names columns a CSV reader need not parse at all (personal data);
    other formats leave them to the caller.

    Raises :class:`UnsupportedMediaType` for formats that are not supported and
    :class:`UnprocessableContent` for a supported format that cannot be read (no header,
    broken XLSX, invalid JSON at the top level).
    """
    name = (filename or (str(source) if isinstance(source, Path | str) else "")).lower()
    f, owned = _seekable(source)
    closers: list[IO[Any]] = [f] if owned else []
    try:
        return _open(f, name, chunk_rows, closers, skip_column)
    except BaseException:
        for c in reversed(closers):
            c.close()
        raise


def _open(f: IO[bytes], name: str, chunk_rows: int, closers: list[IO[Any]],
          skip_column: Callable[[str], bool] | None) -> TableReader:
    suffixes = [s for s in Path(name).suffixes if s]
    ext = suffixes[-1] if suffixes else ""
    if ext in _UNSUPPORTED_EXT:
        raise UnsupportedMediaType(_UNSUPPORTED_EXT[ext])
    head = _peek(f, 8)
    stream: IO[bytes] = f
    if head.startswith(b"\x1f\x8b"):
        stream = gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[assignment]
        closers.append(stream)
        ext = suffixes[-2] if len(suffixes) > 1 and ext == ".gz" else ""
        try:
            sample = stream.peek(_SAMPLE)[:_SAMPLE]  # type: ignore[attr-defined]
        except (OSError, EOFError) as exc:
            raise UnprocessableContent(f"the gzip stream is broken: {exc}") from exc
    elif ext == ".gz":
        raise UnprocessableContent("the file is named .gz but is not gzip-compressed")
    else:
        sample = _peek(f, _SAMPLE)
    if sample.startswith(b"\xd0\xcf\x11\xe0"):
        raise UnsupportedMediaType(_UNSUPPORTED_EXT[".xls"])
    if sample.startswith(b"PK\x03\x04"):
        if ext not in ("", ".xlsx", ".xlsm"):
            raise UnsupportedMediaType(f"a zip archive named {ext}; upload CSV, XLSX or JSON")
        return _xlsx(stream, chunk_rows, closers)
    if ext in (".xlsx", ".xlsm"):
        raise UnprocessableContent("the file is named .xlsx but is not an XLSX workbook")
    if not sample.strip():
        raise UnprocessableContent("the file is empty")
    if _looks_binary(sample):
        raise UnsupportedMediaType(
            "the file is binary; supported formats are CSV, XLSX, JSON, JSON Lines (and .gz)"
        )
    encoding = _detect_encoding(sample)
    text_sample = codecs.getincrementaldecoder(encoding)(errors="replace").decode(sample)
    lead = text_sample.lstrip("\ufeff \t\r\n")[:1]
    fmt = _EXT_FORMAT.get(ext) or ("json" if lead == "[" else "jsonl" if lead == "{" else "csv")
    if fmt == "json" and lead == "{":
        fmt = "jsonl"
    if fmt in ("json", "jsonl"):
        text = io.TextIOWrapper(stream, encoding=encoding, newline="")
        closers.append(text)
        if fmt == "json":
            if lead != "[":
                raise UnprocessableContent("a .json file must hold an array of records")
            return _json_array(text, encoding, chunk_rows, closers)
        return _jsonl(text, encoding, chunk_rows, closers)
    return _csv(stream, encoding, text_sample.lstrip("\ufeff"), chunk_rows, closers,
                skip_column)


# ---------------------------------------------------------------- CSV


def _csv(stream: IO[bytes], encoding: str, text_sample: str, chunk_rows: int,
         closers: list[IO[Any]], skip_column: Callable[[str], bool] | None) -> TableReader:
    sep = _sniff_delimiter(text_sample)
    try:
        head = pd.read_csv(io.StringIO(text_sample), sep=sep, dtype=str, nrows=0)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise UnprocessableContent(f"cannot read the CSV header: {exc}") from exc
    headers = [str(h) for h in head.columns]
    if not headers:
        raise UnprocessableContent("the CSV has no header row")
    numberer = _Numberer()
    wanted = [h for h in headers if not (skip_column and skip_column(h))]
    reader = pd.read_csv(
        stream, sep=sep, dtype=str, encoding=encoding, keep_default_na=False,
        na_values=[""], chunksize=chunk_rows, on_bad_lines="warn", engine="c",
        usecols=wanted if len(wanted) < len(headers) else None,
    )

    def gen() -> Iterator[Chunk]:
        with reader:
            while True:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", pd.errors.ParserWarning)
                    try:
                        frame = next(reader)
                    except StopIteration:
                        frame = None
                    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
                        raise UnprocessableContent(f"the CSV cannot be parsed: {exc}") from exc
                bad = _bad_lines(caught)
                if bad:
                    nums = np.asarray([line - 1 for line, _ in bad], dtype=np.int64)
                    numberer.skip.update(int(n) for n in nums)
                    yield Chunk(pd.DataFrame({MALFORMED: [why for _, why in bad]}, dtype=str),
                                nums)
                if frame is None:
                    return
                if len(frame):
                    yield Chunk(frame, numberer.take(len(frame)))

    return TableReader("csv", encoding, headers, gen(), closers)


def _bad_lines(caught: list[warnings.WarningMessage]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for w in caught:
        if not issubclass(w.category, pd.errors.ParserWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        out.extend((int(m.group(1)), f"line {m.group(1)}: {m.group(2).strip()}")
                   for m in _SKIP_LINE.finditer(str(w.message)))
    return out


# ---------------------------------------------------------------- XLSX


def _xlsx(stream: IO[bytes], chunk_rows: int, closers: list[IO[Any]]) -> TableReader:
    import openpyxl

    if isinstance(stream, gzip.GzipFile) or not stream.seekable():
        spool = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)  # noqa: SIM115
        shutil.copyfileobj(stream, spool)
        spool.seek(0)
        closers.append(spool)
        stream = spool
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # openpyxl style/extension notices
            wb = openpyxl.load_workbook(stream, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise UnprocessableContent(f"the XLSX workbook cannot be opened: {exc}") from exc
    ws = wb.worksheets[0] if wb.worksheets else None
    if ws is None:
        wb.close()
        raise UnprocessableContent("the workbook has no sheet")
    rows = ws.iter_rows(values_only=True)
    headers: list[str] = []
    for row in rows:
        cells = [cell_text(c) for c in row]
        if any(c is not None and c.strip() for c in cells):
            while cells and (cells[-1] is None or not cells[-1].strip()):
                cells.pop()
            headers = [c.strip() if c else f"column_{i + 1}" for i, c in enumerate(cells)]
            break
    if not headers:
        wb.close()
        raise UnprocessableContent("the first sheet of the workbook is empty")
    width = len(headers)
    numberer = _Numberer()

    def gen() -> Iterator[Chunk]:
        try:
            buf: list[list[str | None]] = []
            for row in rows:
                cells = [cell_text(c) for c in row[:width]]
                if not any(c is not None and c.strip() for c in cells):
                    continue
                cells.extend([None] * (width - len(cells)))
                buf.append(cells)
                if len(buf) >= chunk_rows:
                    yield _frame_chunk(buf, headers, numberer)
                    buf = []
            if buf:
                yield _frame_chunk(buf, headers, numberer)
        finally:
            wb.close()

    return TableReader("xlsx", None, headers, gen(), closers)


def _frame_chunk(buf: list[list[str | None]], headers: list[str], numberer: _Numberer) -> Chunk:
    frame = pd.DataFrame(buf, columns=headers, dtype=str)
    return Chunk(frame, numberer.take(len(frame)))


# ---------------------------------------------------------------- JSON


def _records_chunk(records: list[Any], numberer: _Numberer) -> Chunk:
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


def _jsonl(text: IO[str], encoding: str, chunk_rows: int, closers: list[IO[Any]]) -> TableReader:
    numberer = _Numberer()

    def gen() -> Iterator[Chunk]:
        buf: list[Any] = []
        for lineno, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                buf.append(json.loads(line))
            except ValueError as exc:
                buf.append(_BadLine(f"line {lineno}: not valid JSON ({exc.args[0]})"))
            if len(buf) >= chunk_rows:
                yield _records_chunk(buf, numberer)
                buf = []
        if buf:
            yield _records_chunk(buf, numberer)

    return TableReader("jsonl", encoding, [], gen(), closers)


def iter_json_array(text: IO[str], block: int = 1 << 20) -> Iterator[Any]:
    """Yield the elements of a top-level JSON array one by one, reading ``block`` chars at a
    time (memory stays bounded by the largest element, not the file)."""
    decoder = json.JSONDecoder()
    buf = text.read(block).lstrip("\ufeff \t\r\n")
    if not buf.startswith("["):
        raise UnprocessableContent("the JSON document is not an array of records")
    pos = 1
    eof = False
    expect_value = True
    while True:
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf) or eof:
                break
            more = text.read(block)
            eof = not more
            buf, pos = buf[pos:] + more, 0
        if pos >= len(buf):
            raise UnprocessableContent("the JSON array is not closed (truncated file?)")
        ch = buf[pos]
        if ch == "]":
            return
        if ch == ",":
            if expect_value:
                raise UnprocessableContent("the JSON array has an empty element")
            pos += 1
            expect_value = True
            continue
        try:
            value, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as exc:
            if eof:
                raise UnprocessableContent(f"the JSON array is not valid JSON: {exc}") from exc
            more = text.read(block)
            eof = not more
            buf, pos = buf[pos:] + more, 0
            continue
        if end == len(buf) and not eof:  # a number may continue in the next block
            more = text.read(block)
            if more:
                buf, pos = buf[pos:] + more, 0
                continue
            eof = True
        yield value
        pos = end
        expect_value = False
        if len(buf) - pos < block // 4 and not eof:
            more = text.read(block)
            eof = not more
            buf, pos = buf[pos:] + more, 0


def _json_array(text: IO[str], encoding: str, chunk_rows: int,
                closers: list[IO[Any]]) -> TableReader:
    numberer = _Numberer()

    def gen() -> Iterator[Chunk]:
        buf: list[Any] = []
        for value in iter_json_array(text):
            buf.append(value)
            if len(buf) >= chunk_rows:
                yield _records_chunk(buf, numberer)
                buf = []
        if buf:
            yield _records_chunk(buf, numberer)

    return TableReader("json", encoding, [], gen(), closers)


def records_reader(records: list[Any], chunk_rows: int = 50_000) -> TableReader:
    """A reader over records already in memory (a JSON request body)."""
    numberer = _Numberer()

    def gen() -> Iterator[Chunk]:
        for i in range(0, len(records), chunk_rows):
            yield _records_chunk(records[i: i + chunk_rows], numberer)

    return TableReader("records", None, [], gen(), [])
