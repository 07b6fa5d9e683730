"""Sources, their coverage, and the series summary (DESIGN.md "Sources and coverage").

Two tables, both written in the transaction that writes an import's records:

- ``source_coverage`` — the days a source covers for a signal: one row per (import batch,
  source), from the batch's first to its last record day, or the coverage the import declared
  (``--coverage FROM..TO``). A later import of the same source adds its own interval; a source
  covers the union of its intervals (two years imported apart cover both years, not the gap
  between them).
- ``series_sources`` — the series summary: per (series, source) the first and last record day
  and the number of records (``violations`` counts actions that found a violation).

:func:`refresh_from_batch` maintains both from one batch's records and is called once, after
the batch's records are written (``service.ingest.pipeline``); :func:`rebuild` recomputes
both from all records (the migration's backfill, and records written outside an import).

A series covers the union of its own sources' coverage: its daily counts are zero-filled
over those days only, and a day none of them covers is missing, not zero
(:func:`series_coverage`, used by :mod:`service.store.series`).

The declared coverage and the reading of covered days are :mod:`service.store.coverage`; the
per-chunk aggregate of an import's rows is :mod:`service.store.batch_delta`. This module
re-exports their public names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, func, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.series import SeriesId
from service.errors import UnprocessableContent
from service.store.batch_delta import BatchDelta, table_of
from service.store.coverage import (
    Coverage,
    Interval,
    as_date,
    check_declared,
    merge_intervals,
    parse_coverage,
    series_coverage,
    source_intervals,
    summary_version,
)
from service.store.tables import (
    Complaint,
    EnforcementAction,
    ImportBatch,
    SeriesSource,
    SourceCoverage,
    utcnow,
)

__all__ = [
    "SIGNAL_OF_KIND",
    "BatchDelta",
    "Coverage",
    "Interval",
    "parse_coverage",
    "check_declared",
    "refresh_from_batch",
    "rebuild",
    "rebuild_session",
    "merge_intervals",
    "source_intervals",
    "series_coverage",
    "summary_version",
]

#: The signal an import kind feeds.
SIGNAL_OF_KIND = {"complaints": "complaints", "enforcement": "violations"}


def _signal_selects(kind: str) -> list[tuple[str, Any, Any]]:
    """``(signal, table, extra condition)`` of the series an import kind writes."""
    if kind == "complaints":
        return [("complaints", Complaint, None)]
    return [("violations", EnforcementAction, EnforcementAction.violation_found.is_(True))]


def _upsert_summary(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Add per-(series, source) first/last/total to the summary, atomically per row (two
    imports publishing at once on PostgreSQL both count)."""
    if not rows:
        return
    t: Any = SeriesSource.__table__
    ins: Any
    lo: Any
    hi: Any
    if conn.dialect.name == "postgresql":
        ins, lo, hi = postgresql.insert(t), func.least, func.greatest
    else:
        ins, lo, hi = sqlite.insert(t), func.min, func.max
    stmt = ins.on_conflict_do_update(
        index_elements=["series_id", "source"],
        set_={"first_day": lo(t.c.first_day, ins.excluded.first_day),
              "last_day": hi(t.c.last_day, ins.excluded.last_day),
              "total": t.c.total + ins.excluded.total})
    for i in range(0, len(rows), 1000):
        conn.execute(stmt, rows[i:i + 1000])


def refresh_from_batch(conn: Connection, *, batch_id: str,
                       delta: BatchDelta | None = None) -> None:
    """Add one import batch to the series summary and to its sources' coverage.

    Call it once, in the transaction that wrote the batch's records, after they are written
    (records carry ``batch_id``; rows the batch found already stored are not its own and are
    not counted again). Reads the batch's kind, source and declared coverage
    (``options["coverage"]``) from ``import_batches``. With ``delta`` (the rows the batch
    inserted, see :class:`BatchDelta`) it reads nothing else; without, it reads the batch's
    records back (a scan of the records table: pass a delta for large tables).

    Raises
    ------
    UnprocessableContent
        A record of the batch lies outside the coverage it declared.
    """
    batch = conn.execute(select(ImportBatch.kind, ImportBatch.source, ImportBatch.options)
                         .where(ImportBatch.id == batch_id)).one_or_none()
    if batch is None:
        raise ValueError(f"no import batch {batch_id!r}")
    kind, batch_source, options = batch
    declared = parse_coverage((options or {}).get("coverage"))
    table = table_of(kind)
    signal = SIGNAL_OF_KIND[kind]
    now = utcnow()
    cover: dict[str, Interval]
    if delta is not None:
        stored = delta.rows
        cover = {src: (as_date(a), as_date(b)) for src, (a, b, _) in delta.sources.items()}
    else:
        spans = conn.execute(select(table.source, func.min(table.day), func.max(table.day),
                                    func.count())
                             .where(table.batch_id == batch_id).group_by(table.source)).all()
        cover = {str(src): (as_date(a), as_date(b)) for src, a, b, _ in spans}
        stored = sum(int(n) for *_, n in spans)
    if declared is not None:
        cover = _declared_cover(cover, declared, batch_source)
    if cover:
        conn.execute(insert(SourceCoverage), [
            {"signal": signal, "source": src, "day_from": a, "day_to": b,
             "declared": declared is not None, "batch_id": batch_id, "created_at": now}
            for src, (a, b) in sorted(cover.items())])
    if stored == 0:
        return
    _upsert_summary(conn, _summary_rows(conn, kind, batch_id, delta))


