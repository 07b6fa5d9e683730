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
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, func, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.series import SeriesId
from service.errors import UnprocessableContent
from service.store.tables import (
    Complaint,
    EnforcementAction,
    ImportBatch,
    SeriesSource,
    SourceCoverage,
    utcnow,
)

if TYPE_CHECKING:  # numpy and pandas load on first use: reading the summary needs neither
    import numpy as np

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

Interval = tuple[dt.date, dt.date]


@dataclass(frozen=True)
class Coverage:
    """A declared coverage: every day from ``first`` to ``last``, both included."""

    first: dt.date
    last: dt.date

    def __str__(self) -> str:
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


_RANGE = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})\s*\.\.\s*(\d{4}-\d{2}-\d{2})\s*$")


def parse_coverage(value: object) -> Coverage | None:
    """``"2014-01-01..2014-12-31"`` (or a ``{"from": ..., "to": ...}`` object) as a
    :class:`Coverage`; None for None or an empty string.

    Raises
    ------
    UnprocessableContent
        Not of that form, not real dates, or ``FROM`` after ``TO``.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, Coverage):
        return value
    if isinstance(value, Mapping) and set(value) == {"from", "to"}:
        value = f"{value['from']}..{value['to']}"
    m = _RANGE.match(value) if isinstance(value, str) else None
    if m is None:
        raise UnprocessableContent(
            f"coverage {str(value)[:80]!r} is not of the form FROM..TO with ISO dates, "
            "e.g. 2014-01-01..2014-12-31")
    try:
        first, last = (dt.date.fromisoformat(g) for g in m.groups())
    except ValueError as exc:
        raise UnprocessableContent(f"coverage {value!r}: {exc}") from None
    if first > last:
        raise UnprocessableContent(f"coverage {value!r}: FROM is after TO")
    return Coverage(first, last)


def check_declared(coverage: Coverage, days: np.ndarray, rows: np.ndarray,
                   values: Sequence[Any], field: str) -> None:
    """Refuse an import whose records fall outside its declared coverage.

    Parameters
    ----------
    days : local record days (``datetime64[D]``) of the valid rows.
    rows : their data row numbers (1-based); ``values`` their raw time values.

    Raises
    ------
    UnprocessableContent
        Naming the first such row, its value and day, and how many more rows of ``days``
        are outside (an import checks chunk by chunk, so "at least").
    """
    import numpy as np

    if not len(days):
        return
    lo = np.datetime64(coverage.first, "D")
    hi = np.datetime64(coverage.last, "D")
    outside = np.flatnonzero((days < lo) | (days > hi))
    if not len(outside):
        return
    i = int(outside[np.argmin(rows[outside])])
    more = len(outside) - 1
    raise UnprocessableContent(
        f"data row {int(rows[i])}: {field} {str(values[i])[:40]!r} falls on "
        f"{np.datetime_as_string(days[i])}, outside the declared coverage {coverage}"
        + (f" (and at least {more} more row{'s' if more > 1 else ''})" if more else "")
        + "; widen the coverage or leave it out to derive it from the records")


# --------------------------------------------------------------------------- maintenance
class BatchDelta:
    """The rows an import inserted, aggregated chunk by chunk, so that
    :func:`refresh_from_batch` need not read a batch back (seconds per million rows): per
    (category, region, source) the first and last day and the count of the rows the series
    summary counts, and per source the first and last day of every inserted row (coverage).

    Use :meth:`mark` before writing a chunk and :meth:`written` after it: a chunk whose rows
    were all inserted is aggregated from the rows handed to the writer; a chunk with rows
    already stored (duplicates) is aggregated in SQL over the records it added: ``id`` above the
    mark and this batch's ``batch_id`` (a range of the primary key, also on PostgreSQL with
    concurrent imports, whose ids come from one sequence).
    """

    def __init__(self, kind: str = "complaints") -> None:
        self.kind = kind
        self.rows = 0
        self.series: dict[tuple[str, str, str], list[Any]] = {}
        self.sources: dict[str, list[Any]] = {}

    def mark(self, conn: Connection) -> int:
        """The highest record id of the kind's table now (before a chunk is written)."""
        table = _table_of(self.kind)
        return int(conn.scalar(select(func.max(table.id))) or 0)

    def written(self, conn: Connection, *, batch_id: str, columns: Mapping[str, Sequence[Any]],
                inserted: int, mark: int) -> None:
        """Account for one written chunk: ``columns`` are the valid rows handed to the writer
        (``category``, ``region``, ``source``, ``day`` as ISO strings, and for enforcement
        ``violation_found``), ``inserted`` how many records the chunk added, ``mark`` the
        value of :meth:`mark` before it was written."""
        if inserted <= 0:
            return
        counts_col = "violation_found" if self.kind == "enforcement" else None
        if inserted == len(columns["day"]):  # every row handed was inserted
            self.add(category=columns["category"], region=columns["region"],
                     source=columns["source"], day=columns["day"],
                     counts=columns[counts_col] if counts_col else None)
            return
        # some rows were already stored: aggregate the records this chunk added, in SQL
        self.added(conn, batch_id=batch_id, mark=mark)

    def added(self, conn: Connection, *, batch_id: str, mark: int) -> None:
        """Aggregate, in SQL, the records of ``batch_id`` with an id above ``mark`` (a range
        of the primary key: the records the batch added since :meth:`mark`)."""
        t = _table_of(self.kind)
        found = t.violation_found if self.kind == "enforcement" else literal(True)
        stmt = (select(t.category, t.region, t.source, found, func.min(t.day),
                       func.max(t.day), func.count())
                .where(t.id > mark, t.batch_id == batch_id)
                .group_by(t.category, t.region, t.source, found))
        for c, r, src, counted, a, b, n in conn.execute(stmt):
            first, last = _as_date(a).isoformat(), _as_date(b).isoformat()
            self.rows += int(n)
            self._extend(self.sources, str(src), first, last, 0)
            if counted:
                self._extend(self.series, (str(c), str(r), str(src)), first, last, int(n))

    def add(self, *, category: Sequence[Any], region: Sequence[Any], source: Sequence[Any],
            day: Sequence[str], counts: Sequence[Any] | None = None) -> None:
        """Add one chunk of rows (parallel sequences; ``day`` ISO ``YYYY-MM-DD`` strings;
        ``counts`` a boolean per row for the rows the summary counts, default all)."""
        import numpy as np
        import pandas as pd

        n = len(day)
        if n == 0:
            return
        self.rows += n
        cols = [pd.factorize(np.asarray(v, dtype=object)) for v in (category, region, source)]
        d_codes, d_uniq = pd.factorize(np.asarray(day, dtype=object))
        order = np.argsort(np.asarray(d_uniq, dtype=str))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        sorted_days = np.asarray(d_uniq, dtype=object)[order]
        dr = rank[d_codes]
        c, r, s = (np.asarray(codes, dtype=np.int64) for codes, _ in cols)
        cu, ru, su = (np.asarray(u, dtype=object) for _, u in cols)
        for si in np.unique(s):  # coverage: every row
            sel = dr[s == si]
            self._extend(self.sources, str(su[si]), sorted_days[sel.min()],
                         sorted_days[sel.max()], 0)
        if counts is not None:
            keep = np.asarray(counts, dtype=bool)
            c, r, s, dr = c[keep], r[keep], s[keep], dr[keep]
            if not len(dr):
                return
        key = (c * len(ru) + r) * len(su) + s
        order = np.argsort(key, kind="stable")
        k, d = key[order], dr[order]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        lo, hi = np.minimum.reduceat(d, starts), np.maximum.reduceat(d, starts)
        sizes = np.diff(np.r_[starts, len(k)])
        for kk, a, b, m in zip(k[starts], lo, hi, sizes, strict=True):
            ci, rest = divmod(int(kk), len(ru) * len(su))
            ri, si = divmod(rest, len(su))
            self._extend(self.series, (str(cu[ci]), str(ru[ri]), str(su[si])),
                         sorted_days[a], sorted_days[b], int(m))

    @staticmethod
    def _extend(into: dict[Any, list[Any]], key: Any, first: str, last: str, n: int) -> None:
        cur = into.get(key)
        if cur is None:
            into[key] = [first, last, n]
        else:
            cur[0], cur[1], cur[2] = min(cur[0], first), max(cur[1], last), cur[2] + n


