"""Daily and weekly count frames.

Long frames use the columns ``unique_id`` (series id), ``ds`` (day, tz-naive midnight) and
``y`` (count). Weeks are ISO weeks starting on Monday and are labelled by their Monday
(column ``week``).

A series id is ``signal|category|region`` (DESIGN.md); :class:`SeriesId` is the one place it
is composed and split, for one id (``str(sid)``, :meth:`SeriesId.parse`) and for whole
columns (:meth:`SeriesId.compose`, :meth:`SeriesId.split`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeGuard, overload

if TYPE_CHECKING:  # numpy and pandas load on first use: a series id alone needs neither
    import numpy as np
    import pandas as pd

__all__ = ["SIGNALS", "SeriesId", "InvalidSeriesId", "week_start", "iso_mondays", "monday_of",
           "sunday_on_or_before", "horizon_days", "to_weekly", "zero_fill", "counts_from_records"]

#: ``complaints`` counts complaint records, ``violations`` enforcement actions that found one.
SIGNALS = ("complaints", "violations")


class InvalidSeriesId(ValueError):
    """A text that is not a series id ``signal|category|region`` of a known signal."""


@dataclass(frozen=True, slots=True)
class SeriesId:
    """The identity of a series: ``signal|category|region``.

    ``str(sid)`` composes one id and :meth:`parse` splits one; :meth:`compose` and
    :meth:`split` do the same for pandas columns (vectorised).
    """

    #: Separator of the three parts (no part may contain it).
    sep: ClassVar[str] = "|"

    signal: str
    category: str
    region: str

    def __str__(self) -> str:
        return SeriesId.sep.join((self.signal, self.category, self.region))

    @classmethod
    def parse(cls, value: str) -> SeriesId:
        """Split one id.

        Raises
        ------
        InvalidSeriesId
            If ``value`` has not three non-empty parts or its signal is not in :data:`SIGNALS`.
        """
        parts = value.split(SeriesId.sep)
        if len(parts) != 3 or not all(parts):
            raise InvalidSeriesId(
                f"series id '{value}' is not of the form signal|category|region")
        if parts[0] not in SIGNALS:
            raise InvalidSeriesId(
                f"series id '{value}': signal must be one of {', '.join(SIGNALS)}")
        return cls(*parts)

    @overload
    @staticmethod
    def compose(signal: str, category: str, region: str) -> str: ...

    @overload
    @staticmethod
    def compose(signal: str | pd.Series, category: str | pd.Series,
                region: str | pd.Series) -> str | pd.Series: ...

    @staticmethod
    def compose(signal: str | pd.Series, category: str | pd.Series,
                region: str | pd.Series) -> str | pd.Series:
        """Ids from their parts: scalars give a ``str``, any pandas column a column of ids
        (scalars broadcast, columns cast with ``astype(str)``)."""
        if not any(_is_column(v) for v in (signal, category, region)):
            return str(SeriesId(str(signal), str(category), str(region)))
        sig, cat, reg = (v.astype(str) if _is_column(v) else str(v)
                         for v in (signal, category, region))
        return sig + SeriesId.sep + cat + SeriesId.sep + reg

    @staticmethod
    def split(ids: pd.Series | pd.Index) -> pd.DataFrame:
        """Columns ``signal, category, region`` of a column of ids (same index as a Series;
        a range index for an Index)."""
        import pandas as pd

        values = pd.Series(ids) if isinstance(ids, pd.Index) else ids
        parts = values.astype(str).str.split(SeriesId.sep, n=2, expand=True)
        if parts.shape[1] != 3:
            parts = parts.reindex(columns=range(3))
        parts.columns = pd.Index(["signal", "category", "region"])
        return parts

    @staticmethod
    def part(ids: pd.Series | pd.Index, name: str) -> pd.Series:
        """One part (``signal``, ``category`` or ``region``) of a column of ids."""
        return SeriesId.split(ids)[name]


def _is_column(value: object) -> TypeGuard[pd.Series]:
    """Whether ``value`` is a pandas Series (no object is one while pandas is not loaded)."""
    pd_module = sys.modules.get("pandas")
    return pd_module is not None and isinstance(value, pd_module.Series)


def week_start(ds: pd.Series | pd.DatetimeIndex) -> pd.Series:
    """Monday of the ISO week of each day in ``ds``."""
    import pandas as pd

    s = pd.Series(pd.to_datetime(ds)).dt.normalize()
    return s - pd.to_timedelta(s.dt.day_of_week, unit="D")


def iso_mondays(ds: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """Monday of each day's ISO week as ``datetime64[ns]`` (numpy, for hot paths; 1970-01-01
    was a Thursday); :func:`week_start` for a pandas column."""
    import numpy as np

    days = np.asarray(ds, dtype="datetime64[D]").astype(np.int64)
    return np.asarray((days - (days + 3) % 7).astype("datetime64[D]").astype("datetime64[ns]"))


def monday_of(day: Any) -> pd.Timestamp:
    """Monday (midnight) of the ISO week of one day; :func:`week_start` for a column."""
    import pandas as pd

    d = pd.Timestamp(day).normalize()
    return d - pd.Timedelta(days=d.day_of_week)


def sunday_on_or_before(day: Any) -> pd.Timestamp:
    """The Sunday (midnight) ending the last complete ISO week up to ``day``."""
    import pandas as pd

    d = pd.Timestamp(day).normalize()
    return d - pd.Timedelta(days=(d.weekday() - 6) % 7)


def horizon_days(cutoff: Any, horizon_weeks: int) -> int:
    """Days from the day after ``cutoff`` to the Sunday ending ``horizon_weeks`` full weeks
    after the cutoff's own ISO week."""
    import pandas as pd

    return int((6 - pd.Timestamp(cutoff).weekday()) % 7 + 7 * horizon_weeks)


