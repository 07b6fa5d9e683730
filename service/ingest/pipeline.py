"""Import pipeline: read -> map -> validate -> redact -> stage -> publish.

Bookkeeping: the :class:`~service.store.tables.ImportBatch` row is created (``running``, or
``queued`` by the API for a background import) and committed first. The file is read in
chunks; each chunk's valid rows and rejected rows are written to the importing connection's
own temporary staging tables and committed there (SQLite's ``temp`` database, PostgreSQL's
session temporary tables): this takes no lock on the real tables, however long the file.
At the end one short transaction publishes (:mod:`service.ingest.publish`): it registers new
categories/regions, copies the staged rows into the record table (``INSERT ... SELECT ... ON
CONFLICT DO NOTHING``), copies the rejected rows, sets the batch's counts and status, runs
:func:`~service.ingest.publish._after_publish` and commits. On SQLite its first statement
takes the write lock (waiting up to the busy timeout; still locked after that: 503 with
``Retry-After``). If anything fails before the commit nothing of the batch is stored and the
batch is marked ``failed`` with the error; a process killed mid-way leaves the batch
``running`` with nothing published, and :func:`~service.ingest.batches.recover_interrupted`
marks it failed ("interrupted") at the next start.

Outcomes: ``completed`` (a header-only file too, with a warning), ``rejected`` (rows were
read and every one was rejected: the CLI exits 1, the API answers 422 with the batch id) or
``failed`` (the file as a whole: unreadable, over a limit, already imported -- raised as a
problem that names ``batch_id``).

Fingerprints: the uploaded bytes' SHA-256 is stored with the batch; a file whose bytes were
already imported by a ``completed`` batch of the same kind is refused (409 naming that batch)
unless forced. Records: a record whose key -- external id, time, category and region -- is
already stored under *another* source is skipped as a duplicate (with a warning naming that
source and batch) unless forced; under the same source the unique key ``(source,
external_id)`` skips it anyway.

Duplicates: ``duplicates = valid rows - inserted rows`` counts rows already in the database,
repeats within the file (the first occurrence wins) and the records of other sources above.

Keys: a file with an ``external_id`` column must fill it (a blank value rejects the row); a
file without one gets ``sha256:<hash of the normalised record>#<n>``, ``n`` counting identical
records in the file, so two identical complaints stay two and a re-import inserts nothing.

Rows: numbered from 1 over data rows (header excluded; blank CSV lines and empty XLSX rows are
neither counted nor numbered): "row 5" is the fifth data row, not the fifth line of the file.
Each rejected row is stored once, with the first problem found (see
:data:`~service.ingest.rows.PROBLEMS`), its field and its non-personal raw values, redacted
(each cut to 1,000 characters); the validation is :mod:`service.ingest.rows`.

Dates with the year last (``01/02/2013``) are read in one order per file: the caller's
(``date_order``), or the one a value above 12 settles in the first chunk holding such dates;
a file where every such date could be either is refused with that advice.

Limits: see :mod:`service.ingest.limits`; complaint texts longer than ``max_text_chars`` are
cut (after a whole number, never inside one) with a marker.

Writers (:mod:`service.ingest.staging`): SQLite stages with ``executemany`` on the raw
``sqlite3`` connection (rows sorted by the series index per chunk, except in a bulk load into
a near-empty table: there rows stay in file order and the series index is dropped and rebuilt
inside the publishing transaction); PostgreSQL stages with ``COPY``. Foreign-key checks are
off while publishing on SQLite: every code was read from the reference tables (which imports
only add to) or is registered in the same transaction. Batch bookkeeping (the batch row, its
heartbeat, fingerprints, reading batches back) is :mod:`service.ingest.batches`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypedDict, Unpack, cast

import structlog
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from service.errors import ServiceError, UnprocessableContent
from service.ingest.batches import (
    BatchSummary,
    _already_imported,
    _BatchRef,
    _busy_is_503,
    _find_earlier,
    _Heartbeat,
    _mark_failed,
    create_batch,
)
from service.ingest.jobs import ImportJob, declared_coverage, file_job, records_job, validate_job
from service.ingest.limits import Guard, ImportLimits, Interrupted
from service.ingest.mapping import KindSpec
from service.ingest.publish import _add, _publish, _reference, _Totals, other_sources_warning
from service.ingest.readers import TableReader
from service.ingest.rows import _longer_than_each as _longer_than_each
from service.ingest.rows import _Processor
from service.ingest.rows import _strip_nulls as _strip_nulls
from service.ingest.staging import _PostgresStage as _PostgresStage
from service.ingest.staging import _SqliteStage as _SqliteStage
from service.ingest.staging import _Stage
from service.store.owners import process_owner
from service.store.summary import Coverage
from service.store.tables import ImportBatch, utcnow

__all__ = ["ImportOptions", "import_file", "import_records", "run_import", "queue_import"]

log = structlog.get_logger(__name__)


def _engine_of(session_factory: sessionmaker[Session]) -> Engine:
    with session_factory() as s:
        bind = s.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


# ------------------------------------------------------------------ the import


def run_import(session_factory: sessionmaker[Session], job: ImportJob,
               batch: _BatchRef | None = None) -> BatchSummary:
    """Run ``job`` into ``batch`` (a queued one) or a new batch; returns its summary.

    File-level failures (unreadable file, a limit, a file already imported) mark the batch
    ``failed`` and are raised with the batch's id in the problem (``batch_id``).
    """
    try:
        spec = validate_job(job)
        if batch is None:
            batch = create_batch(session_factory, kind=job.kind, source=job.source,
                                 filename=job.filename, options=job.options(),
                                 file_sha256=job.sha256)
        else:
            with _busy_is_503(), session_factory() as s:
                claimed = s.execute(update(ImportBatch).where(ImportBatch.id == batch.id)
                                    .where(ImportBatch.status == "queued").values(
                    status="running", owner=process_owner(), heartbeat_at=utcnow()))
                s.commit()
            if cast(Any, claimed).rowcount != 1:
                raise Interrupted("the queued batch was marked failed before it ran; "
                                  "nothing was imported; send the file again")
    except BaseException:
        for c in job.closers:
            c.close()
        raise
    log.info("import_started", batch_id=batch.id, kind=job.kind)
    try:
        with _busy_is_503():
            summary = _execute(session_factory, job, spec, batch)
    except BaseException as exc:
        _mark_failed(session_factory, batch.id, exc)
        log.warning("import_failed", batch_id=batch.id, kind=job.kind,
                    error_type=type(exc).__name__)
        if isinstance(exc, ServiceError):
            exc.extensions.setdefault("batch_id", batch.id)
        raise
    finally:
        for c in job.closers:
            c.close()
    log.info("import_finished", batch_id=batch.id, kind=job.kind, status=summary.status,
             received=summary.received, inserted=summary.inserted,
             duplicates=summary.duplicates, rejected=summary.rejected)
    return summary


def queue_import(session_factory: sessionmaker[Session], job: ImportJob) -> _BatchRef:
    """Store a ``queued`` batch for ``job`` (a background import) after the checks that can
    answer at once: arguments, and the file fingerprint (409 naming the earlier batch)."""
    validate_job(job)
    batch = create_batch(session_factory, kind=job.kind, source=job.source,
                         filename=job.filename, options=job.options(), status="queued",
                         file_sha256=job.sha256)
    try:
        _check_fingerprint(session_factory, job, batch, wait=True)
    except ServiceError as exc:
        _mark_failed(session_factory, batch.id, exc)
        exc.extensions.setdefault("batch_id", batch.id)
        raise
    return batch


def _check_fingerprint(session_factory: sessionmaker[Session], job: ImportJob,
                       batch: _BatchRef, *, wait: bool) -> bool:
    """Refuse a file already imported (unless forced); ``True`` once checked."""
    digest = job.sha256
    if digest is None and job.hasher is not None:
        if job.hasher.is_alive() and not wait:
            return False
        job.hasher.join()
        if job.hasher.error is not None:
            raise UnprocessableContent(f"cannot read the file: {job.hasher.error}")
        digest = job.sha256 = job.hasher.digest
        with session_factory() as s:
            s.execute(update(ImportBatch).where(ImportBatch.id == batch.id)
                      .values(file_sha256=digest))
            s.commit()
    if digest is not None and not job.force:
        earlier = _find_earlier(session_factory, kind=job.kind, sha256=digest,
                                exclude=batch.id)
        if earlier is not None:
            raise _already_imported(earlier)
    return True


def _execute(session_factory: sessionmaker[Session], job: ImportJob, spec: KindSpec,
             batch: _BatchRef) -> BatchSummary:
    guard = Guard(job.limits, clock=job.clock, cancel=job.cancel)
    checked = _check_fingerprint(session_factory, job, batch, wait=False)
    heart = _Heartbeat(session_factory, batch.id)
    totals = _Totals()
    engine = _engine_of(session_factory)
    with engine.connect() as conn:
        is_sqlite = conn.dialect.name == "sqlite"
        stage: _Stage = (_SqliteStage if is_sqlite else _PostgresStage)(conn, spec, batch.id)
        categories, regions = _reference(conn)
        conn.commit()
        stage.create()
        reader = job.opener(guard)
        try:
            processor = _Processor(
                spec=spec, mapping=job.mapping, source=job.source,
                register_new=job.register_new, tz=job.tz, categories=categories,
                regions=regions, headers=reader.headers, ts_suffix="" if is_sqlite else "+00",
                date_order=job.date_order, max_text_chars=job.limits.max_text_chars,
                coverage=job.coverage)
            started = False
            for chunk in reader.chunks():
                processed = processor.process(chunk)
                if not started:  # before the first prepare: a bulk load keeps file order
                    stage.start(first_chunk=processed.received, chunk_rows=job.chunk_rows)
                    started = True
                stage.write(stage.prepare(processed), processed.rejected)
                _add(totals, processed)
                guard.tick()
                if not checked:
                    checked = _check_fingerprint(session_factory, job, batch, wait=False)
                heart.beat({"rows": totals.received, "rejected": totals.rejected,
                            "bytes_read": reader.position(), "bytes_total": reader.size,
                            "phase": "reading"})
            _check_fingerprint(session_factory, job, batch, wait=True)
            _closing_warnings(totals, processor, stage, job)
            guard.tick()
            heart.beat({"rows": totals.received, "rejected": totals.rejected,
                        "bytes_read": reader.position(), "bytes_total": reader.size,
                        "phase": "publishing"}, force=True)
            status = "rejected" if totals.received and totals.valid == 0 else "completed"
            options = {**job.options(), "format": reader.format, "encoding": reader.encoding,
                       "columns": processor.columns, "date_order": processor.decided_order}
            totals.inserted = _publish(conn, stage, spec, batch, totals, status, options,
                                       is_sqlite)
        finally:
            reader.close()
            try:
                stage.drop()
            except Exception as exc:  # the connection is discarded by the pool then
                log.warning("import_stage_drop_failed", batch_id=batch.id,
                            error_type=type(exc).__name__)
    return _summary(batch, spec, job, reader, totals, status, options)


def _closing_warnings(totals: _Totals, processor: _Processor, stage: _Stage,
                      job: ImportJob) -> None:
    """Warnings once the file is read: no data rows, texts cut, the processor's own; and,
    unless forced, drop the records already stored under another source (with a warning)."""
    if totals.received == 0:
        totals.warnings.append("the file has a header but no data rows: nothing "
                               "was imported")
    if processor.truncated:
        totals.warnings.append(
            f"{processor.truncated:,} texts were longer than "
            f"{job.limits.max_text_chars:,} characters (imports.max_text_chars) and "
            "were cut, with a marker")
    totals.warnings.extend(processor.warnings)
    if not job.force:
        others = stage.drop_duplicates_of_other_sources()
        if others:
            totals.warnings.append(other_sources_warning(others))


def _summary(batch: _BatchRef, spec: KindSpec, job: ImportJob, reader: TableReader,
             totals: _Totals, status: str, options: dict[str, Any]) -> BatchSummary:
    errors = sorted(totals.errors, key=lambda e: e.row)
    return BatchSummary(
        batch_id=batch.id, kind=cast(Any, spec.kind), status=cast(Any, status),
        received=totals.received, inserted=totals.inserted,
        duplicates=totals.valid - totals.inserted, rejected=totals.rejected,
        errors=errors, errors_truncated=totals.rejected > len(errors), source=job.source,
        filename=job.filename, format=reader.format, encoding=reader.encoding,
        registered_categories=list(totals.new_categories),
        registered_regions=list(totals.new_regions), warnings=totals.warnings,
        coverage=options.get("coverage"), started_at=batch.started_at, finished_at=utcnow(),
    )


class ImportOptions(TypedDict, total=False):
    """The options :func:`import_file` and :func:`import_records` both take (described in
    :func:`import_file`); left out, the :class:`ImportJob` defaults apply."""

    source: str | None
    mapping: dict[str, str] | None
    register_new: bool
    chunk_rows: int
    tz: str
    force: bool
    date_order: str | None
    limits: ImportLimits | None
    coverage: str | Coverage | None


def _job_options(options: ImportOptions) -> dict[str, Any]:
    """``options`` as :class:`ImportJob` fields: the default limits, a parsed coverage."""
    return {**options, "limits": options.get("limits") or ImportLimits(),
            "coverage": declared_coverage(options.get("coverage"))}


def import_file(
    *,
    session_factory: sessionmaker[Session],
    kind: Literal["complaints", "enforcement"],
    path: Path | BinaryIO,
    filename: str | None = None,
    encoding: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    **options: Unpack[ImportOptions],
) -> BatchSummary:
    """Import a CSV / CSV.gz / XLSX / JSON / JSON Lines file of complaints or enforcement
    actions; returns the batch summary.

    The rows are staged chunk by chunk in temporary tables of the importing connection and
    published in one short transaction at the end, so nothing of a file that fails half-way
    is stored, and an import holds the database's write lock only while it publishes.

    Parameters
    ----------
    session_factory
        Bound to the service's engine (SQLite or PostgreSQL).
    kind
        ``complaints`` (fields source, external_id, received_at, category, region, sector,
        channel, text) or ``enforcement`` (source, external_id, occurred_at, category, region,
        action, violation_found, entity_id, sector).
    path
        A path or a binary stream (consumed); ``filename`` names a stream's format
        (``.csv``, ``.csv.gz``, ``.xlsx``, ``.json``, ``.jsonl``); without a name the format is
        sniffed.
    source
        Source of rows without a ``source`` column value.
    mapping
        Canonical field -> source column; wins over the built-in aliases.
    register_new
        Register unknown categories/regions instead of rejecting their rows.
    chunk_rows
        Rows read and staged per chunk (bounds memory).
    tz
        Zone of naive timestamps; ``day`` is the local date in this zone.
    force
        Import a file whose bytes were imported before (refused otherwise, 409), and records
        already stored under another source.
    date_order
        ``dmy``, ``mdy`` or ``ymd``: how dates with the year last (``01/02/2013``) are read;
        by default the file decides (a value above 12), and a file where every such date is
        ambiguous is refused.
    encoding
        The text encoding, instead of detecting it.
    limits
        Size and time limits (default: :class:`ImportLimits` defaults).
    clock
        Monotonic clock of the wall-time limit (tests inject one).
    coverage
        The days the file's sources cover, ``FROM..TO`` (ISO dates, both included); every
        record must fall inside (otherwise 422 naming the data row). Default: each source
        covers its first to last record day. Recorded in ``source_coverage``
        (:mod:`service.store.summary`).

    Returns
    -------
    BatchSummary
        ``status`` is ``completed`` (some or all rows imported; ``warnings`` says when the
        file had no data rows) or ``rejected`` (every row was rejected).

    Raises
    ------
    UnsupportedMediaType
        The file is not a supported format.
    UnprocessableContent
        The file cannot be read, required fields have no column, ambiguous dates, time limit.
    PayloadTooLarge
        A size limit (``limit`` names the setting).
    Conflict
        The same file was imported before (``existing_batch_id``) and ``force`` is off.
    BadRequest
        Invalid arguments (unknown kind, mapping to unknown fields, unknown encoding).

    A file-level error marks the batch ``failed`` and carries its ``batch_id``.
    """
    job = file_job(kind=kind, path=path, filename=filename, encoding=encoding, clock=clock,
                   **_job_options(options))
    return run_import(session_factory, job)


def import_records(
    *,
    session_factory: sessionmaker[Session],
    kind: Literal["complaints", "enforcement"],
    records: list[dict[str, Any]],
    **options: Unpack[ImportOptions],
) -> BatchSummary:
    """Import records given as a list of objects (a JSON request body); see
    :func:`import_file`. A record that is not an object is rejected as ``malformed_record``."""
    job = records_job(kind=kind, records=records, **_job_options(options))
    return run_import(session_factory, job)

