"""Metrics against hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.metrics import (
    EVENT_METRICS,
    brier,
    coverage,
    event_scores,
    mae,
    mase,
    match_windows,
    point_scores,
    rmse,
    seasonal_naive_scale,
)

T = pd.Timestamp


def test_mae_rmse() -> None:
    y, yhat = [1.0, 2.0, 4.0, 0.0], [2.0, 2.0, 1.0, 0.0]
    assert mae(y, yhat) == pytest.approx(1.0)          # (1 + 0 + 3 + 0) / 4
    assert rmse(y, yhat) == pytest.approx(math.sqrt(2.5))  # (1 + 9) / 4
    assert math.isnan(mae([], []))


def test_mase_scales_by_seasonal_naive_in_sample() -> None:
    y_train = [1.0, 2.0, 3.0, 5.0, 2.0, 4.0]
    # season 2: |3-1| + |5-2| + |2-3| + |4-5| = 7 over 4 -> 1.75
    assert seasonal_naive_scale(y_train, season=2) == pytest.approx(1.75)
    assert mase([3.0, 3.0], [1.25, 4.75], y_train, season=2) == pytest.approx(1.0)
    # history not longer than the season: the fallback lag (1) is used
    assert seasonal_naive_scale([1.0, 3.0, 2.0], season=52, fallback=1) == pytest.approx(1.5)
    assert math.isnan(mase([1.0], [2.0], [4.0, 4.0, 4.0], season=1))  # zero scale


def test_coverage_bounds_inclusive() -> None:
    assert coverage([1, 2, 3, 4], [1, 0, 0, 5], [1, 1, 3, 6]) == pytest.approx(0.5)


def test_brier_known_case() -> None:
    assert brier([0.9, 0.2, 0.5], [1, 0, 1]) == pytest.approx((0.01 + 0.04 + 0.25) / 3)
    assert brier([1.0, 0.0], [1, 0]) == 0.0


@pytest.fixture
def windows() -> tuple[pd.DataFrame, pd.DataFrame]:
    actual = pd.DataFrame({
        "unique_id": ["a", "a", "b"],
        "start": [T("2024-03-04"), T("2024-06-03"), T("2024-08-05")],
        "end": [T("2024-03-17"), T("2024-06-09"), T("2024-08-11")],
    })
    predicted = pd.DataFrame({
        "unique_id": ["a", "a", "a", "a", "b"],
        # P0 overlaps A0, available 22 days ahead; P1 too, 29 days ahead (earliest warning)
        # P2 is the week just before A1 (within ±1 week) but only 8 days ahead: TP, not caught
        # P3 overlaps nothing; P4 is another series' window two weeks off
        "start": [T("2024-03-11"), T("2024-03-18"), T("2024-05-27"), T("2024-09-02"),
                  T("2024-08-19")],
        "end": [T("2024-03-24"), T("2024-03-24"), T("2024-06-02"), T("2024-09-08"),
                T("2024-08-25")],
        "available_at": [T("2024-02-11"), T("2024-02-04"), T("2024-05-26"), T("2024-06-30"),
                         T("2024-06-30")],
    })
    return predicted, actual


def test_match_windows(windows: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    predicted, actual = windows
    pred, act = match_windows(predicted, actual, lead_days=14)
    assert pred["true_positive"].tolist() == [True, True, True, False, False]
    assert act["caught"].tolist() == [True, False, False]
    assert act["lead_days"].iloc[0] == 29.0
    assert act["lead_days"].iloc[1:].isna().all()
    # a shorter lead requirement catches A1 (8 days)
    _, act7 = match_windows(predicted, actual, lead_days=7)
    assert act7["caught"].tolist() == [True, True, False]
    # no tolerance: P1 (the week after A0) and P2 (the week before A1) touch nothing
    pred0, act0 = match_windows(predicted, actual, lead_days=14, tolerance_days=0)
    assert pred0["true_positive"].tolist() == [True, False, False, False, False]
    assert act0["lead_days"].iloc[0] == 22.0


def test_event_scores(windows: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    predicted, actual = windows
    out = event_scores(predicted, actual, lead_days=14).set_index("metric")["value"]
    assert list(out.index) == EVENT_METRICS
    assert out["recall"] == pytest.approx(1 / 3)
    assert out["precision"] == pytest.approx(3 / 5)
    assert out["f1"] == pytest.approx(2 * (1 / 3) * (3 / 5) / (1 / 3 + 3 / 5))
    assert out["median_lead_days"] == 29.0
    assert (out["n_actual"], out["n_caught"], out["n_predicted"], out["n_true_positive"]) == (
        3, 1, 5, 3)


def test_event_scores_degenerate() -> None:
    empty = pd.DataFrame({"unique_id": [], "start": [], "end": [], "available_at": []})
    out = event_scores(empty, empty.drop(columns="available_at")).set_index("metric")["value"]
    assert np.isnan(out["recall"]) and np.isnan(out["precision"]) and np.isnan(out["f1"])
    actual = pd.DataFrame({"unique_id": ["a"], "start": [T("2024-01-01")],
                           "end": [T("2024-01-07")]})
    out = event_scores(empty, actual).set_index("metric")["value"]
    assert out["recall"] == 0.0 and np.isnan(out["precision"])


def test_point_scores_long() -> None:
    ds = pd.date_range("2024-01-01", periods=3)
    forecast = pd.DataFrame({"unique_id": "a", "ds": ds, "yhat": [1.0, 1.0, 1.0],
                             "yhat_lower": [0.0, 0.0, 0.0], "yhat_upper": [2.0, 2.0, 2.0]})
    actual = pd.DataFrame({"unique_id": "a", "ds": ds, "y": [1.0, 3.0, 1.0]})
    history = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2023-01-01", periods=4),
                            "y": [0.0, 2.0, 0.0, 2.0]})
    out = point_scores(forecast, actual, history, season=1)
    assert list(out.columns) == ["unique_id", "metric", "value"]
    v = out.set_index("metric")["value"]
    assert v["mae"] == pytest.approx(2 / 3)
    assert v["rmse"] == pytest.approx(math.sqrt(4 / 3))
    assert v["mase"] == pytest.approx((2 / 3) / 2.0)
    assert v["coverage"] == pytest.approx(2 / 3)
    assert v["n_days"] == 3
