"""Series: daily counts per (signal, category, region), zero-filled over their own coverage.

A series id is ``signal|category|region`` (DESIGN.md), ``signal`` in {complaints, violations}:
``complaints`` counts complaint records, ``violations`` counts enforcement actions that found a
violation. A series' days are those its own sources cover (:mod:`service.store.summary`):
zero-filled there, and a day none of its sources covers is missing (no row), not zero.
Importing another city's or another year's data therefore never adds zeros to, or shifts the
range of, a series it does not touch.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import ColumnElement, Select, func, select, text
from sqlalchemy.orm import Session

from models.series import SIGNALS, InvalidSeriesId, SeriesId
from service.errors import NotFound, UnprocessableContent
from service.store.summary import Interval, merge_intervals, series_coverage
from service.store.tables import Complaint, EnforcementAction, SeriesSource

if TYPE_CHECKING:  # numpy and pandas load on first use: listing series needs neither
    import numpy as np
    import pandas as pd

__all__ = ["SIGNALS", "SeriesId", "parse_series_id", "series_id_matches", "list_series",
           "series_page", "series_counts", "daily_frame", "signal_range", "covered_days"]

def parse_series_id(value: str) -> SeriesId:
    """:meth:`models.series.SeriesId.parse`, a bad id answered as 422 (problem details)."""
    try:
        return SeriesId.parse(value)
    except InvalidSeriesId as exc:
        raise UnprocessableContent(str(exc)) from exc


def series_id_matches(column: Any, *, category: str | None = None,
                      region: str | None = None) -> list[ColumnElement[bool]]:
    """SQL conditions selecting the ids of a series-id ``column`` with this category and/or
    region part (the id's shape is :class:`~models.series.SeriesId`'s; values escaped)."""
    sep = SeriesId.sep
    conds: list[ColumnElement[bool]] = []
    if category:
        conds.append(column.contains(f"{sep}{category}{sep}", autoescape=True))
    if region:
        conds.append(column.endswith(f"{sep}{region}", autoescape=True))
    return conds


def _source(signal: str) -> tuple[Any, ColumnElement[bool] | None]:
    if signal == "complaints":
        return Complaint, None
    return EnforcementAction, EnforcementAction.violation_found.is_(True)


def _filtered(stmt: Select[Any], cond: ColumnElement[bool] | None) -> Select[Any]:
    return stmt if cond is None else stmt.where(cond)


def signal_range(session: Session, signal: str) -> tuple[dt.date, dt.date] | None:
    """First and last record day of any series of ``signal`` (from the series summary)."""
    lo, hi = session.execute(select(func.min(SeriesSource.first_day),
                                    func.max(SeriesSource.last_day))
                             .where(SeriesSource.signal == signal)).one()
    if lo is None:
        return None
    return _as_date(lo), _as_date(hi)


def _as_date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v))


# --------------------------------------------------------------------------- listing
# One indexed read per page: the page's series ids (a DISTINCT over the primary key of
# ``series_sources``, after the cursor, LIMIT), their per-source rows, and the coverage
# intervals of those sources (through ``ix_source_coverage_signal_source``).
_PAGE_SQL = """
SELECT ss.series_id, ss.source, ss.first_day, ss.last_day, ss.total, sc.day_from, sc.day_to
FROM series_sources ss
LEFT JOIN source_coverage sc ON sc.signal = ss.signal AND sc.source = ss.source
WHERE ss.series_id IN (
    SELECT DISTINCT series_id FROM series_sources
    WHERE series_id > :after{signal}
    ORDER BY series_id LIMIT :limit)
