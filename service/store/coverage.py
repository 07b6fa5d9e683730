"""Sources' coverage: the coverage an import declares (``FROM..TO``) and its check, and the
covered days of sources and series as merged intervals, read from ``source_coverage``
(maintained by :mod:`service.store.summary`)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from service.errors import UnprocessableContent
from service.store.pagination import S, where_given
from service.store.tables import SeriesSource, SourceCoverage

if TYPE_CHECKING:  # numpy loads on first use: reading the coverage does not need it
    import numpy as np

__all__ = [
    "Coverage",
    "Interval",
    "parse_coverage",
    "check_declared",
    "merge_intervals",
    "source_intervals",
    "series_coverage",
    "summary_version",
]

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


def as_date(v: Any) -> dt.date:
    """A day read back from the database (a date, a datetime or an ISO string)."""
    if isinstance(v, dt.datetime):
        return v.date()
    return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v))


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


def _only(stmt: S, column: InstrumentedAttribute[str], values: Iterable[str] | None
          ) -> S | None:
    """``stmt`` restricted to rows whose ``column`` is one of ``values`` (unrestricted when
    ``values`` is None); None when ``values`` is empty (nothing can match)."""
    if values is None:
        return stmt
    wanted = sorted(set(values))
    return stmt.where(column.in_(wanted)) if wanted else None


def source_intervals(session: Session | Connection, *, signal: str,
                     sources: Iterable[str] | None = None) -> dict[str, list[Interval]]:
    """Merged coverage intervals of each source of ``signal`` (of ``sources`` only, if
    given)."""
    stmt = _only(select(SourceCoverage.source, SourceCoverage.day_from, SourceCoverage.day_to)
                 .where(SourceCoverage.signal == signal), SourceCoverage.source, sources)
    if stmt is None:
        return {}
    raw: dict[str, list[Interval]] = {}
    for s, a, b in session.execute(stmt):
        raw.setdefault(str(s), []).append((as_date(a), as_date(b)))
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
    stmt = _only(where_given(select(SeriesSource.series_id, SeriesSource.source).where(
        SeriesSource.signal == signal), (SeriesSource.category, "==", category),
        (SeriesSource.region, "==", region)), SeriesSource.series_id, series_ids)
    if stmt is None:
        return {}
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
