"""The XLSX reader: the archive's declared sizes checked first, then the first sheet parsed
row by row with openpyxl's parts (never materialised)."""

from __future__ import annotations

import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any

import pandas as pd

from service.errors import UnprocessableContent
from service.ingest.limits import RATIO_FLOOR_BYTES, Guard, ImportLimits, TooLarge
from service.ingest.readers._common import Chunk, Numberer, TableReader, cell_text

_XLSX_STRINGS_LIMIT = 128 * 1024 * 1024


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


def xlsx_reader(stream: IO[bytes], chunk_rows: int, closers: list[IO[Any]],
                limits: ImportLimits, guard: Guard, *, spool_first: bool) -> TableReader:
    src, parser = _open_sheet(stream, closers, limits, spool_first=spool_first)
    it = _sheet_rows(src, parser, limits, guard)
    headers = _header(it)
    width = len(headers)
    numberer = Numberer()

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


def _open_sheet(stream: IO[bytes], closers: list[IO[Any]], limits: ImportLimits, *,
                spool_first: bool) -> tuple[IO[bytes], Any]:
    """The first sheet's XML part and openpyxl's parser of its rows (with the workbook's shared
    strings and date formats)."""
    from openpyxl.reader.excel import ExcelReader
    from openpyxl.styles.stylesheet import apply_stylesheet
    from openpyxl.worksheet._reader import WorkSheetParser

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
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, OSError, ValueError, TypeError,
            SyntaxError) as exc:
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
    return src, parser


def _sheet_rows(src: IO[bytes], parser: Any, limits: ImportLimits,
                guard: Guard) -> Iterator[tuple[int, list[str | None]]]:
    """``(sheet row, cell texts)`` of the rows present in the sheet's XML; the parsed
    rows are dropped from the tree as they go (no padding, no materialised sheet)."""
    from openpyxl.worksheet._reader import CELL_TAG, ROW_TAG
    from openpyxl.xml.functions import iterparse

    parent = None
    scanned = cells_in_row = 0
    try:
        for event, el in iterparse(src, events=("start", "end")):
            if event == "start":
                if el.tag == CELL_TAG:  # counted as they come: a row of millions of empty
                    cells_in_row += 1  # cells is refused before it is built in memory
                    if cells_in_row > limits.max_columns:
                        raise TooLarge(f"a sheet row has more than {limits.max_columns:,} "
                                       "cells (imports.max_columns)",
                                       limit="max_columns", value=limits.max_columns)
                elif parent is None and el.tag.endswith("}sheetData"):
                    parent = el
                continue
            if el.tag != ROW_TAG:
                continue
            cells_in_row = 0
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
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # a corrupt member, as read
        raise UnprocessableContent(f"the XLSX file is corrupt: {exc}") from exc
    guard.add_rows(scanned % 1000)


def _header(it: Iterator[tuple[int, list[str | None]]]) -> list[str]:
    """The texts of the first row that is not empty (trailing empty cells dropped, an empty
    cell inside named ``column_N``)."""
    for _, cells in it:
        if any(c is not None and c.strip() for c in cells):
            while cells and (cells[-1] is None or not cells[-1].strip()):
                cells.pop()
            return [c.strip() if c else f"column_{i + 1}" for i, c in enumerate(cells)]
    raise UnprocessableContent("the first sheet of the workbook is empty")


def _frame_chunk(buf: list[list[str | None]], headers: list[str], numberer: Numberer) -> Chunk:
    frame = pd.DataFrame(buf, columns=headers, dtype=str)
    return Chunk(frame, numberer.take(len(frame)))