def _declared_cover(cover: dict[str, Interval], declared: Coverage,
                    batch_source: str | None) -> dict[str, Interval]:
    """The declared coverage for every source of the batch (and its own source, also without
    records), once every source's records fall inside it."""
    for source, (a, b) in cover.items():
        if a < declared.first or b > declared.last:
            day = a if a < declared.first else b
            raise UnprocessableContent(
                f"source {source!r}: a record falls on {day}, outside the declared "
                f"coverage {declared}")
    names = set(cover) | ({batch_source.strip()} if batch_source else set())
    return dict.fromkeys(names, (declared.first, declared.last))


def _summary_rows(conn: Connection, kind: str, batch_id: str,
                  delta: BatchDelta | None) -> list[dict[str, Any]]:
    """The batch's per (series, source) first day, last day and count, from ``delta`` or
    read back from its records."""
    rows: list[dict[str, Any]] = []
    for sig, tbl, cond in _signal_selects(kind):
        if delta is not None:
            found: Iterable[tuple[Any, ...]] = [
                (c, r, src, a, b, n) for (c, r, src), (a, b, n) in delta.series.items()]
        else:
            stmt = (select(tbl.category, tbl.region, tbl.source, func.min(tbl.day),
                           func.max(tbl.day), func.count())
                    .where(tbl.batch_id == batch_id)
                    .group_by(tbl.category, tbl.region, tbl.source))
            if cond is not None:
                stmt = stmt.where(cond)
            found = conn.execute(stmt)
        rows += [{"series_id": str(SeriesId(sig, c, r)), "source": src, "signal": sig,
                  "category": c, "region": r, "first_day": as_date(a), "last_day": as_date(b),
                  "total": int(n)}
                 for c, r, src, a, b, n in found]
    return rows


def rebuild(conn: Connection) -> None:
    """Recompute the summary and the coverage from every stored record (inside the caller's
    transaction): per batch and source its first–last record day, or the coverage the batch
    declared; records without a batch count as one import per source."""
    conn.execute(delete(SeriesSource))
    conn.execute(delete(SourceCoverage))
    now = utcnow()
    declared: dict[str, Coverage] = {}
    batch_sources: dict[str, tuple[str, str | None]] = {}
    for bid, kind, source, options in conn.execute(
            select(ImportBatch.id, ImportBatch.kind, ImportBatch.source, ImportBatch.options)
            .where(ImportBatch.status == "completed")):
        try:
            cov = parse_coverage((options or {}).get("coverage"))
        except UnprocessableContent:
            cov = None
        if cov is not None:
            declared[str(bid)] = cov
            batch_sources[str(bid)] = (str(kind), source)
    cover_rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for kind in ("complaints", "enforcement"):
        table = table_of(kind)
        signal = SIGNAL_OF_KIND[kind]
        for bid, source, a, b in conn.execute(
                select(table.batch_id, table.source, func.min(table.day), func.max(table.day))
                .group_by(table.batch_id, table.source)):
            cov = declared.get(str(bid)) if bid is not None else None
            span = (cov.first, cov.last) if cov else (as_date(a), as_date(b))
            cover_rows.append({"signal": signal, "source": source, "day_from": span[0],
                               "day_to": span[1], "declared": cov is not None,
                               "batch_id": bid, "created_at": now})
            if bid is not None:
                seen.add((str(bid), str(source)))
    for bid, cov in declared.items():  # a declared batch's own source, also without records
        kind, source = batch_sources[bid]
        if source and (bid, source.strip()) not in seen:
            cover_rows.append({"signal": SIGNAL_OF_KIND[kind], "source": source.strip(),
                               "day_from": cov.first, "day_to": cov.last, "declared": True,
                               "batch_id": bid, "created_at": now})
    for i in range(0, len(cover_rows), 1000):
        conn.execute(insert(SourceCoverage), cover_rows[i:i + 1000])
    for kind in ("complaints", "enforcement"):
        for sig, tbl, cond in _signal_selects(kind):
            sid = (literal(sig + SeriesId.sep) + tbl.category + literal(SeriesId.sep)
                   + tbl.region)
            stmt = (select(sid, tbl.source, literal(sig), tbl.category, tbl.region,
                           func.min(tbl.day), func.max(tbl.day), func.count())
                    .group_by(tbl.category, tbl.region, tbl.source))
            if cond is not None:
                stmt = stmt.where(cond)
            conn.execute(insert(SeriesSource).from_select(
                ["series_id", "source", "signal", "category", "region", "first_day",
                 "last_day", "total"], stmt))


def rebuild_session(session: Session) -> None:
    """:func:`rebuild` on a session's connection, committed."""
    rebuild(session.connection())
    session.commit()


