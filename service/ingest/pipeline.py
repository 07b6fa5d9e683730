"""Import pipeline: read -> map -> validate -> redact -> stage -> publish.

Bookkeeping: the :class:`~service.store.tables.ImportBatch` row is created (``running``, or
``queued`` by the API for a background import) and committed first. The file is read in
chunks; each chunk's valid rows and rejected rows are written to the importing connection's
own temporary staging tables and committed there (SQLite's ``temp`` database, PostgreSQL's
session temporary tables): this takes no lock on the real tables, however long the file.
At the end one short transaction publishes: it registers new categories/regions, copies the
staged rows into the record table (``INSERT ... SELECT ... ON CONFLICT DO NOTHING``), copies
the rejected rows, sets the batch's counts and status, runs :func:`_after_publish` and commits.
On SQLite its first statement takes the write lock (waiting up to the busy timeout; still
locked after that: 503 with ``Retry-After``). If anything fails before the commit nothing of
the batch is stored and the batch is marked ``failed`` with the error; a process killed
mid-way leaves the batch ``running`` with nothing published, and :func:`recover_interrupted`
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
Each rejected row is stored once, with the first problem found (see :data:`PROBLEMS`), its
field and its non-personal raw values, redacted (each cut to 1,000 characters).

Dates with the year last (``01/02/2013``) are read in one order per file: the caller's
(``date_order``), or the one a value above 12 settles in the first chunk holding such dates;
a file where every such date could be either is refused with that advice.

Limits: see :mod:`service.ingest.limits`; complaint texts longer than ``max_text_chars`` are
cut (after a whole number, never inside one) with a marker.

Writers: SQLite stages with ``executemany`` on the raw ``sqlite3`` connection (rows sorted by
the series index per chunk, except in a bulk load into a near-empty table: there rows stay in
file order and the series index is dropped and rebuilt inside the publishing transaction);
PostgreSQL stages with ``COPY``. Foreign-key checks are off while publishing on SQLite:
every code was read from the reference tables (which imports only add to) or is registered
in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import structlog
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.config import DEFAULT_TIMEZONE
from service.errors import BadRequest, Conflict, NotFound, ServiceError, UnprocessableContent
from service.ingest.limits import Guard, ImportBusy, ImportLimits, Interrupted
from service.ingest.mapping import KINDS, KindSpec, ReferenceIndex, normalise_header
from service.ingest.readers import TableReader, check_encoding_name, open_reader, records_reader
from service.ingest.redact import is_personal_header
from service.ingest.rows import PROBLEMS, _Processed, _Processor
from service.ingest.rows import _longer_than_each as _longer_than_each
from service.ingest.rows import _strip_nulls as _strip_nulls
from service.ingest.staging import _SQLITE_CACHE_KIB, _Stage
from service.ingest.staging import _PostgresStage as _PostgresStage
from service.ingest.staging import _SqliteStage as _SqliteStage
from service.ingest.timestamps import DATE_ORDERS
from service.store.base import as_utc
from service.store.freshness import mark_stale
from service.store.summary import BatchDelta, Coverage, parse_coverage, refresh_from_batch
from service.store.tables import Category, ImportBatch, Region, RejectedRow, new_id, utcnow

__all__ = [
    "MAX_ERRORS",
    "PROBLEMS",
    "RowError",
    "BatchSummary",
    "ImportProgress",
    "ImportJob",
    "PublishedBatch",
    "import_file",
    "import_records",
    "file_job",
    "records_job",
    "run_import",
    "queue_import",
    "create_batch",
    "recover_interrupted",
    "file_sha256",
    "records_sha256",
    "get_batch",
    "iter_rejected",
]

log = structlog.get_logger(__name__)

MAX_ERRORS = 1000


class RowError(BaseModel):
    """One rejected row: its data row number (1 = the first row after the header; not the
    file's line number), field, problem and detail."""

    row: int = Field(description="Data row, 1-based, header excluded (not the file line)")
    field: str | None
    problem: str = Field(examples=["unknown_category"])
    detail: str


class ImportProgress(BaseModel):
    """How far a queued or running batch is."""

    rows: int = 0
    rejected: int = 0
    bytes_read: int = 0
    bytes_total: int | None = None
    phase: str | None = Field(None, description="reading or publishing")


class BatchSummary(BaseModel):
    """Outcome of one import (also the state of a batch read back later)."""

    batch_id: str
    kind: Literal["complaints", "enforcement"]
    status: Literal["queued", "running", "completed", "rejected", "failed"] = Field(
        description="completed: rows were imported (or the file had none, see warnings); "
                    "rejected: every row was rejected; failed: the file as a whole (error)")
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[RowError] = Field(default_factory=list)
    errors_truncated: bool = False
    source: str | None = None
    filename: str | None = None
    format: str | None = None
    encoding: str | None = None
    coverage: str | None = Field(None, description="The declared coverage FROM..TO, if any",
                                 examples=["2014-01-01..2014-12-31"])
    registered_categories: list[str] = Field(default_factory=list)
    registered_regions: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None
    progress: ImportProgress | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None


# ------------------------------------------------------------------ batches


def _spec(kind: str) -> KindSpec:
    try:
        return KINDS[kind]
    except KeyError:
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}, not '{kind}'") from None


