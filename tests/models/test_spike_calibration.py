"""Calibration of the weekly P(spike) on a held-out origin (issue 11).

A quarter of the sample series is fitted with data up to 2024-06-30 and forecast for 26
weeks; the weeks after the origin were never seen. The probabilities must beat the
climatological forecast (the spike rate of the two years before the origin) by a clear Brier
skill, agree with the observed rate on average, and rank: weeks given a high P spike far more
often than weeks given a low one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.backtest import backtest
from models.forecast import ProphetForecaster
from models.peaks import thresholds
from models.series import to_weekly

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "complaints.csv.gz"
ORIGIN = pd.Timestamp("2024-06-30")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    raw = pd.read_csv(SAMPLES, usecols=["received_at", "category", "region"])
    ds = pd.to_datetime(raw["received_at"], utc=True, format="mixed")
    raw["ds"] = ds.dt.tz_convert("Asia/Shanghai").dt.tz_localize(None).dt.normalize()
    raw["unique_id"] = "complaints|" + raw["category"] + "|" + raw["region"].astype(str)
    df = raw.groupby(["unique_id", "ds"]).size().rename("y").reset_index()
    keep = sorted(df["unique_id"].unique())[::4]  # 30 series over every category
    return df[df["unique_id"].isin(keep)].reset_index(drop=True)


def test_held_out_spike_probabilities_are_calibrated_and_skilful(daily: pd.DataFrame) -> None:
    res = backtest(daily, ProphetForecaster(n_samples=1000), origins=[ORIGIN],
                   horizon_weeks=26)
    weeks = res.weekly.dropna(subset=["y"])
    assert len(weeks) >= 26 * 25
    p = weeks["p_spike"].to_numpy(dtype=float)
    y = weeks["spike"].to_numpy(dtype=float)
    assert y.sum() >= 20  # enough spike weeks for the comparison to mean something

    # climatology known at the origin: the spike rate of the two years before it
    hist = to_weekly(daily[daily["ds"] <= ORIGIN])
    thr = thresholds(hist, until=ORIGIN + pd.Timedelta(days=1))
    past = hist[hist["week"] >= ORIGIN - pd.Timedelta(weeks=104)]
    past = past[past["unique_id"].isin(thr.index)]
    base = float((past["y"].to_numpy() > thr.reindex(past["unique_id"]).to_numpy()).mean())

    brier = float(np.mean((p - y) ** 2))
    brier_clim = float(np.mean((base - y) ** 2))
    assert 1 - brier / brier_clim > 0.2, (brier, brier_clim)
    assert abs(p.mean() - y.mean()) < 0.05, (p.mean(), y.mean())
    low, high = y[p < 0.1], y[p >= 0.3]
    assert len(high) >= 10
    assert high.mean() > 0.3 > 0.05 > low.mean()
