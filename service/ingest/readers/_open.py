"""Opening an upload: refuse what is not a data file, undo gzip, take a sample, settle the
encoding and the format, and hand the stream to the format's reader."""

from __future__ import annotations

import codecs
import gzip
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from service.errors import UnprocessableContent, UnsupportedMediaType
from service.ingest.limits import BoundedReader, Guard, ImportLimits
from service.ingest.readers._common import (
    ACCEPTED,
    FORMATS,
    SAMPLE_BYTES,
    Replay,
    Restoring,
    TableReader,
    open_seekable,
    peek,
    size_of,
)
from service.ingest.readers._csv import csv_reader
from service.ingest.readers._encodings import (
    bad_byte,
    check_encoding_name,
    describe_position,
    detect_encoding,
)
from service.ingest.readers._json import json_array_reader, jsonl_reader
from service.ingest.readers._xlsx import xlsx_reader

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
_TOML_SECTION = re.compile(r"^\s*\[\[?[A-Za-z_][\w.\- \"]*\]\]?\s*(#.*)?$")
_KEY_VALUE = re.compile(r"^\s*[\w.\-\"]+\s*=\s*\S")
_JSON_VALUE_START = set('{["-0123456789tfn]')


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
    f, owned = open_seekable(source, limits)
    closers: list[IO[Any]] = [f] if owned else []
    try:
        reader = _open(f, name, chunk_rows, closers, skip_column, limits, guard, encoding)
    except BaseException:
        for c in reversed(closers):
            c.close()
        raise
    reader.position = f.tell
    reader.size = size_of(f)
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


class _Upload:
    """The seekable upload from where the data starts: decompressed and bounded, and reopened
    from the start to locate an undecodable byte (the shared file put back afterwards)."""

    def __init__(self, f: IO[bytes], limits: ImportLimits, *, gzipped: bool) -> None:
        self.f, self.limits, self.gzipped = f, limits, gzipped
        self.start = f.tell()

    def decompressed(self) -> Any:
        f, start = self.f, self.start
        f.seek(start)
        if not self.gzipped:
            return BoundedReader(f, self.limits, line_limit=True)
        gz: Any = gzip.GzipFile(fileobj=f, mode="rb")
        return BoundedReader(gz, self.limits, compressed=lambda: f.tell() - start,
                             line_limit=True, what="the compressed file")

    def reopen(self) -> IO[bytes]:
        pos = self.f.tell()
        try:
            out = self.decompressed()
            out.line_limit = False
            return cast(IO[bytes], Restoring(out, self.f, pos))
        except Exception:
            self.f.seek(pos)
            raise


def _format_ext(suffixes: list[str], ext: str, *, gzipped: bool) -> str:
    """The extension that names the format: the one under ``.gz`` of a gzipped file (none for
    a bare ``.gz``); a file named ``.gz`` that is not gzip-compressed is refused."""
    if gzipped:
        if len(suffixes) > 1 and ext == ".gz":
            ext = suffixes[-2]
            if ext in _NOT_DATA_EXT:
                raise _unsupported(_NOT_DATA_EXT[ext])
        elif ext == ".gz":
            ext = ""
    elif ext == ".gz":
        raise UnprocessableContent("the file is named .gz but is not gzip-compressed")
    return ext


def _gzip_sample(decompressed: Any, closers: list[IO[Any]]) -> tuple[Any, bytes]:
    """The decompressed stream and its first :data:`SAMPLE_BYTES` (a short first read of the
    gzip stream is replayed in front of the rest)."""
    stream = io.BufferedReader(decompressed, buffer_size=SAMPLE_BYTES)
    closers.append(stream)
    sample = stream.peek(SAMPLE_BYTES)[:SAMPLE_BYTES]
    if len(sample) < SAMPLE_BYTES:
        more = stream.read(SAMPLE_BYTES)
        stream = io.BufferedReader(Replay(more, stream), buffer_size=SAMPLE_BYTES)
        closers.append(stream)
        sample = more[:SAMPLE_BYTES]
    return stream, sample