def _engine_of(session_factory: sessionmaker[Session]) -> Engine:
    with session_factory() as s:
        bind = s.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


_PROCESS_TOKEN = uuid.uuid4().hex[:12]


def _owner() -> str:
    """``host:pid:token`` of this process (the token tells a restarted process with the
    same pid, as in a container, from the one that crashed)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_PROCESS_TOKEN}"


@dataclass(frozen=True)
class _BatchRef:
    id: str
    kind: str
    started_at: dt.datetime


@contextmanager
def _busy_is_503() -> Iterator[None]:
    """A database still locked after the busy timeout (SQLite) is a 503, not a 500."""
    try:
        yield
    except (OperationalError, sqlite3.OperationalError) as exc:
        text = str(getattr(exc, "orig", exc)).lower()
        if "locked" in text or "busy" in text:
            raise ImportBusy("the database is busy with another import; nothing of this one "
                             "was published; retry in a minute") from exc
        raise


def create_batch(
    session_factory: sessionmaker[Session], *, kind: str, source: str | None,
    filename: str | None, options: dict[str, Any], status: str = "running",
    file_sha256: str | None = None,
) -> _BatchRef:
    """Store a new batch (``running``, or ``queued`` for a background import)."""
    spec = _spec(kind)
    if source is not None and len(source.strip()) > spec.max_len["source"]:
        raise BadRequest(f"source is longer than {spec.max_len['source']} characters")
    ref = _BatchRef(id=new_id(), kind=kind, started_at=utcnow())
    with _busy_is_503(), session_factory() as s:
        s.add(ImportBatch(id=ref.id, kind=kind, source=source, filename=filename,
                          status=status, options=options, started_at=ref.started_at,
                          file_sha256=file_sha256, owner=_owner(), heartbeat_at=utcnow(),
                          progress={"rows": 0, "bytes_read": 0}))
        s.commit()
    return ref


def _mark_failed(session_factory: sessionmaker[Session], batch_id: str, exc: BaseException,
                 message: str | None = None) -> None:
    if message is None:
        message = exc.detail if isinstance(exc, ServiceError) else \
            f"{type(exc).__name__}: {exc}"
    try:
        with session_factory() as s:
            s.execute(update(ImportBatch).where(ImportBatch.id == batch_id).values(
                status="failed", error=message[:2000], finished_at=utcnow(),
                received=0, inserted=0, duplicates=0, rejected=0))
            s.commit()
    except Exception as mark_exc:  # the original error matters more
        log.error("import_mark_failed_error", batch_id=batch_id,
                  error_type=type(mark_exc).__name__)


def _process_alive(owner: str | None) -> bool | None:
    """Whether the process named by ``owner`` runs (``None``: cannot tell, another host)."""
    if not owner or owner.count(":") != 2:
        return None
    host, pid_text, token = owner.split(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    if token == _PROCESS_TOKEN:
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # an earlier process with this pid (a restarted container)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_interrupted(session_factory: sessionmaker[Session], *,
                        stale_after_seconds: float = 900.0) -> list[str]:
    """Mark ``failed`` ("interrupted") the batches left ``queued`` or ``running`` by a process
    that is gone (same host: its pid no longer runs, or is this process's pid under another
    start token; another host: no sign of life for ``stale_after_seconds``). Nothing of them
    was published (they only ever wrote their own temporary staging tables). Returns their
    ids; called at API start-up and before a CLI import."""
    now = utcnow()
    with session_factory() as s:
        rows = s.execute(select(ImportBatch.id, ImportBatch.owner, ImportBatch.heartbeat_at,
                                ImportBatch.started_at)
                         .where(ImportBatch.status.in_(("queued", "running")))).all()
        dead = []
        for batch_id, owner, beat, started in rows:
            last = as_utc(beat) or as_utc(started) or now
            alive = _process_alive(owner)  # same host: known; another host: None
            if alive is False or (alive is None and
                                  (now - last).total_seconds() > stale_after_seconds):
                dead.append(batch_id)
        if dead:
            s.execute(update(ImportBatch).where(ImportBatch.id.in_(dead)).where(
                ImportBatch.status.in_(("queued", "running"))).values(
                status="failed", finished_at=now, received=0, inserted=0, duplicates=0,
                rejected=0, error="interrupted: the process importing this batch stopped "
                "(a crash or a restart) before it finished; nothing of it was published; "
                "import the file again"))
            s.commit()
            log.warning("import_batches_interrupted", count=len(dead))
    return dead


def _reference(conn: Connection) -> tuple[ReferenceIndex, ReferenceIndex]:
    cats = conn.execute(select(Category.code, Category.name_zh, Category.name_en,
                               Category.aliases)).all()
    regs = conn.execute(select(Region.code, Region.name_zh, Region.name_en,
                               Region.aliases)).all()
    return (ReferenceIndex((r[0], r[1], r[2], r[3]) for r in cats),
            ReferenceIndex(((r[0], r[1], r[2], r[3]) for r in regs), strip_suffixes=True))


def _register(conn: Connection, table: Any, new: dict[str, str]) -> None:
    if not new:
        return
    ins = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    values: list[dict[str, Any]] = []
    for code, raw in new.items():
        row: dict[str, Any] = {"code": code, "name_zh": raw[:200], "name_en": raw[:200],
                               "aliases": [], "registered_by_import": True}
        if table is Category.__table__:
            row.update(lead_days=14, legal_basis=[], templates={})
        else:
            row.update(level="unknown", parent=None)
        values.append(row)
    conn.execute(ins(cast(Table, table)).on_conflict_do_nothing(index_elements=["code"]),
                 values)


@dataclass
class _Totals:
    received: int = 0
    valid: int = 0
    rejected: int = 0
    inserted: int = 0
    errors: list[RowError] = field(default_factory=list)
    new_categories: dict[str, str] = field(default_factory=dict)
    new_regions: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)


class _Heartbeat:
    """Progress and a sign of life of a running batch, written at most every ``every``
    seconds in a short transaction of its own."""

    def __init__(self, session_factory: sessionmaker[Session], batch_id: str,
                 every: float = 2.0) -> None:
        self.sf = session_factory
        self.batch_id = batch_id
        self.every = every
        self.last = time.monotonic()

    def beat(self, progress: dict[str, Any], *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        try:
            with self.sf() as s:
                s.execute(update(ImportBatch).where(ImportBatch.id == self.batch_id)
                          .where(ImportBatch.status == "running")
                          .values(progress=progress, heartbeat_at=utcnow()))
                s.commit()
        except OperationalError:  # busy: the next beat will do
            log.info("import_heartbeat_skipped", batch_id=self.batch_id)


def _after_publish(conn: Connection, batch: PublishedBatch) -> None:
    """The one place that runs inside the publishing transaction after a batch's records
    were written and before it commits: derived tables that must agree with the records
    are refreshed here from ``batch`` -- the sources' coverage and the series summary
    (:func:`service.store.summary.refresh_from_batch`, from the records the batch added: a
    range of the primary key above ``batch.mark``). It must not commit."""
    delta = BatchDelta(batch.kind)
    delta.added(conn, batch_id=batch.batch_id, mark=batch.mark)
    refresh_from_batch(conn, batch_id=batch.batch_id, delta=delta)
    mark_stale(conn, "import")  # new records: the materialised evaluation is recomputed


@dataclass(frozen=True)
class PublishedBatch:
    """What :func:`_after_publish` gets: the batch, its kind and what it published."""

    batch_id: str
    kind: str
    table: str
    inserted: int
    sources: tuple[str, ...]
    mark: int = 0  # the highest record id before the batch was published


def _find_earlier(session_factory: sessionmaker[Session], *, kind: str, sha256: str,
                  exclude: str) -> ImportBatch | None:
    with session_factory() as s:
        return s.scalars(select(ImportBatch).where(
            ImportBatch.file_sha256 == sha256, ImportBatch.kind == kind,
            ImportBatch.status == "completed", ImportBatch.id != exclude)
            .order_by(ImportBatch.started_at).limit(1)).first()


def _already_imported(earlier: ImportBatch) -> Conflict:
    when = as_utc(earlier.started_at)
    stamp = when.strftime("%Y-%m-%d %H:%M UTC") if when else "earlier"
    return Conflict(
        f"this file was already imported as batch {earlier.id} ({stamp}, source "
        f"{earlier.source or '-'}, {earlier.inserted:,} records inserted); nothing was "
        "imported; to import it again anyway use --force (API: force=true); rows already "
        "stored under the same source are still skipped as duplicates",
        existing_batch_id=earlier.id)


class _Hasher(threading.Thread):
    """SHA-256 of a file on a thread of its own (hashlib releases the GIL), so fingerprinting
    a large file overlaps with importing it."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True, name="import-hash")
        self.path = path
        self.digest: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            h = hashlib.sha256()
            with open(self.path, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
            self.digest = h.hexdigest()
        except BaseException as exc:  # reported by the importer
            self.error = exc


def file_sha256(stream: BinaryIO) -> str:
    """SHA-256 of a seekable stream's bytes (the position is restored)."""
    pos = stream.tell()
    stream.seek(0)
    h = hashlib.sha256()
    while block := stream.read(1 << 20):
        h.update(block)
    stream.seek(pos)
    return h.hexdigest()


# ------------------------------------------------------------------ the import


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


def _validate(job: ImportJob) -> KindSpec:
    spec = _spec(job.kind)
    if job.chunk_rows < 1:
        raise BadRequest("chunk_rows must be positive")
    if job.date_order is not None and job.date_order not in DATE_ORDERS:
        raise BadRequest(f"date_order must be one of {', '.join(DATE_ORDERS)}, not "
                         f"'{job.date_order}'")
    if job.source is not None and len(job.source.strip()) > spec.max_len["source"]:
        raise BadRequest(f"source is longer than {spec.max_len['source']} characters")
    return spec


def run_import(session_factory: sessionmaker[Session], job: ImportJob,
               batch: _BatchRef | None = None) -> BatchSummary:
    """Run ``job`` into ``batch`` (a queued one) or a new batch; returns its summary.

    File-level failures (unreadable file, a limit, a file already imported) mark the batch
    ``failed`` and are raised with the batch's id in the problem (``batch_id``).
    """
    try:
        spec = _validate(job)
        if batch is None:
            batch = create_batch(session_factory, kind=job.kind, source=job.source,
                                 filename=job.filename, options=job.options(),
                                 file_sha256=job.sha256)
        else:
            with _busy_is_503(), session_factory() as s:
                claimed = s.execute(update(ImportBatch).where(ImportBatch.id == batch.id)
                                    .where(ImportBatch.status == "queued").values(
                    status="running", owner=_owner(), heartbeat_at=utcnow()))
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
    _validate(job)
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
                    n = sum(k for _, _, k in others)
                    src, bid, _ = others[0]
                    totals.warnings.append(
                        f"{n:,} records were already stored under another source ('{src}', "
                        f"batch {bid or '-'}) with the same id, time, category and region; "
                        "they were skipped as duplicates (import with --force / force=true "
                        "to store them again)")
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


def _add(totals: _Totals, p: _Processed) -> None:
    totals.new_categories.update(p.new_categories)
    totals.new_regions.update(p.new_regions)
    totals.received += p.received
    totals.rejected += len(p.rejected)
    totals.valid += p.received - len(p.rejected)
    totals.sources.update(p.columns["source"])
    room = MAX_ERRORS - len(totals.errors)
    for r in p.rejected[:max(room, 0)]:
        totals.errors.append(RowError(row=r["row_number"], field=r["field"],
                                      problem=r["problem"], detail=r["detail"]))


def _publish(conn: Connection, stage: _Stage, spec: KindSpec, batch: _BatchRef,
             totals: _Totals, status: str, options: dict[str, Any], is_sqlite: bool) -> int:
    """One short transaction: register new codes, copy the staged rows, store the counts.
    On SQLite its first statement takes the write lock (waiting up to the busy timeout)."""
    raw: Any = conn.connection.driver_connection
    saved = {}
    if is_sqlite:
        saved = {"foreign_keys": raw.execute("PRAGMA foreign_keys").fetchone()[0],
                 "cache_size": raw.execute("PRAGMA cache_size").fetchone()[0]}
        # every code was read from the reference tables (which imports only add to) or is
        # registered below, in this transaction
        raw.execute("PRAGMA foreign_keys=OFF")
        raw.execute(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
    try:
        claimed = conn.execute(update(ImportBatch).where(ImportBatch.id == batch.id)
                               .where(ImportBatch.status == "running")
                               .values(heartbeat_at=utcnow()))
        if claimed.rowcount != 1:
            raise Interrupted("the batch was marked interrupted or failed while it ran; "
                              "nothing of it was published; import the file again")
        _register(conn, Category.__table__, totals.new_categories)
        _register(conn, Region.__table__, totals.new_regions)
        delta = BatchDelta(spec.kind)
        mark = delta.mark(conn)  # the records this batch adds have ids above the mark
        inserted = stage.publish()
        sources = tuple(sorted(totals.sources)) if inserted else ()
        conn.execute(update(ImportBatch).where(ImportBatch.id == batch.id).values(
            status=status, received=totals.received, inserted=inserted,
            duplicates=totals.valid - inserted, rejected=totals.rejected,
            warnings=totals.warnings or None, finished_at=utcnow(), options=options,
            progress={"rows": totals.received, "rejected": totals.rejected,
                      "phase": "done"}))
        _after_publish(conn, PublishedBatch(batch_id=batch.id, kind=spec.kind,
                                            table=spec.table, inserted=inserted,
                                            sources=sources, mark=mark))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        if is_sqlite:
            raw.execute(f"PRAGMA foreign_keys={'ON' if saved['foreign_keys'] else 'OFF'}")
            raw.execute(f"PRAGMA cache_size={saved['cache_size']}")
    return inserted


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


def import_file(
    *,
    session_factory: sessionmaker[Session],
    kind: Literal["complaints", "enforcement"],
    path: Path | BinaryIO,
    filename: str | None = None,
    source: str | None = None,
    mapping: dict[str, str] | None = None,
    register_new: bool = False,
    chunk_rows: int = 50_000,
    tz: str = DEFAULT_TIMEZONE,
    force: bool = False,
    date_order: str | None = None,
    encoding: str | None = None,
    limits: ImportLimits | None = None,
    clock: Callable[[], float] = time.monotonic,
    coverage: str | Coverage | None = None,
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
    job = file_job(kind=kind, path=path, filename=filename, encoding=encoding, source=source,
                   mapping=mapping, register_new=register_new, chunk_rows=chunk_rows, tz=tz,
                   force=force, date_order=date_order, limits=limits or ImportLimits(),
                   clock=clock, coverage=declared_coverage(coverage))
    return run_import(session_factory, job)


def declared_coverage(value: str | Coverage | None) -> Coverage | None:
    """A declared coverage ``FROM..TO`` (or None); a malformed one is a 400."""
    try:
        return parse_coverage(value)
    except ServiceError as exc:
        raise BadRequest(exc.detail) from None


def records_sha256(records: list[Any]) -> str:
    """Fingerprint of a list of JSON records (canonical JSON, keys sorted)."""
    return hashlib.sha256(json.dumps(records, sort_keys=True, ensure_ascii=False,
                                     default=str).encode()).hexdigest()


def records_job(*, kind: Literal["complaints", "enforcement"], records: list[dict[str, Any]],
                **options: Any) -> ImportJob:
    """An :class:`ImportJob` over records already in memory (a JSON request body)."""
    if not isinstance(records, list):
        raise BadRequest("records must be a list of objects")
    chunk_rows = int(options.get("chunk_rows", 50_000))
    options.setdefault("sha256", records_sha256(records) if records else None)
    return ImportJob(kind=kind, opener=lambda guard: records_reader(records, chunk_rows, guard),
                     **options)


def import_records(
    *,
    session_factory: sessionmaker[Session],
    kind: Literal["complaints", "enforcement"],
    records: list[dict[str, Any]],
    source: str | None = None,
    mapping: dict[str, str] | None = None,
    register_new: bool = False,
    chunk_rows: int = 50_000,
    tz: str = DEFAULT_TIMEZONE,
    force: bool = False,
    date_order: str | None = None,
    limits: ImportLimits | None = None,
    coverage: str | Coverage | None = None,
) -> BatchSummary:
    """Import records given as a list of objects (a JSON request body); see
    :func:`import_file`. A record that is not an object is rejected as ``malformed_record``."""
    job = records_job(kind=kind, records=records, source=source, mapping=mapping,
                      register_new=register_new, chunk_rows=chunk_rows, tz=tz, force=force,
                      date_order=date_order, limits=limits or ImportLimits(),
                      coverage=declared_coverage(coverage))
    return run_import(session_factory, job)


# ------------------------------------------------------------------ reading batches back


def get_batch(*, session: Session, batch_id: str, max_errors: int = MAX_ERRORS) -> BatchSummary:
    """The summary of a batch with its first ``max_errors`` rejected rows."""
    batch = session.get(ImportBatch, batch_id)
    if batch is None:
        raise NotFound(f"no import batch '{batch_id}'")
    rows = session.scalars(
        select(RejectedRow).where(RejectedRow.batch_id == batch_id)
        .order_by(RejectedRow.row_number, RejectedRow.id).limit(max_errors)
    ).all() if max_errors else []
    opts = batch.options or {}
    progress = batch.progress if batch.status in ("queued", "running") else None
    return BatchSummary(
        batch_id=batch.id, kind=cast(Any, batch.kind), status=cast(Any, batch.status),
        received=batch.received, inserted=batch.inserted, duplicates=batch.duplicates,
        rejected=batch.rejected,
        errors=[RowError(row=r.row_number, field=r.field, problem=r.problem, detail=r.detail)
                for r in rows],
        errors_truncated=batch.rejected > len(rows), source=batch.source,
        filename=batch.filename, format=opts.get("format"), encoding=opts.get("encoding"),
        coverage=opts.get("coverage"), warnings=list(batch.warnings or []), error=batch.error,
        progress=ImportProgress(**progress) if progress else None,
        started_at=as_utc(batch.started_at), finished_at=as_utc(batch.finished_at),
    )


def iter_rejected(
    *, session_factory: sessionmaker[Session], batch_id: str, page: int = 5000
) -> Iterator[tuple[list[str], Iterable[dict[str, Any]]]]:
    """Yield ``(raw columns, rows)`` pages of a batch's rejected rows in row order; each row
    is ``{row, field, problem, detail, raw}``. The raw columns are the file's non-personal
    columns in file order."""
    with session_factory() as s:
        batch = s.get(ImportBatch, batch_id)
        if batch is None:
            raise NotFound(f"no import batch '{batch_id}'")
        columns = [str(c) for c in (batch.options or {}).get("columns", [])]
        last = (-1, -1)
        while True:
            rows = s.execute(
                select(RejectedRow.id, RejectedRow.row_number, RejectedRow.field,
                       RejectedRow.problem, RejectedRow.detail, RejectedRow.raw)
                .where(RejectedRow.batch_id == batch_id)
                .where((RejectedRow.row_number > last[0])
                       | ((RejectedRow.row_number == last[0]) & (RejectedRow.id > last[1])))
                .order_by(RejectedRow.row_number, RejectedRow.id).limit(page)
            ).all()
            if not rows:
                return
            last = (rows[-1].row_number, rows[-1].id)
            yield columns, [{"row": r.row_number, "field": r.field, "problem": r.problem,
                             "detail": r.detail, "raw": r.raw or {}} for r in rows]
