"""Readers: detect the format and encoding of an upload and stream it in chunks of strings.

Formats: CSV (delimiter ``,``, tab, ``;`` or ``|``), gzip-compressed CSV / JSON Lines / JSON
(``.gz``), XLSX (first sheet, streamed row by row), a JSON array (parsed incrementally, one
object at a time) and JSON Lines. Every reader yields :class:`pandas.DataFrame` chunks of at
most ``chunk_rows`` rows whose values are ``str`` or missing, under the file's own headers.
Anything else is refused with what the file looks like and what is accepted (:data:`ACCEPTED`).

Encodings (text formats): UTF-8 (with or without BOM) and UTF-16 with a BOM are recognised;
otherwise GB18030 (a superset of GBK) and Big5 are tried, and one is taken only when the
sample decodes cleanly in it and reads as common Chinese characters (a confident guess). A file
that is none of these is refused naming the line and byte offset of the first byte that is not
UTF-8, with the advice to name the encoding (``--encoding`` / ``encoding=``). A bad byte later
in the file fails the import naming its line, too.

Row numbers are 1-based over data rows: the header is not counted, nor are blank lines (CSV)
or fully empty rows (XLSX). A CSV line with more fields than the header and a JSON record that
is not an object become rows whose only value is :data:`MALFORMED` (the reason), so they are
rejected with their row number instead of sinking the file.

Limits (:mod:`service.ingest.limits`): every stream is read through a
:class:`~service.ingest.limits.BoundedReader` (decompressed bytes, compression ratio, line
length); the XLSX archive's declared sizes are checked before it is opened and its sheet is
parsed row by row (never materialised: no padding of missing rows or cells); the guard's wall
time is checked between chunks and every 1,000 rows.
"""

from __future__ import annotations

import codecs
import datetime as dt
import functools
import gzip
import io
import json
import re
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import numpy as np
import pandas as pd

from service.errors import BadRequest, UnprocessableContent, UnsupportedMediaType
from service.ingest.limits import RATIO_FLOOR_BYTES, BoundedReader, Guard, ImportLimits, TooLarge

__all__ = ["MALFORMED", "FORMATS", "ACCEPTED", "Chunk", "TableReader", "open_reader",
           "cell_text", "records_reader", "iter_json_array", "check_encoding_name"]

MALFORMED = "__malformed__"
FORMATS = ("csv", "xlsx", "json", "jsonl")
ACCEPTED = ("accepted formats: CSV or TSV (.csv, .tsv, .txt), XLSX (.xlsx), a JSON array of "
            "records (.json) and JSON Lines (.jsonl), each also gzip-compressed (.gz)")