ORDER BY ss.series_id, ss.source
"""
_PAGE = text(_PAGE_SQL.format(signal=""))
_PAGE_OF_SIGNAL = text(_PAGE_SQL.format(signal=" AND signal = :signal"))


def series_page(
    *,
    session: Session,
    after: str | None = None,
    limit: int = 100,
    signal: str | None = None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` series ordered by id, after the id ``after``, from the series summary
    (one indexed read: ``series_sources`` is keyed by series id and source).

    Returns
    -------
    One dict per series: ``id, signal, category, region, first_date, last_date, total``
    (records), ``sources`` (``name, first_date, last_date, total`` per source) and
    ``coverage`` (``from, to``: the days its sources cover, where counts are zero-filled).
    """
    params: dict[str, Any] = {"after": after or "", "limit": int(limit)}
    if signal is not None:
        params["signal"] = signal
    rows = session.execute(_PAGE if signal is None else _PAGE_OF_SIGNAL, params).all()
    out: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    spans: list[Interval] = []
    for sid, source, first, last, total, c_from, c_to in rows:
        if cur is None or cur["id"] != sid:
            if cur is not None:
                cur["coverage"] = [{"from": a, "to": b} for a, b in merge_intervals(spans)]
            parsed = parse_series_id(str(sid))
            cur = {"id": str(sid), "signal": parsed.signal, "category": parsed.category,
                   "region": parsed.region, "first_date": None, "last_date": None, "total": 0,
                   "sources": [], "coverage": []}
            out.append(cur)
            spans = []
        sources: list[dict[str, Any]] = cur["sources"]
        if not sources or sources[-1]["name"] != source:
            a, b = _as_date(first), _as_date(last)
            sources.append({"name": str(source), "first_date": a, "last_date": b,
                            "total": int(total)})
            cur["first_date"] = a if cur["first_date"] is None else min(cur["first_date"], a)
            cur["last_date"] = b if cur["last_date"] is None else max(cur["last_date"], b)
            cur["total"] += int(total)
        if c_from is not None:
            spans.append((_as_date(c_from), _as_date(c_to)))
    if cur is not None:
        cur["coverage"] = [{"from": a, "to": b} for a, b in merge_intervals(spans)]
    return out


def list_series(*, session: Session, signal: str | None = None) -> list[dict[str, Any]]:
    """Every series (see :func:`series_page`), read page by page."""
    out: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = series_page(session=session, after=after, limit=1000, signal=signal)
        out.extend(page)
        if len(page) < 1000:
            return out
        after = page[-1]["id"]


# --------------------------------------------------------------------------- counts
def covered_days(intervals: list[Interval], *, date_from: dt.date | None = None,
                 date_to: dt.date | None = None) -> np.ndarray:
    """Every day of ``intervals`` (sorted, disjoint) within [from, to], ``datetime64[D]``."""
    import numpy as np

    parts = []
    for a, b in intervals:
        lo = max(a, date_from) if date_from else a
        hi = min(b, date_to) if date_to else b
        if lo <= hi:
            parts.append(np.arange(np.datetime64(lo, "D"), np.datetime64(hi, "D")
                                   + np.timedelta64(1, "D")))
    if not parts:
        return np.array([], dtype="datetime64[D]")
    return np.concatenate(parts)


def _empty_frame() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({"unique_id": pd.Series(dtype=str),
                         "ds": pd.Series(dtype="datetime64[ns]"),
                         "y": pd.Series(dtype=float)})


