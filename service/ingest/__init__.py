"""Ingestion of complaint and enforcement records (CSV, CSV.gz, XLSX, JSON, JSON Lines).

``import_file`` / ``import_records`` read, map, validate and redact records, stage them and
publish them with their rejected rows in one short transaction; see
:mod:`service.ingest.pipeline` and, for the limits, :mod:`service.ingest.limits`.
"""

from __future__ import annotations

from service.ingest.batches import (
    MAX_ERRORS,
    BatchSummary,
    RowError,
    get_batch,
    iter_rejected,
    recover_interrupted,
)
from service.ingest.limits import ImportLimits
from service.ingest.mapping import load_mapping_file, parse_mapping_pairs
from service.ingest.pipeline import import_file, import_records
from service.ingest.rows import PROBLEMS

__all__ = [
    "MAX_ERRORS",
    "PROBLEMS",
    "BatchSummary",
    "ImportLimits",
    "RowError",
    "get_batch",
    "import_file",
    "import_records",
    "iter_rejected",
    "load_mapping_file",
    "parse_mapping_pairs",
    "recover_interrupted",
]