_SAMPLE = 256 * 1024
_NOT_DATA_EXT = {
    ".xls": "legacy Excel .xls is not supported; save the sheet as .xlsx or CSV",
    ".pdf": "PDF is not a data file; export the records as CSV, XLSX, JSON or JSON Lines",
    ".doc": "Word documents are not supported; export the records as CSV or XLSX",
    ".docx": "Word documents are not supported; export the records as CSV or XLSX",
    ".zip": "zip archives are not supported; upload one CSV, XLSX, JSON or JSON Lines file",
    ".parquet": "Parquet is not supported; use CSV, XLSX, JSON or JSON Lines",
    ".toml": "a TOML file is configuration, not records",
    ".ini": "an INI file is configuration, not records",
    ".cfg": "a configuration file is not records",
    ".conf": "a configuration file is not records",
    ".yaml": "a YAML file is not an import format (mapping files go to --mapping)",
    ".yml": "a YAML file is not an import format (mapping files go to --mapping)",
    ".xml": "XML is not supported",
    ".html": "an HTML page is not a data file",
    ".htm": "an HTML page is not a data file",
    ".md": "a Markdown document is not a data file",
    ".sql": "an SQL script is not a data file",
    ".ods": "OpenDocument spreadsheets are not supported; save the sheet as .xlsx or CSV",
    ".numbers": "Numbers spreadsheets are not supported; export the sheet as .xlsx or CSV",
    ".bz2": "only gzip compression is supported; decompress the file or use .gz",
    ".xz": "only gzip compression is supported; decompress the file or use .gz",
    ".7z": "7-Zip archives are not supported; upload one CSV, XLSX, JSON or JSON Lines file",
    ".rar": "RAR archives are not supported; upload one CSV, XLSX, JSON or JSON Lines file",
    ".png": "an image is not a data file", ".jpg": "an image is not a data file",
    ".jpeg": "an image is not a data file", ".gif": "an image is not a data file",
}
_MAGIC = ((b"%PDF", ".pdf"), (b"\xd0\xcf\x11\xe0", ".xls"), (b"BZh", ".bz2"),
          (b"\xfd7zXZ\x00", ".xz"), (b"7z\xbc\xaf\x27\x1c", ".7z"), (b"Rar!", ".rar"),
          (b"\x89PNG", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF8", ".gif"))
_EXT_FORMAT = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx",
               ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_SKIP_LINE = re.compile(r"Skipping line (\d+): (.*)")
_TOML_SECTION = re.compile(r"^\s*\[\[?[A-Za-z_][\w.\- \"]*\]\]?\s*(#.*)?$")
_KEY_VALUE = re.compile(r"^\s*[\w.\-\"]+\s*=\s*\S")
_JSON_VALUE_START = set('{["-0123456789tfn]')
_XLSX_STRINGS_LIMIT = 128 * 1024 * 1024


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


def _seekable(source: Path | BinaryIO, limits: ImportLimits) -> tuple[IO[bytes], bool]:
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


def _size_of(f: IO[bytes]) -> int | None:
    try:
        pos = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(pos)
        return int(end)
    except (OSError, ValueError):
        return None


def _peek(f: IO[bytes], n: int) -> bytes:
    pos = f.tell()
    data = f.read(n)
    f.seek(pos)
    return data


# ---------------------------------------------------------------- encodings


def check_encoding_name(name: str) -> str:
    """The codec name Python knows for ``name`` (a user's ``--encoding``), else 400."""
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise BadRequest(f"unknown encoding '{name}'; e.g. utf-8, gb18030, gbk, big5, "
                         "utf-16, latin-1") from None


@functools.cache
def _common_chinese() -> frozenset[str]:
    """Characters that text in GBK or Big5 is mostly made of: GB2312's 3,755 level-1 hanzi,
    Big5's 5,401 frequent hanzi, and both standards' punctuation rows."""
    chars: set[str] = set()

    def block(enc: str, leads: range, trails: list[int]) -> None:
        raw = bytes(b for lead in leads for t in trails for b in (lead, t))
        chars.update(raw.decode(enc, errors="ignore"))

    block("gb2312", range(0xB0, 0xD8), list(range(0xA1, 0xFF)))
    block("gb2312", range(0xA1, 0xA2), list(range(0xA1, 0xFF)))
    block("gb2312", range(0xA3, 0xA4), list(range(0xA1, 0xFF)))
    big5_trails = list(range(0x40, 0x7F)) + list(range(0xA1, 0xFF))
    block("big5", range(0xA4, 0xC7), big5_trails)
    block("big5", range(0xA1, 0xA4), big5_trails)
    return frozenset(c for c in chars if not c.isascii())


def _share_common(text: str) -> tuple[float, int]:
    """Share of the non-ASCII characters of ``text`` that are common Chinese, and how many
    non-ASCII characters there are."""
    common = _common_chinese()
    wide = [c for c in text if not c.isascii() and c != "\ufeff"]
    if not wide:
        return 0.0, 0
    return sum(c in common for c in wide) / len(wide), len(wide)


def _bad_byte(data: bytes, encoding: str, final: bool) -> UnicodeDecodeError | None:
    try:
        codecs.getincrementaldecoder(encoding)().decode(data, final=final)
    except UnicodeDecodeError as exc:
        return exc
    return None


def _where(data: bytes, pos: int, base: int = 0, base_lines: int = 0) -> str:
    line = base_lines + data[:pos].count(b"\n") + 1
    byte = data[pos:pos + 1].hex().upper() or "end of file"
    return f"line {line}, byte offset {base + pos:,} (byte 0x{byte})" if len(byte) == 2 \
        else f"line {line}, byte offset {base + pos:,} (the file ends inside a character)"


def _detect_encoding(sample: bytes, complete: bool) -> str:
    """UTF-8 / UTF-16 (BOM) / GB18030 / Big5 of a sample; refuses a guess that is not
    confident."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    bad = _bad_byte(sample, "utf-8", complete)
    if bad is None:
        return "utf-8"
    scores = {}
    for enc in ("gb18030", "big5"):
        if _bad_byte(sample, enc, complete) is None:
            text = codecs.getincrementaldecoder(enc)().decode(sample, final=complete)
            scores[enc] = _share_common(text)
    ranked = sorted(scores.items(), key=lambda kv: -kv[1][0])
    if ranked:
        best, (share, n) = ranked[0]
        runner = ranked[1][1][0] if len(ranked) > 1 else 0.0
        if n >= 2 and share >= 0.8 and share - runner >= 0.2:
            return best
    where = _where(sample, bad.start)
    if bad.reason == "unexpected end of data":
        raise UnprocessableContent(
            f"the file ends in the middle of a UTF-8 character ({where}): it looks truncated; "
            "nothing was imported")
    raise UnprocessableContent(
        f"the file is not UTF-8 (first bad byte at {where}) and not confidently GB18030/GBK, "
        "Big5 or UTF-16 with a BOM; if you know its encoding, import with --encoding NAME "
        "(API: encoding=NAME), e.g. --encoding gb18030", encoding_tried=["utf-8", "gb18030",
                                                                          "big5"])


def _locate_decode_error(reopen: Callable[[], IO[bytes]], encoding: str) -> str:
    """Where the first undecodable byte of the whole (decompressed) file is: scanned from the
    start only after a decode error, so the happy path pays nothing."""
    dec = codecs.getincrementaldecoder(encoding)()
    offset = lines = 0
    stream = reopen()
    try:
        while True:
            block = stream.read(1 << 20)
            try:
                dec.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                data = bytes(exc.object)
                pending = len(data) - len(block)
                where = _where(data, exc.start, offset - pending, lines)
                if exc.reason == "unexpected end of data" and not block:
                    return f"the file ends inside a character at {where}: it looks truncated"
                return f"a byte that is not {encoding} at {where}"
            if not block:
                return f"a byte that is not {encoding}"
            offset += len(block)
            lines += block.count(b"\n")
    finally:
        stream.close()


# ---------------------------------------------------------------- opening


def open_reader(
    source: Path | BinaryIO,
    *,
    filename: str | None = None,
    chunk_rows: int = 50_000,
    skip_column: Callable[[str], bool] | None = None,
    limits: ImportLimits | None = None,
    guard: Guard | None = None,
    encoding: str | None = None,
) -> TableReader:
    """Detect the format of ``source`` and open it for chunked reading.

    ``skip_column(header)`` names columns a CSV reader need not parse at all (personal data);
    other formats leave them to the caller. ``encoding`` overrides detection (text formats).

    Raises :class:`UnsupportedMediaType` for formats that are not supported (saying what the
    file looks like), :class:`UnprocessableContent` for a supported format that cannot be read
    (no header, broken XLSX, invalid JSON at the top level, an undecodable byte) and
    :class:`~service.ingest.limits.TooLarge` for a file over a limit.
    """
    limits = limits or ImportLimits()
    guard = guard or Guard(limits)
    name = (filename or (str(source) if isinstance(source, Path | str) else "")).lower()
    f, owned = _seekable(source, limits)
    closers: list[IO[Any]] = [f] if owned else []
    try:
        reader = _open(f, name, chunk_rows, closers, skip_column, limits, guard, encoding)
    except BaseException:
        for c in reversed(closers):
            c.close()
        raise
    reader.position = f.tell
    reader.size = _size_of(f)
    return reader


def _describe(sample: bytes, ext: str) -> str | None:
    """What a file that is not a supported format looks like, or ``None``."""
    for magic, kind in _MAGIC:
        if sample.startswith(magic):
            return _NOT_DATA_EXT[kind]
    text = sample[:4096].decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    low = text[:200].lower()
    if low.startswith(("<?xml", "<html", "<!doctype")):
        return "the file is XML/HTML, not records"
    lines = [ln for ln in text.splitlines()[:20] if ln.strip() and not ln.lstrip()
             .startswith("#")]
    if lines and (_TOML_SECTION.match(lines[0]) or _KEY_VALUE.match(lines[0])) and any(
            _KEY_VALUE.match(ln) for ln in lines[:10]):
        return "the file looks like TOML/INI configuration ('[section]' and 'key = value' " \
               "lines), not records"
    return None


def _unsupported(why: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(f"{why}; {ACCEPTED}", accepted=list(FORMATS))


def _open(f: IO[bytes], name: str, chunk_rows: int, closers: list[IO[Any]],
          skip_column: Callable[[str], bool] | None, limits: ImportLimits, guard: Guard,
          encoding: str | None) -> TableReader:
    suffixes = [s for s in Path(name).suffixes if s]
    ext = suffixes[-1] if suffixes else ""
    if ext in _NOT_DATA_EXT:
        raise _unsupported(_NOT_DATA_EXT[ext])
    head = _peek(f, 8)
    gzipped = head.startswith(b"\x1f\x8b")
    start = f.tell()

    def decompressed() -> Any:
        f.seek(start)
        if not gzipped:
            return BoundedReader(f, limits, line_limit=True)
        gz: Any = gzip.GzipFile(fileobj=f, mode="rb")
        return BoundedReader(gz, limits, compressed=lambda: f.tell() - start, line_limit=True,
                             what="the compressed file")

    stream: Any
    if gzipped:
        if len(suffixes) > 1 and ext == ".gz":
            ext = suffixes[-2]
            if ext in _NOT_DATA_EXT:
                raise _unsupported(_NOT_DATA_EXT[ext])
        elif ext == ".gz":
            ext = ""
        stream = io.BufferedReader(decompressed(), buffer_size=_SAMPLE)
        closers.append(stream)
        sample = stream.peek(_SAMPLE)[:_SAMPLE]
        if len(sample) < _SAMPLE:
            more = stream.read(_SAMPLE)
            stream = io.BufferedReader(_Replay(more, stream), buffer_size=_SAMPLE)
            closers.append(stream)
            sample = more[:_SAMPLE]
        complete = len(sample) < _SAMPLE
    elif ext == ".gz":
        raise UnprocessableContent("the file is named .gz but is not gzip-compressed")
    else:
        sample = _peek(f, _SAMPLE)
        complete = len(sample) < _SAMPLE
        stream = f
    if sample.startswith(b"PK\x03\x04"):
        if ext not in ("", ".xlsx", ".xlsm"):
            raise _unsupported(f"a zip archive named {ext}")
        return _xlsx(stream, chunk_rows, closers, limits, guard, spool_first=gzipped)
    if ext in (".xlsx", ".xlsm"):
        raise UnprocessableContent("the file is named .xlsx but is not an XLSX workbook "
                                   "(not a zip archive)")
    described = _describe(sample, ext)
    if described is not None:
        raise _unsupported(described)
    if not sample.strip():
        raise UnprocessableContent("the file is empty")
    if b"\x00" in sample[:8192] and not sample.startswith(
            (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and encoding is None:
        raise _unsupported("the file is binary (it holds NUL bytes)")
    if encoding is not None:
        encoding = check_encoding_name(encoding)
        bad = _bad_byte(sample, encoding, complete)
        if bad is not None:
            raise UnprocessableContent(
                f"the file is not {encoding}: {_where(sample, bad.start)}")
    else:
        encoding = _detect_encoding(sample, complete)
    text_sample = codecs.getincrementaldecoder(encoding)(errors="replace").decode(sample)
    lead = text_sample.lstrip("\ufeff \t\r\n")[:1]
    after = text_sample.lstrip("\ufeff \t\r\n")[1:].lstrip(" \t\r\n")[:1]
    looks_json = lead == "[" and (after in _JSON_VALUE_START or not after)
    fmt = _EXT_FORMAT.get(ext) or ("json" if looks_json else "jsonl" if lead == "{" else "csv")
    if fmt == "json" and lead == "{":
        fmt = "jsonl"
    if not gzipped:
        f.seek(start)
        stream = BoundedReader(f, limits, line_limit=fmt != "json")
    elif fmt == "json":
        raw = cast(Any, stream).raw
        if isinstance(raw, _Replay):
            raw = cast(Any, raw.inner).raw
        raw.line_limit = False

    def reopen() -> IO[bytes]:
        pos = f.tell()
        try:
            out = decompressed()
            out.line_limit = False
            return cast(IO[bytes], _Restoring(out, f, pos))
        except Exception:
            f.seek(pos)
            raise

    if fmt in ("json", "jsonl"):
        text = io.TextIOWrapper(stream, encoding=encoding, newline="")
        closers.append(text)
        if fmt == "json":
            if not looks_json:
                raise UnprocessableContent(
                    "a .json file must hold an array of records ('[{...}, ...]'); this one "
                    f"starts with {text_sample.strip()[:40]!r}; JSON Lines go in .jsonl")
            return _json_array(text, encoding, chunk_rows, closers, limits, guard, reopen)
        return _jsonl(text, encoding, chunk_rows, closers, guard, reopen)
    return _csv(stream, encoding, text_sample.lstrip("\ufeff"), complete, chunk_rows,
                closers, skip_column, limits, guard, reopen)


class _Replay(io.RawIOBase):
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


class _Restoring(io.RawIOBase):
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


def _decode_failure(exc: UnicodeDecodeError, reopen: Callable[[], IO[bytes]],
                    encoding: str) -> UnprocessableContent:
    where = _locate_decode_error(reopen, encoding)
    return UnprocessableContent(
        f"the file cannot be decoded: {where}; nothing was imported; if the file is in another "
        "encoding, import with --encoding NAME (API: encoding=NAME)")


# ---------------------------------------------------------------- CSV


def _sniff_delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _csv(stream: IO[bytes], encoding: str, text_sample: str, complete: bool, chunk_rows: int,
         closers: list[IO[Any]], skip_column: Callable[[str], bool] | None,
         limits: ImportLimits, guard: Guard, reopen: Callable[[], IO[bytes]]) -> TableReader:
    sep = _sniff_delimiter(text_sample)
    first, newline, _ = text_sample.lstrip("\r\n").partition("\n")
    if first.count(sep) + 1 > limits.max_columns:
        raise TooLarge(f"the header has more than {limits.max_columns:,} columns "
                       "(imports.max_columns); nothing was imported",
                       limit="max_columns", value=limits.max_columns)
    if not newline and not complete:
        raise UnprocessableContent(f"the header line is longer than {_SAMPLE // 1024} KB; is "
                                   "this a CSV file?")
    try:
        head = pd.read_csv(io.StringIO(first + "\n"), sep=sep, dtype=str, nrows=0)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise UnprocessableContent(f"cannot read the CSV header: {exc}") from exc
    headers = [str(h) for h in head.columns]
    if not headers:
        raise UnprocessableContent("the CSV has no header row")
    numberer = _Numberer()
    wanted = [h for h in headers if not (skip_column and skip_column(h))]
    try:
        reader = pd.read_csv(
            stream, sep=sep, dtype=str, encoding=encoding, keep_default_na=False,
            na_values=[""], chunksize=chunk_rows, on_bad_lines="warn", engine="c",
            usecols=wanted if len(wanted) < len(headers) else None,
        )
    except UnicodeDecodeError as exc:
        raise _decode_failure(exc, reopen, encoding) from exc

    def gen() -> Iterator[Chunk]:
        with reader:
            while True:
                guard.tick()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", pd.errors.ParserWarning)
                    try:
                        frame = next(reader)
                    except StopIteration:
                        frame = None
                    except UnicodeDecodeError as exc:
                        raise _decode_failure(exc, reopen, encoding) from exc
                    except (pd.errors.ParserError, ValueError) as exc:
                        raise UnprocessableContent(f"the CSV cannot be parsed: {exc}") from exc
                bad = _bad_lines(caught)
                if bad:
                    nums = np.asarray([line - 1 for line, _ in bad], dtype=np.int64)
                    numberer.skip.update(int(n) for n in nums)
                    guard.add_rows(len(bad))
                    yield Chunk(pd.DataFrame({MALFORMED: [why for _, why in bad]}, dtype=str),
                                nums)
                if frame is None:
                    return
                if len(frame):
                    guard.add_rows(len(frame))
                    yield Chunk(frame, numberer.take(len(frame)))

    return TableReader("csv", encoding, headers, gen(), closers)


def _bad_lines(caught: list[warnings.WarningMessage]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for w in caught:
        if not issubclass(w.category, pd.errors.ParserWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        out.extend((int(m.group(1)), f"file line {m.group(1)}: {m.group(2).strip()[:200]}")
                   for m in _SKIP_LINE.finditer(str(w.message)))
    return out


# ---------------------------------------------------------------- XLSX


def _check_archive(stream: IO[bytes], limits: ImportLimits) -> None:
    """Refuse an XLSX whose declared sizes break the limits, before anything is inflated
    (``zipfile`` never inflates a member past its declared size)."""
    try:
        with zipfile.ZipFile(stream) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnprocessableContent(f"the XLSX workbook cannot be opened: {exc}") from exc
    finally:
        stream.seek(0)
    total = sum(i.file_size for i in infos)
    packed = max(sum(i.compress_size for i in infos), 1)
    if total > limits.max_bytes:
        raise TooLarge(f"the workbook unpacks to {total:,} bytes, more than "
                       f"{limits.max_bytes:,} (imports.max_bytes); nothing was imported",
                       limit="max_bytes", value=limits.max_bytes)
    if total > RATIO_FLOOR_BYTES and total / packed > limits.max_compression_ratio:
        raise TooLarge(f"the workbook unpacks to {total / packed:,.0f} times its size "
                       f"(imports.max_compression_ratio is {limits.max_compression_ratio:g}); "
                       "refused as a compression bomb",
                       limit="max_compression_ratio", value=limits.max_compression_ratio)
    strings = sum(i.file_size for i in infos if i.filename.endswith("sharedStrings.xml"))
    if strings > _XLSX_STRINGS_LIMIT:
        raise TooLarge(f"the workbook's shared strings unpack to {strings:,} bytes, more than "
                       f"{_XLSX_STRINGS_LIMIT:,}; save the sheet as CSV",
                       limit="max_bytes", value=limits.max_bytes)


def _xlsx(stream: IO[bytes], chunk_rows: int, closers: list[IO[Any]], limits: ImportLimits,
          guard: Guard, *, spool_first: bool) -> TableReader:
    from openpyxl.reader.excel import ExcelReader
    from openpyxl.styles.stylesheet import apply_stylesheet
    from openpyxl.worksheet._reader import ROW_TAG, WorkSheetParser
    from openpyxl.xml.functions import iterparse

    if spool_first:  # a gzip-compressed workbook: zipfile needs to seek
        spool: Any = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)  # noqa: SIM115
        while block := stream.read(1 << 20):
            spool.write(block)
        closers.append(spool)
        stream = spool
    stream.seek(0)
    _check_archive(stream, limits)
    # openpyxl's load_workbook would open every sheet and, for a sheet without a <dimension>,
    # scan all of its XML to size it (49 s for 3 million rows); only what the rows need is
    # read here: the shared strings, the styles (date formats) and the first sheet's part.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # openpyxl style/extension notices
            book = ExcelReader(stream, read_only=True, data_only=True)
            book.read_manifest()
            book.read_strings()
            book.read_workbook()
            apply_stylesheet(book.archive, book.wb)
            target = next((rel.target for _, rel in book.parser.find_sheets()
                           if rel.target in book.valid_files and "chartsheet" not in rel.Type),
                          None)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError, SyntaxError) as exc:
        raise UnprocessableContent(f"the XLSX workbook cannot be opened: {exc}") from exc
    closers.append(book.archive)
    if target is None:
        raise UnprocessableContent("the workbook has no sheet")
    src = book.archive.open(target)
    closers.append(src)
    wb = book.wb
    parser = WorkSheetParser(src, book.shared_strings, data_only=True, epoch=wb.epoch,
                             date_formats=wb._date_formats,
                             timedelta_formats=wb._timedelta_formats)

    def rows() -> Iterator[tuple[int, list[str | None]]]:
        """``(sheet row, cell texts)`` of the rows present in the sheet's XML; the parsed
        rows are dropped from the tree as they go (no padding, no materialised sheet)."""
        parent = None
        scanned = 0
        try:
            for event, el in iterparse(src, events=("start", "end")):
                if event == "start":
                    if parent is None and el.tag.endswith("}sheetData"):
                        parent = el
                    continue
                if el.tag != ROW_TAG:
                    continue
                idx, cells = parser.parse_row(el)
                el.clear()
                if parent is not None:
                    parent.clear()
                parser.row_dimensions.clear()
                scanned += 1
                if scanned % 1000 == 0:
                    guard.tick()
                    guard.add_rows(1000)
                width = max((c["column"] for c in cells), default=0)
                if width > limits.max_columns:
                    raise TooLarge(f"sheet row {idx} has a cell in column {width:,}, beyond "
                                   f"{limits.max_columns:,} (imports.max_columns)",
                                   limit="max_columns", value=limits.max_columns)
                values: list[str | None] = [None] * width
                for c in cells:
                    values[c["column"] - 1] = cell_text(c["value"])
                yield idx, values
        except SyntaxError as exc:  # ElementTree.ParseError
            raise UnprocessableContent(f"the sheet's XML is broken: {exc}") from exc
        guard.add_rows(scanned % 1000)

    it = rows()
    headers: list[str] = []
    for _, cells in it:
        if any(c is not None and c.strip() for c in cells):
            while cells and (cells[-1] is None or not cells[-1].strip()):
                cells.pop()
            headers = [c.strip() if c else f"column_{i + 1}" for i, c in enumerate(cells)]
            break
    if not headers:
        raise UnprocessableContent("the first sheet of the workbook is empty")
    width = len(headers)
    numberer = _Numberer()

    def gen() -> Iterator[Chunk]:
        try:
            buf: list[list[str | None]] = []
            for _, cells in it:
                row = cells[:width]
                if not any(c is not None and c.strip() for c in row):
                    continue
                row.extend([None] * (width - len(row)))
                buf.append(row)
                if len(buf) >= chunk_rows:
                    yield _frame_chunk(buf, headers, numberer)
                    buf = []
            if buf:
                yield _frame_chunk(buf, headers, numberer)
        finally:
            src.close()

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


def _jsonl(text: IO[str], encoding: str, chunk_rows: int, closers: list[IO[Any]],
           guard: Guard, reopen: Callable[[], IO[bytes]]) -> TableReader:
    numberer = _Numberer()

    def gen() -> Iterator[Chunk]:
        buf: list[Any] = []
        try:
            for lineno, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                try:
                    buf.append(json.loads(line))
                except ValueError as exc:
                    buf.append(_BadLine(f"file line {lineno}: not valid JSON ({exc.args[0]})"))
                if len(buf) >= chunk_rows:
                    guard.tick()
                    guard.add_rows(len(buf))
                    yield _records_chunk(buf, numberer)
                    buf = []
        except UnicodeDecodeError as exc:
            raise _decode_failure(exc, reopen, encoding) from exc
        if buf:
            guard.add_rows(len(buf))
            yield _records_chunk(buf, numberer)

    return TableReader("jsonl", encoding, [], gen(), closers)


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
        for value in ijson.items(feed, "item", use_float=True, buf_size=block):
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


def _json_array(text: IO[str], encoding: str, chunk_rows: int, closers: list[IO[Any]],
                limits: ImportLimits, guard: Guard,
                reopen: Callable[[], IO[bytes]]) -> TableReader:
    numberer = _Numberer()

    def gen() -> Iterator[Chunk]:
        buf: list[Any] = []
        try:
            for value in iter_json_array(text, max_chars=limits.max_line_bytes):
                buf.append(value)
                if len(buf) >= chunk_rows:
                    guard.tick()
                    guard.add_rows(len(buf))
                    yield _records_chunk(buf, numberer)
                    buf = []
        except UnicodeDecodeError as exc:
            raise _decode_failure(exc, reopen, encoding) from exc
        if buf:
            guard.add_rows(len(buf))
            yield _records_chunk(buf, numberer)

    return TableReader("json", encoding, [], gen(), closers)


def records_reader(records: list[Any], chunk_rows: int = 50_000,
                   guard: Guard | None = None) -> TableReader:
    """A reader over records already in memory (a JSON request body)."""
    numberer = _Numberer()

    def gen() -> Iterator[Chunk]:
        for i in range(0, len(records), chunk_rows):
            part = records[i: i + chunk_rows]
            if guard is not None:
                guard.tick()
                guard.add_rows(len(part))
            yield _records_chunk(part, numberer)

    return TableReader("records", None, [], gen(), [])