def daily_frame(
    *,
    session: Session,
    signal: str = "complaints",
    until: dt.date | None = None,
    series_ids: list[str] | None = None,
    category: str | None = None,
    region: str | None = None,
) -> pd.DataFrame:
    """Daily counts of the series of ``signal``, each over the days its own sources cover.

    Parameters
    ----------
    until : last day (inclusive); each series ends at ``min(its coverage end, until)``.
    series_ids, category, region : only these series (filtered in SQL).

    Returns
    -------
    DataFrame ``unique_id, ds, y`` (``ds`` tz-naive midnight), sorted by ``unique_id, ds``:
    one row per covered day (0 where no record), no row for a day the series' sources do not
    cover (before its first source starts, between two covered periods, after its last one
    ends).
    """
    import numpy as np
    import pandas as pd

    coverage = series_coverage(session, signal=signal, series_ids=series_ids,
                               category=category, region=region)
    if not coverage:
        return _empty_frame()
    table, cond = _source(signal)
    last = max(iv[-1][1] for iv in coverage.values() if iv) if any(
        coverage.values()) else None
    if last is None:
        return _empty_frame()
    if until is not None:
        last = min(last, until)
    stmt = _filtered(
        select(table.category, table.region, table.day, func.count())
        .where(table.day <= last)
        .group_by(table.category, table.region, table.day),
        cond,
    )
    if category is not None:
        stmt = stmt.where(table.category == category)
    if region is not None:
        stmt = stmt.where(table.region == region)
    uids = sorted(coverage)
    days_of = [covered_days(coverage[u], date_to=until) for u in uids]
    lengths = np.fromiter((len(d) for d in days_of), dtype=np.int64, count=len(uids))
    if not lengths.sum():
        return _empty_frame()
    days = np.concatenate(days_of).astype(np.int64)
    codes = np.repeat(np.arange(len(uids), dtype=np.int64), lengths)
    span = int(days.max()) - int(days.min()) + 1
    base = int(days.min())
    keys = codes * span + (days - base)  # sorted: uids sorted, days ascending per uid
    y = np.zeros(len(keys))
    rows = session.execute(stmt).all()
    if rows:
        raw = pd.DataFrame(rows, columns=["category", "region", "ds", "y"])
        uid = SeriesId.compose(signal, raw["category"], raw["region"])
        code = pd.Index(uids).get_indexer(pd.Index(uid))
        rday = pd.to_datetime(raw["ds"]).to_numpy("datetime64[D]").astype(np.int64)
        ok = (code >= 0) & (rday >= base) & (rday < base + span)
        rkeys = code[ok] * span + (rday[ok] - base)
        pos = np.searchsorted(keys, rkeys)
        pos_ok = pos < len(keys)
        hit = np.zeros(len(rkeys), dtype=bool)
        hit[pos_ok] = keys[pos[pos_ok]] == rkeys[pos_ok]
        y[pos[hit]] = raw["y"].to_numpy(dtype=float)[ok][hit]
    return pd.DataFrame({
        "unique_id": np.asarray(uids, dtype=object)[codes],
        "ds": days.astype("datetime64[D]").astype("datetime64[ns]"),
        "y": y,
    })


def series_counts(
    *,
    session: Session,
    series_id: str,
    freq: Literal["D", "W"] = "D",
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> pd.DataFrame:
    """Counts of one series over the days its sources cover, daily or per ISO week (Monday
    label); days no source of the series covers are left out (missing, not zero).

    Returns
    -------
    DataFrame ``date, count, days``: ``days`` is the number of covered days the point sums
    (1 for a day; 7 for a complete week).
    """
    import pandas as pd

    from models.series import week_start

    sid = parse_series_id(series_id)
    if date_from and date_to and date_from > date_to:
        raise UnprocessableContent("'from' is after 'to'")
    intervals = series_coverage(session, signal=sid.signal, series_ids=[series_id]).get(
        series_id)
    if not intervals:
        raise NotFound(f"series '{series_id}' has no records")
    table, cond = _source(sid.signal)
    days = covered_days(intervals, date_from=date_from, date_to=date_to)
    if not len(days):
        return pd.DataFrame({"date": pd.Series(dtype=object), "count": pd.Series(dtype=int),
                             "days": pd.Series(dtype=int)})
    lo, hi = days[0].astype(dt.date), days[-1].astype(dt.date)
    stmt = _filtered(
        select(table.day, func.count())
        .where(table.category == sid.category, table.region == sid.region,
               table.day >= lo, table.day <= hi)
        .group_by(table.day),
        cond,
    )
    raw = pd.DataFrame(session.execute(stmt).all(), columns=["date", "count"])
    index = pd.DatetimeIndex(days.astype("datetime64[ns]"))
    s = pd.Series(raw["count"].to_numpy(), index=pd.DatetimeIndex(pd.to_datetime(raw["date"])),
                  dtype=float)
    s = s.reindex(index, fill_value=0.0)
    n = pd.Series(1, index=index)
    if freq == "W":
        weeks = week_start(index).to_numpy()
        s = s.groupby(weeks).sum()
        n = n.groupby(weeks).sum()
    return pd.DataFrame({"date": pd.DatetimeIndex(s.index).date,
                         "count": s.to_numpy().astype(int), "days": n.to_numpy().astype(int)})