def _signal_selects(kind: str) -> list[tuple[str, Any, Any]]:
    """``(signal, table, extra condition)`` of the series an import kind writes."""
    if kind == "complaints":
        return [("complaints", Complaint, None)]
    return [("violations", EnforcementAction, EnforcementAction.violation_found.is_(True))]


def _table_of(kind: str) -> Any:
    return Complaint if kind == "complaints" else EnforcementAction


def _as_date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v))


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
    table = _table_of(kind)
    signal = SIGNAL_OF_KIND[kind]
    now = utcnow()
    cover: dict[str, Interval]
    if delta is not None:
        stored = delta.rows
        cover = {src: (_as_date(a), _as_date(b)) for src, (a, b, _) in delta.sources.items()}
    else:
        spans = conn.execute(select(table.source, func.min(table.day), func.max(table.day),
                                    func.count())
                             .where(table.batch_id == batch_id).group_by(table.source)).all()
        cover = {str(src): (_as_date(a), _as_date(b)) for src, a, b, _ in spans}
        stored = sum(int(n) for *_, n in spans)
    if declared is not None:
        for source, (a, b) in cover.items():
            if a < declared.first or b > declared.last:
                day = a if a < declared.first else b
                raise UnprocessableContent(
                    f"source {source!r}: a record falls on {day}, outside the declared "
                    f"coverage {declared}")
        names = set(cover) | ({batch_source.strip()} if batch_source else set())
        cover = dict.fromkeys(names, (declared.first, declared.last))
    if cover:
        conn.execute(insert(SourceCoverage), [
            {"signal": signal, "source": src, "day_from": a, "day_to": b,
             "declared": declared is not None, "batch_id": batch_id, "created_at": now}
            for src, (a, b) in sorted(cover.items())])
    if stored == 0:
        return
    # summary: per (series, source)
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
                  "category": c, "region": r, "first_day": _as_date(a), "last_day": _as_date(b),
                  "total": int(n)}
                 for c, r, src, a, b, n in found]
    _upsert_summary(conn, rows)


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
        table = _table_of(kind)
        signal = SIGNAL_OF_KIND[kind]
        for bid, source, a, b in conn.execute(
                select(table.batch_id, table.source, func.min(table.day), func.max(table.day))
                .group_by(table.batch_id, table.source)):
            cov = declared.get(str(bid)) if bid is not None else None
            span = (cov.first, cov.last) if cov else (_as_date(a), _as_date(b))
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


