"""The Chinese working calendar (models.calendar) against the holidays package."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest
from holidays.countries.china import China as _China

from models import calendar

China: Any = _China  # untyped constructor

SPRING_FESTIVAL = {  # lunar 1/1, as published
    2019: "2019-02-05", 2020: "2020-01-25", 2021: "2021-02-12", 2022: "2022-02-01",
    2023: "2023-01-22", 2024: "2024-02-10", 2025: "2025-01-29", 2026: "2026-02-17",
}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return calendar.day_table("2019-01-01", "2027-12-31")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return calendar.holiday_frame("2019-01-01", "2027-12-31")


@pytest.mark.parametrize("year", sorted(SPRING_FESTIVAL))
def test_spring_festival_block_holds_lunar_new_year(table: pd.DataFrame, year: int) -> None:
    cn = China(years=year)
    from_lib = min(d for d, n in cn.items() if n == "Chinese New Year (Spring Festival)")
    assert str(from_lib) == SPRING_FESTIVAL[year]
    block = table[(table["block"] == "spring_festival") & (table["ds"].dt.year == year)]
    assert pd.Timestamp(from_lib) in set(block["ds"])
    assert len(block) >= 7  # every official day off of the break, weekends included
    assert not block["is_workday"].any()


def test_every_official_day_off_is_in_a_block(table: pd.DataFrame) -> None:
    cn = China(years=range(2019, 2027))
    off = pd.to_datetime(sorted(cn))
    rows = table.set_index("ds").loc[off]
    assert rows["is_holiday"].all()
    assert rows["block"].notna().all()
    assert not rows["is_workday"].any()


def test_makeup_workdays_are_workdays(table: pd.DataFrame) -> None:
    cn = China(years=range(2019, 2027))
    makeup = pd.to_datetime(
        sorted(d for d in cn.weekend_workdays if dt.date(2019, 1, 1) <= d <= dt.date(2026, 12, 31)))
    assert len(makeup) >= 40
    rows = table.set_index("ds").loc[makeup]
    assert (makeup.day_of_week >= 5).all()
    assert rows["is_makeup_workday"].all() and rows["is_workday"].all()
    assert not rows["is_holiday"].any()
    assert table.set_index("ds").loc["2024-02-04", "is_workday"]  # a Sunday 调休


def test_national_day_2024_is_one_seven_day_block(table: pd.DataFrame) -> None:
    days = table[(table["block"] == "national_day") & (table["ds"].dt.year == 2024)]["ds"]
    assert list(days) == list(pd.date_range("2024-10-01", "2024-10-07"))


def test_plain_weekends_are_not_workdays(table: pd.DataFrame) -> None:
    row = table.set_index("ds").loc["2024-03-09"]  # an ordinary Saturday
    assert not row["is_workday"] and not row["is_holiday"] and pd.isna(row["block"])


def test_official_years(table: pd.DataFrame) -> None:
    assert calendar.unofficial_years("2019-01-01", "2027-06-30") == [2027]
    assert table.loc[table["ds"].dt.year <= 2026, "official"].all()
    assert not table.loc[table["ds"].dt.year == 2027, "official"].any()
    assert set(range(2019, 2027)) <= calendar.official_years()


def test_holiday_frame_uses_recurring_names(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == calendar.HOLIDAY_COLUMNS
    names = set(frame["holiday"])
    assert set(calendar.BLOCK_NAMES) <= names
    assert {"pre_spring_festival", "lantern_festival", "makeup_workday",
            "naadam", "gaokao"} <= names
    assert not any(n.startswith("Day off") for n in names)
    assert len(names) < 25  # vs ~49 mostly one-off names from add_country_holidays('CN')
    years = frame.groupby("holiday")["ds"].apply(lambda s: s.dt.year.nunique())
    every_year = [b for b in calendar.BLOCK_NAMES if b != "mid_autumn"]
    assert (years[every_year] >= 8).all()  # recurring every year
    assert years["mid_autumn"] >= 5  # merged into national_day in 2020, 2023, 2025
    assert (frame["lower_window"] <= 0).all() and (frame["upper_window"] >= 0).all()


def test_ramps_before_spring_festival_and_lantern(frame: pd.DataFrame) -> None:
    pre = frame[frame["holiday"] == "pre_spring_festival"]
    pre = pre.set_index(pre["ds"].dt.year)
    assert pre.loc[2024, "ds"] == pd.Timestamp("2024-02-09")  # the day before the break
    assert pre.loc[2024, "lower_window"] == 1 - calendar.PRE_SPRING_FESTIVAL_DAYS
    lantern = frame[frame["holiday"] == "lantern_festival"]
    assert pd.Timestamp("2024-02-24") in set(lantern["ds"])  # lunar 1/15
    assert (lantern["ds"].dt.year.value_counts() == 1).all()


def test_local_events_file() -> None:
    events = calendar.local_events()
    names = {e["name"] for e in events}
    assert {"naadam", "gaokao"} <= names
    gaokao = next(e for e in events if e["name"] == "gaokao")
    assert (gaokao["month"], gaokao["day"]) == (6, 7)
    assert all(e.get("note") for e in events)  # each documented as approximate
    plain = calendar.holiday_frame("2024-01-01", "2024-12-31", include_local=False)
    assert "naadam" not in set(plain["holiday"])


def test_bad_range_raises() -> None:
    with pytest.raises(ValueError, match="before start"):
        calendar.day_table("2024-02-01", "2024-01-01")
