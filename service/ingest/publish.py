"""The publishing transaction of an import: register new codes, copy the staged rows
into the record tables, store the batch's counts and refresh what derives from the
records (:func:`_after_publish`), all in one short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from service.ingest.batches import MAX_ERRORS, RowError, _BatchRef
from service.ingest.limits import Interrupted
from service.ingest.mapping import KindSpec, ReferenceIndex
from service.ingest.rows import _Processed
from service.ingest.staging import _SQLITE_CACHE_KIB, _Stage
from service.store.freshness import mark_stale
from service.store.summary import BatchDelta, refresh_from_batch
from service.store.tables import Category, ImportBatch, Region, utcnow

__all__ = ["PublishedBatch", "other_sources_warning"]


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


#: PostgreSQL transaction-level advisory lock keys serialising the publishes of each kind,
#: so the late check for another source's records sees every publish before its own
_PUBLISH_LOCK = {"complaints": 0x0F0E_1001, "enforcement": 0x0F0E_1002}


def other_sources_warning(others: list[tuple[str, str | None, int]]) -> str:
    """The batch warning for staged records already stored under another source."""
    n = sum(k for _, _, k in others)
    src, bid, _ = others[0]
    return (f"{n:,} records were already stored under another source ('{src}', batch "
            f"{bid or '-'}) with the same id, time, category and region; they were skipped "
            "as duplicates (import with --force / force=true to store them again)")


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
        if not is_sqlite:  # publishes of a kind one at a time (SQLite: its write lock)
            conn.execute(select(func.pg_advisory_xact_lock(_PUBLISH_LOCK[spec.kind])))
        late = stage.drop_duplicates_of_other_sources(late=True)
        if late:  # another source's import published the same records since the first check
            totals.warnings.append(other_sources_warning(late))
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
