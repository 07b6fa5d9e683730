"""Ingestion of complaint and enforcement records (CSV, CSV.gz, XLSX, JSON, JSON Lines).

``import_file`` / ``import_records`` read, map, validate and redact records and write them
with their rejected rows in one transaction; see :mod:`service.ingest.pipeline`.
"""

from __future__ import annotations

from service.ingest.mapping import load_mapping_file, parse_mapping_pairs
from service.ingest.pipeline import (
    MAX_ERRORS,
    PROBLEMS,
    BatchSummary,
    RowError,
    get_batch,
    import_file,
    import_records,
    iter_rejected,
)

__all__ = [
    "MAX_ERRORS",
    "PROBLEMS",
    "BatchSummary",
    "RowError",
    "get_batch",
    "import_file",
    "import_records",
    "iter_rejected",
    "load_mapping_file",
    "parse_mapping_pairs",
]
