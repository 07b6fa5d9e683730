"""Timestamp parsing: vectorised for the common forms, a per-value fallback for the rest.

Accepted forms (naive values are local time in ``tz``, default Asia/Shanghai):

- ISO 8601 with or without a zone: ``2023-01-05T14:03:00+08:00``, ``2023-01-05 14:03:00``,
  ``2023-01-05T06:03Z``, ``2023-01-05`` (also unpadded ``2023-1-5 4:03``);
- slashes or dots: ``2023/1/5 14:03``, ``2023.01.05``;
- Chinese: ``2023年1月5日 14时03分``, ``2023年1月5日 14:03``, ``2023年1月5日下午2点3分``;
- compact dates ``20230105``;
- Excel serial numbers (1900 date system): ``45123.58`` -> 2023-07-16 13:55:12;
- day/month/year or month/day/year with the year last: ``05/01/2023``, ``01/05/2023 02:03:00
  PM`` (as Chicago's data portal writes them). Which of the two is the caller's decision
  (``date_order``, or ``on_year_last`` deciding from the values: the import decides once per
  file, see :mod:`service.ingest.pipeline`).

Year-only or month-only values (``2023``, ``2023-01``) are refused: they are not a point in
time. :func:`parse_timestamps` runs ``pd.to_datetime(format="ISO8601")`` over the whole chunk,
then over the leftovers after translating separators, then the numeric forms, and only what is
still left goes through :func:`parse_one` value by value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from service.config import DEFAULT_TIMEZONE

__all__ = ["parse_timestamps", "parse_one", "EXCEL_EPOCH", "DATE_ORDERS", "YEAR_LAST"]

EXCEL_EPOCH = pd.Timestamp("1899-12-30")
_EXCEL_MAX = 2_958_465  # 9999-12-31
_MIN_SERIAL = 25_569  # 1970-01-01; smaller numbers are not timestamps

_TRANSLATE = str.maketrans(
    {"年": "-", "月": "-", "日": " ", "号": " ", "/": "-", ".": "-", "时": ":", "點": ":",
     "点": ":", "分": "", "秒": "", "：": ":", "T": " ", "t": " "}
)
_SPACES = re.compile(r"\s+")
_ZONE = r"\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d\d(?::?\d\d)?|UTC|GMT)\s*$"
_FALLBACK = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})\s*"
    r"(?:(上午|下午|中午|晚上|凌晨|早上|早晨|傍晚|AM|PM|am|pm)\s*)?"
    r"(?:(\d{1,2})(?::(\d{1,2})?)?(?::(\d{1,2})(?:[.,](\d{1,6}))?)?)?\s*"
    r"(AM|PM|am|pm)?$"
)
DATE_ORDERS = ("ymd", "dmy", "mdy")
#: a date with the year last: day or month, month or day, year, then the rest (time)
YEAR_LAST = re.compile(r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})(?=$|[\sT])(.*)$", re.S)
_AMPM = (("%Y-%m-%d %I:%M:%S %p", r"^\d{4}-\d\d-\d\d \d{1,2}:\d\d:\d\d [AaPp][Mm]$"),
         ("%Y-%m-%d %I:%M %p", r"^\d{4}-\d\d-\d\d \d{1,2}:\d\d [AaPp][Mm]$"))
_PM = {"下午", "晚上", "傍晚", "PM", "pm"}
_AM = {"上午", "凌晨", "早上", "早晨", "AM", "am"}
_US = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M",
       "%m/%d/%Y")


def _localize(values: pd.Series, tz: str) -> pd.Series:
    """Naive local timestamps -> UTC; aware ones are converted."""
    if getattr(values.dt, "tz", None) is not None:
        out: pd.Series = values.dt.tz_convert("UTC")
        return out
    local: pd.Series = values.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
    utc: pd.Series = local.dt.tz_convert("UTC")
    return utc


def _empty_utc(index: pd.Index) -> pd.Series:
    return pd.Series(pd.NaT, index=index, dtype="datetime64[us, UTC]")


def _iso(values: pd.Series, tz: str) -> pd.Series:
    """ISO 8601 pass; handles a mix of zoned and naive values."""
    try:
        parsed = pd.to_datetime(values, format="ISO8601", errors="coerce")
    except ValueError:  # mixed zones / naive
        zoned = values.str.contains(_ZONE, regex=True, na=False)
        out = _empty_utc(values.index)
        if zoned.any():
            out.loc[zoned] = pd.to_datetime(values[zoned], format="ISO8601", errors="coerce",
                                            utc=True)
        if (~zoned).any():
            out.loc[~zoned] = _iso(values[~zoned], tz)
        return out
    return _localize(parsed.astype("datetime64[us]") if parsed.dt.tz is None
                     else parsed.astype("datetime64[us, UTC]"), tz)


def _too_coarse(values: pd.Series, parsed: pd.Series) -> pd.Series:
    """Values parsed from fewer than 8 characters (``2023``, ``2023-01``): not a time."""
    ok = parsed.notna()
    if not ok.any():
        return ok
    p = parsed[ok]
    suspect = (p.dt.minute == 0) & (p.dt.second == 0)
    sus_index = p.index[suspect.to_numpy()]
    short = values.loc[sus_index].str.strip().str.len() < 8
    mask = pd.Series(False, index=values.index)
    mask.loc[short.index[short.to_numpy()]] = True
    return mask


def _excel(values: pd.Series) -> pd.Series:
    """Excel serial numbers (1900 system) and compact ``YYYYMMDD`` dates, naive."""
    num = pd.to_numeric(values, errors="coerce")
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
    compact = num.between(19000101, 29991231) & values.str.fullmatch(r"\d{8}", na=False)
    if compact.any():
        out.loc[compact] = pd.to_datetime(values[compact], format="%Y%m%d", errors="coerce")
    serial = num.between(_MIN_SERIAL, _EXCEL_MAX) & ~compact
    if serial.any():
        days = num[serial].to_numpy(dtype="float64")
        micros = np.round(days * 86_400) * 1_000_000
        out.loc[serial] = EXCEL_EPOCH + pd.to_timedelta(micros.astype("int64"), unit="us")
    return out


def parse_one(value: str, tz: str = DEFAULT_TIMEZONE) -> dt.datetime | None:
    """Parse one timestamp the slow way; an aware UTC datetime, or None."""
    raw = _SPACES.sub(" ", value.strip())
    if not raw:
        return None
    for fmt in _US:
        try:
            naive = dt.datetime.strptime(raw, fmt)
        except ValueError:
            continue
        return naive.replace(tzinfo=ZoneInfo(tz)).astimezone(dt.UTC)
    text = _SPACES.sub(" ", raw.translate(_TRANSLATE)).strip()
    m = _FALLBACK.match(text)
    if not m:
        return None
    year, month, day, ampm, hh, mm, ss, frac, ampm2 = m.groups()
    hour = int(hh) if hh else 0
    marker = ampm or ampm2
    if marker in _PM and hour < 12:
        hour += 12
    elif marker in _AM and hour == 12:
        hour = 0
    elif marker == "中午" and hour < 11:
        hour += 12
    try:
        naive = dt.datetime(int(year), int(month), int(day), hour, int(mm or 0), int(ss or 0),
                            int((frac or "0").ljust(6, "0")))
    except ValueError:
        return None
    return naive.replace(tzinfo=ZoneInfo(tz)).astimezone(dt.UTC)


def _year_last(values: pd.Series, order: str, parts: pd.DataFrame) -> pd.Series:
    """Year-last dates rewritten year first in ``order`` (``ymd``: left unparseable)."""
    if order == "ymd":
        return pd.Series("x", index=values.index, dtype="str")
    first, second = (parts[0], parts[1]) if order == "mdy" else (parts[1], parts[0])
    out: pd.Series = (parts[2] + "-" + first.str.zfill(2) + "-" + second.str.zfill(2)
                      + parts[3].str.rstrip())
    return out


def parse_timestamps(values: pd.Series, tz: str = DEFAULT_TIMEZONE, *,
                     date_order: str = "mdy",
                     on_year_last: Callable[[pd.Series, pd.DataFrame], str] | None = None,
                     ) -> pd.Series:
    """Parse a column of timestamp strings to UTC; ``NaT`` where a value cannot be parsed.

    Parameters
    ----------
    values
        Strings (missing values allowed), any index.
    tz
        Zone of naive values.
    date_order
        How dates with the year last (``01/02/2013``) are read: ``mdy``, ``dmy`` or ``ymd``
        (not at all: such values are unparseable).
    on_year_last
        Called with the year-last values (and their parts: first, second, year, rest) when
        there are any; returns the order to use (and may raise to refuse them).

    Returns
    -------
    pandas.Series
        ``datetime64[us, UTC]`` on the same index.
    """
    if values.empty:
        return _empty_utc(values.index)
    out = _iso(values, tz)
    coarse = _too_coarse(values, out)
    if coarse.any():
        out[coarse] = pd.NaT
    left = out.isna() & values.notna()
    if left.any():
        sub = values[left].str.translate(_TRANSLATE).str.replace(_SPACES, " ", regex=True)
        sub = sub.str.strip()
        again = _iso(sub, tz)
        again[_too_coarse(sub, again)] = pd.NaT
        out.loc[again.index] = again
        left = out.isna() & values.notna()
    if left.any():  # what neither ISO pass read: year-last dates, then AM/PM times
        parts = values[left].str.extract(YEAR_LAST)
        year_last = parts[0].notna()
        if year_last.any():
            hits = parts.loc[year_last]
            order = on_year_last(values[left][year_last], hits) if on_year_last \
                else date_order
            values = values.copy()
            values.loc[hits.index] = _year_last(values.loc[hits.index], order, hits)
            again = _iso(values.loc[hits.index], tz)
            out.loc[again.index] = again
            left = out.isna() & values.notna()
    if left.any():
        sub = values[left]
        for fmt, rx in _AMPM:
            hit = sub.str.match(rx, na=False)
            if hit.any():
                naive = pd.to_datetime(sub[hit], format=fmt, errors="coerce")
                ok = naive.notna()
                if ok.any():
                    out.loc[naive.index[ok.to_numpy()]] = _localize(
                        naive[ok].astype("datetime64[us]"), tz)
        left = out.isna() & values.notna()
    if left.any():
        sub = values[left].str.strip()
        numeric = _excel(sub)
        found = numeric.notna()
        if found.any():
            out.loc[numeric.index[found.to_numpy()]] = _localize(numeric[found], tz)
        left = out.isna() & values.notna()
    if left.any():
        slow = [parse_one(v, tz) for v in values[left].tolist()]
        out.loc[left] = pd.Series(slow, index=values.index[left.to_numpy()],
                                  dtype="datetime64[us, UTC]")
    return out


# ------------------------------------------------------------------ storage format


def _put_digits(out: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    for k in range(width - 1, -1, -1):
        out[:, col + k] = values % 10 + 48
        values = values // 10


def _format_times(utc: pd.Series, suffix: str = "") -> list[str]:
    """UTC timestamps as ``YYYY-MM-DD HH:MM:SS.ffffff`` + ``suffix`` (SQLAlchemy's SQLite
    storage format), composed digit by digit with numpy."""
    us = utc.dt.tz_localize(None).to_numpy("datetime64[us]")
    n = len(us)
    template = "0000-00-00 00:00:00.000000" + suffix
    out = np.tile(np.frombuffer(template.encode("utf-32-le"), dtype=np.uint32), (n, 1))
    days = us.astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    _put_digits(out, 0, months.astype("datetime64[Y]").astype(np.int64) + 1970, 4)
    _put_digits(out, 5, months.astype(np.int64) % 12 + 1, 2)
    _put_digits(out, 8, (days - months).astype(np.int64) + 1, 2)
    tod = (us - days).astype(np.int64)
    _put_digits(out, 11, tod // 3_600_000_000, 2)
    _put_digits(out, 14, tod // 60_000_000 % 60, 2)
    _put_digits(out, 17, tod // 1_000_000 % 60, 2)
    _put_digits(out, 20, tod % 1_000_000, 6)
    result: list[str] = out.view(f"U{len(template)}").ravel().tolist()
    return result


def _format_days(days: np.ndarray) -> list[str]:
    """``datetime64[D]`` values as ``YYYY-MM-DD``."""
    out = np.tile(np.frombuffer("0000-00-00".encode("utf-32-le"), dtype=np.uint32),
                  (len(days), 1))
    months = days.astype("datetime64[M]")
    _put_digits(out, 0, months.astype("datetime64[Y]").astype(np.int64) + 1970, 4)
    _put_digits(out, 5, months.astype(np.int64) % 12 + 1, 2)
    _put_digits(out, 8, (days - months).astype(np.int64) + 1, 2)
    result: list[str] = out.view("U10").ravel().tolist()
    return result
