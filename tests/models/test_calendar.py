"""The Chinese working calendar (models.calendar) against the holidays package."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
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
    assert {"pre_spring_festival_b0", "pre_spring_festival_b2", "lantern_festival",
            "makeup_workday", "naadam_b0", "naadam_b1", "gaokao"} <= names
    assert not any(n.startswith("Day off") for n in names)
    assert len(names) < 35  # vs ~49 mostly one-off names from add_country_holidays('CN')
    years = frame.groupby("holiday")["ds"].apply(lambda s: s.dt.year.nunique())
    every_year = [b for b in calendar.BLOCK_NAMES if b != "mid_autumn"]
    assert (years[every_year] >= 8).all()  # recurring every year
    assert years["mid_autumn"] >= 5  # merged into national_day in 2020, 2023, 2025
    assert (frame["lower_window"] == 0).all() and (frame["upper_window"] == 0).all()  # blocks
    windows = calendar.holiday_frame("2019-01-01", "2027-12-31", block_days=1)
    assert (windows["lower_window"] <= 0).all() and (windows["upper_window"] >= 0).all()
    assert {"pre_spring_festival", "naadam"} <= set(windows["holiday"])


def test_ramps_before_spring_festival_and_lantern(frame: pd.DataFrame) -> None:
    pre = frame[frame["holiday"].str.startswith("pre_spring_festival")]
    pre24 = pre[(pre["ds"] >= "2024-01-01") & (pre["ds"] <= "2024-02-29")]
    assert pre24["ds"].max() == pd.Timestamp("2024-02-09")  # the day before the break
    assert len(pre24) == calendar.PRE_SPRING_FESTIVAL_DAYS
    blocks = pre24.groupby("holiday")["ds"].agg(["min", "max", "size"])
    assert list(blocks["size"]) == [7, 7, 7]  # weekly blocks, earliest = _b0
    assert blocks.loc["pre_spring_festival_b2", "max"] == pd.Timestamp("2024-02-09")
    assert blocks.loc["pre_spring_festival_b0", "min"] == pd.Timestamp("2024-01-20")
    windows = calendar.holiday_frame("2024-01-01", "2024-12-31", block_days=1)
    row = windows[windows["holiday"] == "pre_spring_festival"].iloc[0]
    assert row["ds"] == pd.Timestamp("2024-02-09")
    assert row["lower_window"] == 1 - calendar.PRE_SPRING_FESTIVAL_DAYS
    lantern = frame[frame["holiday"] == "lantern_festival"]
    assert {pd.Timestamp(d) for d in ("2024-02-23", "2024-02-24", "2024-02-25")} <= set(
        lantern["ds"])  # lunar 1/15 +- 1 day, one block
    assert (lantern["ds"].dt.year.value_counts() == 3).all()


def test_ramps_before_the_lunar_food_festivals(frame: pd.DataFrame) -> None:
    """pre_dragon_boat / pre_mid_autumn end the day before the (lunar) festival day, move
    with it from year to year, and can be switched off."""
    for festival, day24, day25 in (("dragon_boat", "2024-06-10", "2025-05-31"),
                                   ("mid_autumn", "2024-09-17", "2025-10-06")):
        n = calendar.PRE_FESTIVAL_DAYS[festival]
        ramp = frame[frame["holiday"].str.startswith(f"pre_{festival}_b")]
        for day in (day24, day25):
            end = pd.Timestamp(day) - pd.Timedelta(days=1)
            year = ramp[(ramp["ds"] > end - pd.Timedelta(days=60)) & (ramp["ds"] <= end)]
            assert len(year) == n and year["ds"].max() == end
            assert year["ds"].min() == end - pd.Timedelta(days=n - 1)
            assert year.groupby("holiday").size().tolist() == [7] * (n // 7)
    off = calendar.holiday_frame("2024-01-01", "2025-12-31", pre_festival_days={})
    assert not off["holiday"].str.startswith(("pre_dragon", "pre_mid")).any()
    feats = calendar.holiday_features("2024-01-01", "2025-12-31")
    assert feats.loc["2024-09-16", "pre_mid_autumn_b3+0"] == 1.0
    assert feats.loc["2024-09-17", [c for c in feats.columns if c.startswith("pre_mid")]].sum() == 0


@pytest.mark.parametrize("block_days", [1, 7])
@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")  # Prophet 1.5.0 internals
def test_holiday_features_equal_prophets_loop(block_days: int) -> None:
    """The vectorised indicator matrix is exactly Prophet's per-row holiday loop (non-zero
    columns; ``<h>_delim_<o>`` -> ``<h><o>``)."""
    from prophet import Prophet

    start, end = "2023-06-01", "2025-03-31"
    fast = calendar.holiday_features(start, end, block_days=block_days)
    m = Prophet(holidays=calendar.holiday_frame(start, end, block_days=block_days))
    ds = pd.Series(pd.date_range(start, end), name="ds")
    slow, _, _ = m.make_holiday_features(ds, m.construct_holiday_dataframe(ds))
    slow.columns = [c.replace("_delim_", "") for c in slow.columns]
    slow = slow.loc[:, slow.any()]
    assert sorted(slow.columns) == list(fast.columns)
    np.testing.assert_array_equal(slow[list(fast.columns)].to_numpy(), fast.to_numpy())
    assert calendar.feature_name("naadam", -7) == "naadam-7" and len(fast.columns) > 15


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
