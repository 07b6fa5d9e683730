"""Import jobs: what an import needs besides the database (the file's opener, its options
and limits), built for a file (:func:`file_job`) or for records in memory (:func:`records_job`)
and checked before anything is stored (:func:`validate_job`). :mod:`service.ingest.pipeline`
runs them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from service.config import DEFAULT_TIMEZONE
from service.errors import BadRequest, ServiceError
from service.ingest.batches import _Hasher, _spec, file_sha256, records_sha256
from service.ingest.limits import Guard, ImportLimits
from service.ingest.mapping import KindSpec, normalise_header
from service.ingest.readers import TableReader, check_encoding_name, open_reader, records_reader
from service.ingest.redact import is_personal_header
from service.ingest.timestamps import DATE_ORDERS
from service.store.summary import Coverage, parse_coverage

__all__ = ["ImportJob", "validate_job", "file_job", "records_job", "declared_coverage"]


@dataclass
class ImportJob:
    """Everything an import needs besides the database: the file (opener), its options and
    its limits."""

    kind: Literal["complaints", "enforcement"]
    opener: Callable[[Guard], TableReader]
    filename: str | None = None
    source: str | None = None
    mapping: Mapping[str, str] | None = None
    register_new: bool = False
    tz: str = DEFAULT_TIMEZONE
    chunk_rows: int = 50_000
    force: bool = False
    date_order: str | None = None
    coverage: Coverage | None = None
    limits: ImportLimits = field(default_factory=ImportLimits)
    sha256: str | None = None
    hasher: _Hasher | None = None
    clock: Callable[[], float] = time.monotonic
    cancel: threading.Event | None = None
    closers: list[Any] = field(default_factory=list)

    def options(self) -> dict[str, Any]:
        out = {"register_new": self.register_new, "mapping": dict(self.mapping or {}),
               "tz": self.tz, "chunk_rows": self.chunk_rows, "force": self.force,
               "date_order": self.date_order}
        if self.coverage is not None:
            out["coverage"] = str(self.coverage)
        return out


def validate_job(job: ImportJob) -> KindSpec:
    """The spec of the job's kind, once its arguments are valid (else 400)."""
    spec = _spec(job.kind)
    if job.chunk_rows < 1:
        raise BadRequest("chunk_rows must be positive")
    if job.date_order is not None and job.date_order not in DATE_ORDERS:
        raise BadRequest(f"date_order must be one of {', '.join(DATE_ORDERS)}, not "
                         f"'{job.date_order}'")
    if job.source is not None and len(job.source.strip()) > spec.max_len["source"]:
        raise BadRequest(f"source is longer than {spec.max_len['source']} characters")
    return spec


def _personal_unless_mapped(mapping: Mapping[str, str] | None) -> Callable[[str], bool]:
    mapped = {normalise_header(c) for c in (mapping or {}).values()}
    return lambda h: is_personal_header(h) and normalise_header(h) not in mapped


def file_job(
    *,
    kind: Literal["complaints", "enforcement"],
    path: Path | BinaryIO,
    filename: str | None = None,
    encoding: str | None = None,
    **options: Any,
) -> ImportJob:
    """An :class:`ImportJob` reading ``path`` (a file, or a seekable binary stream that the
    job closes when done); see :func:`import_file` for the options."""
    name = filename or (Path(path).name if isinstance(path, str | Path) else None)
    mapping = options.get("mapping")
    chunk_rows = int(options.get("chunk_rows", 50_000))
    limits: ImportLimits = options.get("limits") or ImportLimits()
    if encoding is not None:
        check_encoding_name(encoding)

    def opener(guard: Guard) -> TableReader:
        return open_reader(path, filename=name, chunk_rows=chunk_rows,
                           skip_column=_personal_unless_mapped(mapping), limits=limits,
                           guard=guard, encoding=encoding)

    job = ImportJob(kind=kind, opener=opener, filename=name, **options)
    if isinstance(path, str | Path):
        if job.sha256 is None:
            job.hasher = _Hasher(Path(path))
            job.hasher.start()
    elif job.sha256 is None and path.seekable():
        job.sha256 = file_sha256(path)
    return job


def declared_coverage(value: str | Coverage | None) -> Coverage | None:
    """A declared coverage ``FROM..TO`` (or None); a malformed one is a 400."""
    try:
        return parse_coverage(value)
    except ServiceError as exc:
        raise BadRequest(exc.detail) from None


def records_job(*, kind: Literal["complaints", "enforcement"], records: list[dict[str, Any]],
                **options: Any) -> ImportJob:
    """An :class:`ImportJob` over records already in memory (a JSON request body)."""
    if not isinstance(records, list):
        raise BadRequest("records must be a list of objects")
    chunk_rows = int(options.get("chunk_rows", 50_000))
    options.setdefault("sha256", records_sha256(records) if records else None)
    return ImportJob(kind=kind, opener=lambda guard: records_reader(records, chunk_rows, guard),
                     **options)