def zero_fill(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill missing days with 0 between each series' first and last day.

    Parameters
    ----------
    frame : DataFrame with columns ``unique_id, ds, y``.

    Returns
    -------
    DataFrame ``unique_id, ds, y`` sorted by ``unique_id, ds``.
    """
    import pandas as pd

    parts = []
    for uid, g in frame.groupby("unique_id", sort=True):
        s = g.set_index(pd.to_datetime(g["ds"]).dt.normalize())["y"].groupby(level=0).sum()
        idx = pd.date_range(s.index.min(), s.index.max(), freq="D")
        s = s.reindex(idx, fill_value=0)
        parts.append(pd.DataFrame({"unique_id": uid, "ds": idx, "y": s.to_numpy()}))
    if not parts:
        return pd.DataFrame({"unique_id": pd.Series(dtype=str),
                             "ds": pd.Series(dtype="datetime64[ns]"),
                             "y": pd.Series(dtype=float)})
    return pd.concat(parts, ignore_index=True)


def to_weekly(frame: pd.DataFrame, *, complete_only: bool = True) -> pd.DataFrame:
    """Sum daily counts per ISO week.

    Parameters
    ----------
    frame : DataFrame ``unique_id, ds, y`` (daily, zero-filled).
    complete_only : drop weeks with fewer than 7 observed days (the partial first/last week).

    Returns
    -------
    DataFrame ``unique_id, week, y`` where ``week`` is the Monday of the ISO week.
    """

    f = frame.assign(week=week_start(frame["ds"]).to_numpy())
    out = f.groupby(["unique_id", "week"], sort=True).agg(y=("y", "sum"), n=("y", "size"))
    out = out.reset_index()
    if complete_only:
        out = out[out["n"] == 7]
    return out.drop(columns="n").reset_index(drop=True)


def counts_from_records(
    records: pd.DataFrame,
    *,
    time_col: str = "received_at",
    signal: str = "complaints",
    category_col: str = "category",
    region_col: str = "region",
    tz: str = "Asia/Shanghai",
) -> pd.DataFrame:
    """Zero-filled daily counts per ``signal|category|region`` from record rows.

    Timestamps are converted to ``tz`` (naive ones are taken as ``tz``) and counted on their
    local calendar day. Days are zero-filled between the first and last record of the frame.

    Returns
    -------
    DataFrame ``unique_id, ds, y``.
    """
    import pandas as pd

    raw = records[time_col]
    if pd.api.types.is_datetime64_any_dtype(raw):
        ts = raw if raw.dt.tz is not None else raw.dt.tz_localize(tz)
    else:
        text = raw.astype(str).str.strip()
        aware = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
        ts = pd.Series(pd.NaT, index=raw.index, dtype=f"datetime64[ns, {tz}]")
        if aware.any():
            ts[aware] = pd.to_datetime(text[aware], utc=True, format="mixed").dt.tz_convert(tz)
        if (~aware).any():
            ts[~aware] = pd.to_datetime(text[~aware], format="mixed").dt.tz_localize(tz)
    day = ts.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
    uid = SeriesId.compose(signal, records[category_col], records[region_col])
    counts = pd.DataFrame({"unique_id": uid, "ds": day}).value_counts().rename("y").reset_index()
    wide = counts.pivot_table(index="ds", columns="unique_id", values="y", aggfunc="sum")
    wide = wide.reindex(pd.date_range(day.min(), day.max(), freq="D"), fill_value=0).fillna(0)
    long = wide.melt(ignore_index=False, var_name="unique_id", value_name="y")
    long = long.reset_index(names="ds")[["unique_id", "ds", "y"]]
    long["y"] = long["y"].astype(float)
    return long.sort_values(["unique_id", "ds"]).reset_index(drop=True)
