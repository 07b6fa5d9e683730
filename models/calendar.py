"""The Chinese working calendar for the forecaster, built from the ``holidays`` package.

Why not ``Prophet.add_country_holidays('CN')``: it yields ~49 mostly one-off names ("Day off
(substituted from ...)") and no signal for the adjusted working weekends (调休), so the weekly
seasonality predicts a weekend dip on days when offices are open. Here instead:

- one **recurring name per festival block** (``spring_festival``, ``qingming``, ``labor_day``,
  ``dragon_boat``, ``mid_autumn``, ``national_day``, ``new_year``) covering every official day
  off of the block, weekends inside the break included; when Mid-Autumn falls inside the
  National Day break the merged block is ``national_day``;
- ramps: ``pre_spring_festival`` (the 21 days before the break, one coefficient per day, since
  fireworks and unpaid-wage violations build up), ``pre_dragon_boat`` (21 days before the
  festival day: zongzi) and ``pre_mid_autumn`` (28 days: mooncakes, gift boxes, prepaid
  cards — the festival food markets that market regulators inspect every year in the weeks
  before these festivals; the lunar dates move by up to three weeks a year, which a yearly
  Fourier seasonality cannot follow) and ``lantern_festival`` (lunar 1/15, ±1 day);
- ``makeup_workday`` on every 调休 weekend day (``holidays``' ``weekend_workdays``);
- approximate Inner Mongolia events from ``models/data/local_events.yaml``;
- the ``is_workday`` regressor from :func:`day_table`.

Years whose schedule the State Council has not published are not in
``ChinaStaticHolidays.special_public_holidays``; ``holidays`` silently returns rule-based
guesses for them. :func:`unofficial_years` names them so forecasts can be flagged.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np
import pandas as pd
import yaml
from holidays.countries.china import China, ChinaStaticHolidays

__all__ = [
    "BLOCK_NAMES",
    "HOLIDAY_COLUMNS",
    "DAY_TABLE_COLUMNS",
    "holiday_frame",
    "day_table",
    "official_years",
    "unofficial_years",
    "local_events",
    "feature_name",
    "holiday_features",
    "HolidayOptions",
    "BLOCK_DAYS",
    "PRE_SPRING_FESTIVAL_DAYS",
]

BLOCK_NAMES = (
    "spring_festival",
    "qingming",
    "labor_day",
    "dragon_boat",
    "mid_autumn",
    "national_day",
    "new_year",
)
HOLIDAY_COLUMNS = ["holiday", "ds", "lower_window", "upper_window"]
DAY_TABLE_COLUMNS = ["ds", "is_workday", "is_holiday", "is_makeup_workday", "block", "official"]

PRE_SPRING_FESTIVAL_DAYS = 21
# Ramps before lunar festivals (module docstring): name of the festival block -> days.
PRE_FESTIVAL_DAYS: dict[str, int] = {"dragon_boat": 21, "mid_autumn": 28}
BLOCK_DAYS = 7
_LOCAL_EVENTS_FILE = Path(__file__).parent / "data" / "local_events.yaml"
# Order = priority when one break holds several festivals (e.g. Mid-Autumn inside National Day).
_NAME_TO_BLOCK: tuple[tuple[str, str], ...] = (
    ("National Day", "national_day"),
    ("Chinese New Year", "spring_festival"),
    ("Tomb-Sweeping", "qingming"),
    ("Labor Day", "labor_day"),
    ("Dragon Boat", "dragon_boat"),
    ("Mid-Autumn", "mid_autumn"),
    ("New Year's Day", "new_year"),
)
_SPRING_FESTIVAL_DAY = "Chinese New Year (Spring Festival)"
_FESTIVAL_DAYS = {"spring_festival": _SPRING_FESTIVAL_DAY,
                  "dragon_boat": "Dragon Boat Festival", "mid_autumn": "Mid-Autumn Festival"}
_SUBSTITUTED = "Day off"
_OTHER_BLOCK = "special_holiday"


def official_years() -> frozenset[int]:
    """Years whose holiday schedule the State Council has published (per ``holidays``)."""
    return frozenset(int(y) for y in ChinaStaticHolidays.special_public_holidays)


def unofficial_years(start: Any, end: Any) -> list[int]:
    """Years between ``start`` and ``end`` (inclusive) without an official schedule."""
    y0, y1 = pd.Timestamp(start).year, pd.Timestamp(end).year
    official = official_years()
    return [y for y in range(y0, y1 + 1) if y not in official]


def _block_of(names: list[str]) -> str | None:
    for key, block in _NAME_TO_BLOCK:
        if any(key in n for n in names):
            return block
    if any(not n.startswith(_SUBSTITUTED) for n in names):
        return _OTHER_BLOCK
    return None


@lru_cache(maxsize=32)
def _calendar(y0: int, y1: int) -> tuple[pd.DataFrame, dict[str, tuple[dt.date, ...]]]:
    """Day table for whole years ``y0..y1`` (private, cached; callers copy) + the festival
    days per year (``spring_festival`` = lunar 1/1, ``dragon_boat``, ``mid_autumn``)."""
    cn: Any = China(years=range(y0 - 1, y1 + 2))  # type: ignore[no-untyped-call]
    first, last = dt.date(y0 - 1, 12, 1), dt.date(y1 + 1, 1, 31)
    makeup = {d for d in cn.weekend_workdays if first <= d <= last}
    days = pd.date_range(first, last, freq="D")
    names: dict[dt.date, list[str]] = {}
    for d, label in cn.items():
        names.setdefault(d, []).extend(str(label).split("; "))
    dates = [d.date() for d in days]
    listed = [d in names for d in dates]
    is_makeup = [d in makeup for d in dates]
    off = [
        (listed[i] or d.weekday() >= 5) and not is_makeup[i] for i, d in enumerate(dates)
    ]
    block: list[str | None] = [None] * len(dates)
    i = 0
    while i < len(dates):  # runs of consecutive days off that contain an official holiday
        if not off[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(dates) and off[j + 1]:
            j += 1
        run_names = [n for k in range(i, j + 1) for n in names.get(dates[k], [])]
        name = _block_of(run_names) if run_names else None
        if name is not None:
            for k in range(i, j + 1):
                block[k] = name
        i = j + 1
    table = pd.DataFrame({
        "ds": days,
        "is_holiday": [b is not None for b in block],
        "is_makeup_workday": is_makeup,
        "block": pd.array(block, dtype="string"),
    })
    table["is_workday"] = ~table["is_holiday"] & (
        (table["ds"].dt.day_of_week < 5) | table["is_makeup_workday"]
    )
    official = official_years()
    table["official"] = table["ds"].dt.year.isin(official)
    festivals: dict[str, tuple[dt.date, ...]] = {}
    for key, label in _FESTIVAL_DAYS.items():
        first_day: dict[int, dt.date] = {}
        for d in sorted(d for d, ns in names.items() if label in ns):
            first_day.setdefault(d.year, d)  # e.g. lunar 1/1 = first "Spring Festival" day
        festivals[key] = tuple(first_day.values())
    return table[DAY_TABLE_COLUMNS], festivals


def _span(start: Any, end: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    s, e = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
    if e < s:
        raise ValueError(f"end {e.date()} is before start {s.date()}")
    return s, e


def day_table(start: Any, end: Any) -> pd.DataFrame:
    """One row per day with the working-calendar facts the forecaster uses.

    Parameters
    ----------
    start, end : first and last day (inclusive).

    Returns
    -------
    DataFrame ``ds, is_workday, is_holiday, is_makeup_workday, block, official``:
    ``is_workday`` (the Prophet regressor) is True on Monday-Friday and on 调休 weekend days,
    False on weekends and official days off; ``is_holiday`` marks days inside a festival break;
    ``block`` names the break (``<NA>`` otherwise); ``official`` is False in years whose
    schedule has not been published (the ``holidays`` package then guesses).
    """
    s, e = _span(start, end)
    table, _ = _calendar(s.year, e.year)
    out = table[(table["ds"] >= s) & (table["ds"] <= e)]
    return out.reset_index(drop=True).copy()


def local_events(path: Path | None = None) -> list[dict[str, Any]]:
    """The approximate local events (``models/data/local_events.yaml`` unless ``path``)."""
    raw = yaml.safe_load((path or _LOCAL_EVENTS_FILE).read_text(encoding="utf-8"))
    events: list[dict[str, Any]] = list(raw.get("events", []))
    return events


def _blocks(
    rows: list[tuple[str, pd.Timestamp, int, int]], block_days: int
) -> list[tuple[str, pd.Timestamp, int, int]]:
    """Windowed rows -> one window-0 row per day, one name per ``block_days`` block of the
    window (``<holiday>`` when the window fits in one block, else ``<holiday>_b0``,
    ``<holiday>_b1``, ... from the earliest block)."""
    out: list[tuple[str, pd.Timestamp, int, int]] = []
    for name, day, lw, uw in rows:
        width = uw - lw + 1
        if width <= 1:
            out.append((name, day, lw, uw))
            continue
        single = width <= block_days
        out.extend(
            (name if single else f"{name}_b{(o - lw) // block_days}",
             day + pd.Timedelta(days=o), 0, 0)
            for o in range(lw, uw + 1)
        )
    return out


def holiday_frame(
    start: Any,
    end: Any,
    *,
    include_local: bool = True,
    pre_spring_festival_days: int = PRE_SPRING_FESTIVAL_DAYS,
    block_days: int = BLOCK_DAYS,
    pre_festival_days: dict[str, int] | None = None,
) -> pd.DataFrame:
    """Prophet ``holidays`` frame with recurring names, for days ``start..end``.

    Parameters
    ----------
    start, end : first and last day (inclusive) that the frame must cover; cover the forecast
        horizon too, since Prophet only knows the holidays listed here.
    include_local : merge the local events from ``models/data/local_events.yaml``.
    pre_spring_festival_days : length of the ``pre_spring_festival`` ramp (0 = none).
    pre_festival_days : ``{festival: days}`` ramps ``pre_<festival>`` over the days before
        the festival day (``None`` = :data:`PRE_FESTIVAL_DAYS`, ``{}`` = none).
    block_days : windows (ramps, local events) get one coefficient per block of this many
        days instead of one per day (Prophet's window semantics, ``block_days=1``): the
        window becomes window-0 rows named ``<holiday>`` (window of at most ``block_days``)
        or ``<holiday>_b0``, ``<holiday>_b1``, ... (earliest block first). Weekly blocks
        match the weekly resolution of spike probabilities and cut the regression columns
        (131 -> 27 over 2022-2025; 82 -> 20 before the lunar food-festival ramps), so
        Stan's optimisation costs about half.

    Returns
    -------
    DataFrame ``holiday, ds, lower_window, upper_window`` sorted by ``ds, holiday``: one row per
    official day off (window 0) named by its festival block, the ``pre_spring_festival`` ramp
    (the ``pre_spring_festival_days`` days before the break), ``pre_dragon_boat`` and
    ``pre_mid_autumn`` (the days before the festival day), ``lantern_festival`` (lunar
    1/15 ± 1 day), ``makeup_workday`` (window 0) and the local events. With ``block_days=1``
    the ramp is one row per year on the day before the break with ``lower_window = 1 -
    pre_spring_festival_days`` and windows stay Prophet windows.
    """
    s, e = _span(start, end)
    table, festivals = _calendar(s.year, e.year)
    cny = festivals["spring_festival"]
    rows: list[tuple[str, pd.Timestamp, int, int]] = []
    blocks = table.dropna(subset=["block"])
    rows.extend((str(b), d, 0, 0) for d, b in zip(blocks["ds"], blocks["block"], strict=True))
    rows.extend(
        ("makeup_workday", d, 0, 0) for d in table.loc[table["is_makeup_workday"], "ds"]
    )
    sf = table[table["block"] == "spring_festival"]["ds"]
    for day in cny:
        new_year = pd.Timestamp(day)
        rows.append(("lantern_festival", new_year + pd.Timedelta(days=14), -1, 1))
        if pre_spring_festival_days > 0:
            in_break = sf[(sf >= new_year - pd.Timedelta(days=10)) & (sf <= new_year)]
            first = in_break.min() if len(in_break) else new_year
            rows.append(("pre_spring_festival", first - pd.Timedelta(days=1),
                         1 - pre_spring_festival_days, 0))
    pre = PRE_FESTIVAL_DAYS if pre_festival_days is None else pre_festival_days
    for festival, n_days in pre.items():
        if n_days > 0:
            rows.extend((f"pre_{festival}", pd.Timestamp(day) - pd.Timedelta(days=1),
                         1 - n_days, 0) for day in festivals[festival])
    if include_local:
        for ev in local_events():
            for year in range(s.year - 1, e.year + 2):
                first = pd.Timestamp(year=year, month=int(ev["month"]), day=int(ev["day"]))
                rows.extend(
                    (str(ev["name"]), first + pd.Timedelta(days=k),
                     int(ev.get("lower_window", 0)), int(ev.get("upper_window", 0)))
                    for k in range(int(ev.get("days", 1)))
                )
    if block_days > 1:
        rows = _blocks(rows, block_days)
    frame = pd.DataFrame(rows, columns=HOLIDAY_COLUMNS)
    frame["ds"] = pd.to_datetime(frame["ds"])
    # keep rows whose effect (ds + window) touches [s, e]
    lo = frame["ds"] + pd.to_timedelta(frame["lower_window"], unit="D")
    hi = frame["ds"] + pd.to_timedelta(frame["upper_window"], unit="D")
    frame = frame[(hi >= s) & (lo <= e)]
    frame = frame.drop_duplicates(["holiday", "ds"]).sort_values(["ds", "holiday"])
    return frame.reset_index(drop=True)


def feature_name(holiday: str, offset: int) -> str:
    """Column name of one (holiday, day offset) indicator, e.g. ``pre_spring_festival-20``."""
    return f"{holiday}{int(offset):+d}"


class HolidayOptions(TypedDict, total=False):
    """The options of :func:`holiday_frame` (by keyword), passed on by
    :func:`holiday_features`."""

    include_local: bool
    pre_spring_festival_days: int
    block_days: int
    pre_festival_days: dict[str, int] | None


def holiday_features(start: Any, end: Any, **options: Unpack[HolidayOptions]) -> pd.DataFrame:
    """The :func:`holiday_frame` as a 0/1 indicator matrix, built vectorised.

    One column per (holiday, day offset inside its window), named :func:`feature_name`
    (``spring_festival+0``, ``pre_spring_festival-20``, ``lantern_festival-1`` ...), sorted by
    name; the same indicators Prophet's per-row holiday loop builds (``<name>_delim_<offset>``)
    in a few array operations. Columns that are 0 on every day of the range are left out.

    Parameters
    ----------
    start, end : first and last day (inclusive).
    options : ``include_local``, ``pre_spring_festival_days``, ``block_days``,
        ``pre_festival_days``, as in :func:`holiday_frame` (:class:`HolidayOptions`).

    Returns
    -------
    DataFrame indexed by ``ds`` (every day ``start..end``), float columns of 0.0/1.0.
    """
    s, e = _span(start, end)
    days = pd.date_range(s, e, freq="D")
    frame = holiday_frame(s, e, **options)
    lw = frame["lower_window"].to_numpy(dtype=np.int64)
    uw = frame["upper_window"].to_numpy(dtype=np.int64)
    width = uw - lw + 1
    row = np.repeat(np.arange(len(frame)), width)
    offset = np.arange(int(width.sum())) - np.repeat(np.cumsum(width) - width, width) + lw[row]
    day0 = frame["ds"].to_numpy(dtype="datetime64[D]").astype(np.int64)
    pos = day0[row] + offset - np.datetime64(s.date(), "D").astype(np.int64)
    ok = (pos >= 0) & (pos < len(days))
    names = np.array([feature_name(h, o) for h, o in
                      zip(frame["holiday"].to_numpy()[row[ok]], offset[ok], strict=True)],
                     dtype=object)
    columns, col = np.unique(names, return_inverse=True) if len(names) else (np.array([]),
                                                                            np.array([], int))
    values = np.zeros((len(days), len(columns)))
    values[pos[ok], col] = 1.0
    return pd.DataFrame(values, index=pd.DatetimeIndex(days, name="ds"),
                        columns=[str(c) for c in columns])
