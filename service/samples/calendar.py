"""Chinese calendar facts the sample generator needs, from the ``holidays`` package.

Festival dates move with the lunar calendar; official days off and adjusted working weekends
(调休) come from the State Council schedules that ``holidays`` ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import holidays

__all__ = ["FestivalDates", "festival_dates", "days_off_and_makeup_days"]

_NAMES = {
    "spring_festival": "Chinese New Year (Spring Festival)",
    "qingming": "Tomb-Sweeping Day",
    "dragon_boat": "Dragon Boat Festival",
    "mid_autumn": "Mid-Autumn Festival",
}


@dataclass(frozen=True)
class FestivalDates:
    """First official day of each festival in one Gregorian year."""

    year: int
    spring_festival: date
    qingming: date
    dragon_boat: date
    mid_autumn: date
    national_day: date


def _calendar(years: range) -> holidays.HolidayBase:
    return holidays.country_holidays("CN", years=list(years), language="en_US")


def festival_dates(years: range) -> dict[int, FestivalDates]:
    """Festival dates per year (lunar festivals as observed in the official schedule)."""
    cal = _calendar(years)
    found: dict[int, dict[str, date]] = {y: {} for y in years}
    for day, names in sorted(cal.items()):
        for part in str(names).split("; "):
            for key, name in _NAMES.items():
                if part == name and key not in found[day.year]:
                    found[day.year][key] = day
    out: dict[int, FestivalDates] = {}
    for y in years:
        f = found[y]
        missing = set(_NAMES) - set(f)
        if missing:
            raise ValueError(f"holidays has no {sorted(missing)} for {y}")
        out[y] = FestivalDates(year=y, spring_festival=f["spring_festival"],
                               qingming=f["qingming"], dragon_boat=f["dragon_boat"],
                               mid_autumn=f["mid_autumn"], national_day=date(y, 10, 1))
    return out


def days_off_and_makeup_days(years: range) -> tuple[set[date], set[date]]:
    """Official days off (holidays incl. moved days) and 调休 working weekend days."""
    cal = _calendar(years)
    off = {d for d in cal if d.year in years}
    makeup = {d for d in getattr(cal, "weekend_workdays", set()) if d.year in years}
    return off, makeup
