"""The CSV reader: delimiter sniffing, the header, chunks parsed by pandas' C engine and lines
with too many fields turned into :data:`MALFORMED` rows."""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np
import pandas as pd

from service.errors import UnprocessableContent
from service.ingest.limits import Guard, ImportLimits, TooLarge
from service.ingest.readers._common import MALFORMED, SAMPLE_BYTES, Chunk, Numberer, TableReader
from service.ingest.readers._encodings import decode_failure

_SKIP_LINE = re.compile(r"Skipping line (\d+): (.*)")


def _sniff_delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def csv_reader(stream: IO[bytes], encoding: str, text_sample: str, complete: bool,
               chunk_rows: int, closers: list[IO[Any]], skip_column: Callable[[str], bool] | None,
               limits: ImportLimits, guard: Guard, reopen: Callable[[], IO[bytes]]) -> TableReader:
    sep = _sniff_delimiter(text_sample)
    first, newline, _ = text_sample.lstrip("\r\n").partition("\n")
    if first.count(sep) + 1 > limits.max_columns:
        raise TooLarge(f"the header has more than {limits.max_columns:,} columns "
                       "(imports.max_columns); nothing was imported",
                       limit="max_columns", value=limits.max_columns)
    if not newline and not complete:
        raise UnprocessableContent(f"the header line is longer than {SAMPLE_BYTES // 1024} KB; is "
                                   "this a CSV file?")
    try:
        head = pd.read_csv(io.StringIO(first + "\n"), sep=sep, dtype=str, nrows=0)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise UnprocessableContent(f"cannot read the CSV header: {exc}") from exc
    headers = [str(h) for h in head.columns]
    if not headers:
        raise UnprocessableContent("the CSV has no header row")
    numberer = Numberer()
    wanted = [h for h in headers if not (skip_column and skip_column(h))]
    try:
        reader = pd.read_csv(
            stream, sep=sep, dtype=str, encoding=encoding, keep_default_na=False,
            na_values=[""], chunksize=chunk_rows, on_bad_lines="warn", engine="c",
            usecols=wanted if len(wanted) < len(headers) else None,
        )
    except UnicodeDecodeError as exc:
        raise decode_failure(exc, reopen, encoding) from exc
    except (pd.errors.ParserError, ValueError) as exc:  # a small file is read at once
        raise _unparseable(exc) from exc

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
                        raise decode_failure(exc, reopen, encoding) from exc
                    except (pd.errors.ParserError, ValueError) as exc:
                        raise _unparseable(exc) from exc
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


def _unparseable(exc: Exception) -> UnprocessableContent:
    """A CSV pandas cannot tokenise (e.g. a quote never closed), with its reason."""
    return UnprocessableContent(f"the CSV cannot be parsed: {exc}")


def _bad_lines(caught: list[warnings.WarningMessage]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for w in caught:
        if not issubclass(w.category, pd.errors.ParserWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        out.extend((int(m.group(1)), f"file line {m.group(1)}: {m.group(2).strip()[:200]}")
                   for m in _SKIP_LINE.finditer(str(w.message)))
    return out
