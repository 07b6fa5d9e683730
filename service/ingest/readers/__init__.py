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

from service.ingest.readers._common import (
    ACCEPTED,
    FORMATS,
    MALFORMED,
    Chunk,
    TableReader,
    cell_text,
)
from service.ingest.readers._encodings import check_encoding_name
from service.ingest.readers._json import iter_json_array, records_reader
from service.ingest.readers._open import open_reader

__all__ = ["MALFORMED", "FORMATS", "ACCEPTED", "Chunk", "TableReader", "open_reader",
           "cell_text", "records_reader", "iter_json_array", "check_encoding_name"]
