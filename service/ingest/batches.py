"""Batch bookkeeping of imports: the batch row (created, claimed, marked failed,
recovered when its process is gone), its heartbeat, file fingerprints, and reading
batches and their rejected rows back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import structlog
from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import BadRequest, Conflict, NotFound, ServiceError
from service.ingest.limits import ImportBusy
from service.ingest.mapping import KINDS, KindSpec
from service.store.owners import owner_gone, process_owner
from service.store.tables import ImportBatch, RejectedRow, new_id, utcnow

__all__ = [
    "MAX_ERRORS",
    "RowError",
    "ImportProgress",
    "BatchSummary",
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


def _spec(kind: str) -> KindSpec:
    try:
        return KINDS[kind]
    except KeyError:
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}, not '{kind}'") from None


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
                          file_sha256=file_sha256, owner=process_owner(), heartbeat_at=utcnow(),
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
        stale = dt.timedelta(seconds=stale_after_seconds)
        dead = [batch_id for batch_id, owner, beat, started in rows
                if owner_gone(owner, beat or started, now=now, stale_after=stale)]
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
        """Also a sign of life for this process's queued batches: they wait (up to the
        queue's length of imports) without a beat of their own, and another host's recovery
        would otherwise take them for a dead process's after ``stale_after_seconds``."""
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        try:
            with self.sf() as s:
                s.execute(update(ImportBatch).where(ImportBatch.id == self.batch_id)
                          .where(ImportBatch.status == "running")
                          .values(progress=progress, heartbeat_at=utcnow()))
                s.execute(update(ImportBatch).where(ImportBatch.owner == process_owner())
                          .where(ImportBatch.status == "queued")
                          .values(heartbeat_at=utcnow()))
                s.commit()
        except OperationalError:  # busy: the next beat will do
            log.info("import_heartbeat_skipped", batch_id=self.batch_id)


def _find_earlier(session_factory: sessionmaker[Session], *, kind: str, sha256: str,
                  exclude: str) -> ImportBatch | None:
    with session_factory() as s:
        return s.scalars(select(ImportBatch).where(
            ImportBatch.file_sha256 == sha256, ImportBatch.kind == kind,
            ImportBatch.status == "completed", ImportBatch.id != exclude)
            .order_by(ImportBatch.started_at).limit(1)).first()


def _already_imported(earlier: ImportBatch) -> Conflict:
    when = earlier.started_at
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


def records_sha256(records: list[Any]) -> str:
    """Fingerprint of a list of JSON records (canonical JSON, keys sorted)."""
    return hashlib.sha256(json.dumps(records, sort_keys=True, ensure_ascii=False,
                                     default=str).encode()).hexdigest()


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
        started_at=batch.started_at, finished_at=batch.finished_at,
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