def _refuse_non_text(sample: bytes, ext: str, encoding: str | None) -> None:
    """Refuse a sample that is not a text format: an .xlsx that is no zip archive, a known
    other kind of file, an empty file, binary bytes."""
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


def _settle_encoding(sample: bytes, complete: bool, encoding: str | None) -> str:
    """The user's encoding when the sample decodes in it, else the detected one."""
    if encoding is None:
        return detect_encoding(sample, complete)
    encoding = check_encoding_name(encoding)
    bad = bad_byte(sample, encoding, complete)
    if bad is not None:
        raise UnprocessableContent(
            f"the file is not {encoding}: {describe_position(sample, bad.start)}")
    return encoding


def _text_format(text_sample: str, ext: str) -> tuple[str, bool]:
    """``(format, looks like a JSON array)`` of a text file: by its extension, else by its
    first characters."""
    lead = text_sample.lstrip("\ufeff \t\r\n")[:1]
    after = text_sample.lstrip("\ufeff \t\r\n")[1:].lstrip(" \t\r\n")[:1]
    looks_json = lead == "[" and (after in _JSON_VALUE_START or not after)
    fmt = _EXT_FORMAT.get(ext) or ("json" if looks_json else "jsonl" if lead == "{" else "csv")
    if fmt == "json" and lead == "{":
        fmt = "jsonl"
    return fmt, looks_json


def _open(f: IO[bytes], name: str, chunk_rows: int, closers: list[IO[Any]],
          skip_column: Callable[[str], bool] | None, limits: ImportLimits, guard: Guard,
          encoding: str | None) -> TableReader:
    """Refuse, sample, settle the encoding and the format, and open the format's reader."""
    suffixes = [s for s in Path(name).suffixes if s]
    ext = suffixes[-1] if suffixes else ""
    if ext in _NOT_DATA_EXT:
        raise _unsupported(_NOT_DATA_EXT[ext])
    head = peek(f, 8)
    gzipped = head.startswith(b"\x1f\x8b")
    upload = _Upload(f, limits, gzipped=gzipped)
    ext = _format_ext(suffixes, ext, gzipped=gzipped)
    stream: Any
    if gzipped:
        stream, sample = _gzip_sample(upload.decompressed(), closers)
        complete = len(sample) < SAMPLE_BYTES
    else:
        sample = peek(f, SAMPLE_BYTES)
        complete = len(sample) < SAMPLE_BYTES
        stream = f
    if sample.startswith(b"PK\x03\x04"):
        if ext not in ("", ".xlsx", ".xlsm"):
            raise _unsupported(f"a zip archive named {ext}")
        return xlsx_reader(stream, chunk_rows, closers, limits, guard, spool_first=gzipped)
    _refuse_non_text(sample, ext, encoding)
    encoding = _settle_encoding(sample, complete, encoding)
    text_sample = codecs.getincrementaldecoder(encoding)(errors="replace").decode(sample)
    fmt, looks_json = _text_format(text_sample, ext)
    if not gzipped:
        f.seek(upload.start)
        stream = BoundedReader(f, limits, line_limit=fmt != "json")
    elif fmt == "json":
        raw = cast(Any, stream).raw
        if isinstance(raw, Replay):
            raw = cast(Any, raw.inner).raw
        raw.line_limit = False

    reopen = upload.reopen
    if fmt in ("json", "jsonl"):
        text = io.TextIOWrapper(stream, encoding=encoding, newline="")
        closers.append(text)
        if fmt == "json":
            if not looks_json:
                raise UnprocessableContent(
                    "a .json file must hold an array of records ('[{...}, ...]'); this one "
                    f"starts with {text_sample.strip()[:40]!r}; JSON Lines go in .jsonl")
            return json_array_reader(text, encoding, chunk_rows, closers, limits, guard, reopen)
        return jsonl_reader(text, encoding, chunk_rows, closers, guard, reopen)
    return csv_reader(stream, encoding, text_sample.lstrip("\ufeff"), complete, chunk_rows,
                      closers, skip_column, limits, guard, reopen)