# --------------------------------------------------------------------------- reading
def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted union of day intervals; overlapping or adjacent intervals become one."""
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1] + dt.timedelta(days=1):
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def source_intervals(session: Session | Connection, *, signal: str,
                     sources: Iterable[str] | None = None) -> dict[str, list[Interval]]:
    """Merged coverage intervals of each source of ``signal`` (of ``sources`` only, if
    given)."""
    stmt = select(SourceCoverage.source, SourceCoverage.day_from, SourceCoverage.day_to).where(
        SourceCoverage.signal == signal)
    if sources is not None:
        wanted = sorted(set(sources))
        if not wanted:
            return {}
        stmt = stmt.where(SourceCoverage.source.in_(wanted))
    raw: dict[str, list[Interval]] = {}
    for s, a, b in session.execute(stmt):
        raw.setdefault(str(s), []).append((_as_date(a), _as_date(b)))
    return {s: merge_intervals(v) for s, v in raw.items()}


def series_coverage(
    session: Session | Connection,
    *,
    signal: str,
    series_ids: Iterable[str] | None = None,
    category: str | None = None,
    region: str | None = None,
) -> dict[str, list[Interval]]:
    """Covered days of each series of ``signal``: the union of its sources' coverage.

    Returns
    -------
    ``{series_id: [(first, last), ...]}`` with sorted, disjoint, non-adjacent intervals, for
    every series in the summary that matches the filters.
    """
    stmt = select(SeriesSource.series_id, SeriesSource.source).where(
        SeriesSource.signal == signal)
    if category is not None:
        stmt = stmt.where(SeriesSource.category == category)
    if region is not None:
        stmt = stmt.where(SeriesSource.region == region)
    if series_ids is not None:
        ids = sorted(set(series_ids))
        if not ids:
            return {}
        stmt = stmt.where(SeriesSource.series_id.in_(ids))
    by_series: dict[str, set[str]] = {}
    for sid, source in session.execute(stmt):
        by_series.setdefault(str(sid), set()).add(str(source))
    if not by_series:
        return {}
    intervals = source_intervals(session, signal=signal,
                                 sources=set().union(*by_series.values()))
    cache: dict[frozenset[str], list[Interval]] = {}
    out: dict[str, list[Interval]] = {}
    for sid, sources in sorted(by_series.items()):
        key = frozenset(sources)
        if key not in cache:
            cache[key] = merge_intervals(iv for s in sources for iv in intervals.get(s, []))
        out[sid] = cache[key]
    return out


def summary_version(session: Session | Connection) -> tuple[int, int]:
    """A value that changes whenever the summary or the coverage changes: every import that
    writes records adds coverage rows, and ids are never reused (also not by :func:`rebuild`),
    so ``(max id, row count)`` of ``source_coverage`` identifies their state."""
    hi, n = session.execute(select(func.max(SourceCoverage.id), func.count())
                            .select_from(SourceCoverage)).one()
    return int(hi or 0), int(n or 0)
