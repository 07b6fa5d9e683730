"""Daily/weekly count helpers and the actual-spike definition (DESIGN.md)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from models.peaks import actual_spike_windows, runs_to_windows, spike_threshold
from models.series import (
    InvalidSeriesId,
    SeriesId,
    counts_from_records,
    to_weekly,
    week_start,
    zero_fill,
)


def test_counts_from_records_uses_local_days_and_zero_fills() -> None:
    records = pd.DataFrame({
        "received_at": ["2024-01-01T23:30:00+08:00", "2024-01-01T16:30:00Z", "2024-01-03 10:00"],
        "category": ["a", "a", "b"], "region": ["1", "1", "1"],
    })
    out = counts_from_records(records)
    a = out[out["unique_id"] == "complaints|a|1"]["y"].tolist()
    b = out[out["unique_id"] == "complaints|b|1"]["y"].tolist()
    assert a == [1.0, 1.0, 0.0]  # 16:30Z is 00:30 the next day in Asia/Shanghai
    assert b == [0.0, 0.0, 1.0]


def test_zero_fill_and_weekly_iso_weeks() -> None:
    f = pd.DataFrame({"unique_id": "s", "ds": pd.to_datetime(["2024-01-01", "2024-01-10"]),
                      "y": [2.0, 3.0]})
    filled = zero_fill(f)
    assert len(filled) == 10 and filled["y"].sum() == 5.0
    weekly = to_weekly(filled)  # Mon 2024-01-01 complete; week of 01-08 partial → dropped
    assert weekly["week"].tolist() == [pd.Timestamp("2024-01-01")]
    assert to_weekly(filled, complete_only=False)["y"].tolist() == [2.0, 3.0]
    assert week_start(pd.Series(pd.to_datetime(["2024-01-07"]))).iloc[0] == pd.Timestamp(
        "2024-01-01")


def test_threshold_definition() -> None:
    assert spike_threshold(np.array([1.0, 2.0, 3.0])) == 5.0  # min_spike_count floor
    values = np.arange(200, dtype=float)
    assert spike_threshold(values) == np.quantile(values[-104:], 0.9)


def test_runs_to_windows_breaks_on_gaps() -> None:
    weeks = pd.Series(pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-22", "2024-01-29"]))
    flags = pd.Series([True, True, True, False])
    assert runs_to_windows(weeks, flags) == [
        (pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-08")),
        (pd.Timestamp("2024-01-22"), pd.Timestamp("2024-01-22")),
    ]


def test_actual_spike_windows_history_only() -> None:
    weeks = pd.date_range("2020-01-06", periods=120, freq="7D")
    y = np.full(120, 10.0)
    y[100:103] = 40.0
    out = actual_spike_windows(pd.DataFrame({"unique_id": "s", "week": weeks, "y": y}))
    assert len(out) == 1
    row = out.iloc[0]
    assert row["start"] == weeks[100] and row["end"] == weeks[102] + pd.Timedelta(days=6)
    assert row["threshold"] == 10.0 and row["peak_count"] == 40.0


def test_series_id_scalar_round_trip_and_errors() -> None:
    sid = SeriesId.parse("complaints|food|xincheng")
    assert (sid.signal, sid.category, sid.region) == ("complaints", "food", "xincheng")
    assert str(sid) == "complaints|food|xincheng"
    assert SeriesId.compose("violations", "food", "hohhot") == "violations|food|hohhot"
    with pytest.raises(InvalidSeriesId, match=re.escape("signal|category|region")):
        SeriesId.parse("complaints|food")
    with pytest.raises(InvalidSeriesId, match="signal must be one of"):
        SeriesId.parse("calls|food|xincheng")


def test_series_id_columns_compose_and_split_like_the_scalars() -> None:
    cats = pd.Series(["food", "price"], index=[7, 9])
    regions = pd.Series([150102, 150103], index=[7, 9])
    ids = SeriesId.compose("complaints", cats, regions)
    assert isinstance(ids, pd.Series)
    assert list(ids.index) == [7, 9]
    assert ids.tolist() == [str(SeriesId("complaints", c, str(r)))
                            for c, r in zip(cats, regions, strict=True)]
    parts = SeriesId.split(ids)
    assert list(parts.columns) == ["signal", "category", "region"]
    assert list(parts.index) == [7, 9]
    assert parts["region"].tolist() == ["150102", "150103"]
    assert SeriesId.part(pd.Index(ids), "category").tolist() == ["food", "price"]
    assert SeriesId.split(pd.Series([], dtype=str)).shape == (0, 3)
