"""The vectorised :func:`models.peaks.actual_spike_windows` gives exactly what the loop per
series and per week gave (kept here as the reference), on the sample data and on panels with
gaps, short series and other parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.peaks import actual_spike_windows, runs_to_windows, spike_threshold
from models.series import to_weekly
from service.samples.generator import DEFAULT_END, DEFAULT_SEED, DEFAULT_START
from service.samples.simulation import simulate


def reference(weekly: pd.DataFrame, *, min_spike_count: float = 5.0,
              lookback_weeks: int = 104, min_history_weeks: int = 52) -> pd.DataFrame:
    """The implementation before issue 13 (one Python loop per series and per week)."""
    rows = []
    for uid, g in weekly.sort_values("week").groupby("unique_id", sort=True):
        y = g["y"].to_numpy(dtype=float)
        weeks = g["week"].reset_index(drop=True)
        thr = np.full(len(y), np.nan)
        for i in range(min_history_weeks, len(y)):
            thr[i] = spike_threshold(y[max(0, i - lookback_weeks):i],
                                     min_spike_count=min_spike_count,
                                     lookback_weeks=lookback_weeks)
        flags = pd.Series(~np.isnan(thr) & (y > np.nan_to_num(thr, nan=np.inf)))
        for start, last in runs_to_windows(weeks, flags):
            sel = (weeks >= start) & (weeks <= last)
            idx = np.flatnonzero(sel.to_numpy())
            peak = idx[np.argmax(y[idx])]
            rows.append({"unique_id": uid, "start": start,
                         "end": last + pd.Timedelta(days=6), "peak_week": weeks[peak],
                         "peak_count": float(y[peak]), "threshold": float(thr[idx[0]])})
    cols = ["unique_id", "start", "end", "peak_week", "peak_count", "threshold"]
    return pd.DataFrame(rows, columns=cols)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    for col in ("start", "end", "peak_week"):
        assert (pd.to_datetime(a[col]) == pd.to_datetime(b[col])).all(), col
    assert (a["unique_id"].astype(str) == b["unique_id"].astype(str)).all()
    # bit for bit: the same quantiles, not merely close ones
    assert (a["peak_count"].to_numpy(float) == b["peak_count"].to_numpy(float)).all()
    assert (a["threshold"].to_numpy(float) == b["threshold"].to_numpy(float)).all()


@pytest.fixture(scope="module")
def sample_weekly() -> pd.DataFrame:
    sim = simulate(DEFAULT_SEED, DEFAULT_START, DEFAULT_END, 1.0)
    daily = pd.DataFrame({"unique_id": np.repeat(np.array(sim.uids), sim.n_d),
                          "ds": np.tile(sim.days.to_numpy(), sim.n_s),
                          "y": sim.counts.reshape(-1).astype(float)})
    return to_weekly(daily)


def test_identical_on_the_sample_data(sample_weekly: pd.DataFrame) -> None:
    old, new = reference(sample_weekly), actual_spike_windows(sample_weekly)
    assert len(old) > 50
    _same(old, new)
    for kw in ({"min_spike_count": 0.0}, {"lookback_weeks": 26, "min_history_weeks": 13},
               {"lookback_weeks": 52, "min_history_weeks": 80}):
        _same(reference(sample_weekly, **kw), actual_spike_windows(sample_weekly, **kw))


def test_identical_with_gaps_short_series_and_ties() -> None:
    rng = np.random.default_rng(7)
    parts = []
    for k in range(40):
        n = int(rng.integers(1, 260))
        weeks = pd.Timestamp("2020-01-06") + pd.to_timedelta(7 * np.arange(n), unit="D")
        keep = rng.random(n) > 0.05  # gaps break runs
        y = rng.poisson(rng.uniform(0.5, 20), n).astype(float)
        y[rng.random(n) < 0.05] *= 4  # spikes, often several weeks with the same count
        parts.append(pd.DataFrame({"unique_id": f"complaints|c{k % 7}|r{k}",
                                   "week": weeks[keep], "y": y[keep]}))
    weekly = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=1)
    old, new = reference(weekly), actual_spike_windows(weekly)
    assert len(old) > 20
    _same(old, new)
    _same(reference(weekly, min_history_weeks=0, lookback_weeks=8),
          actual_spike_windows(weekly, min_history_weeks=0, lookback_weeks=8))


def test_empty_and_no_spike() -> None:
    empty = pd.DataFrame({"unique_id": pd.Series(dtype=str),
                          "week": pd.Series(dtype="datetime64[ns]"), "y": pd.Series(dtype=float)})
    assert actual_spike_windows(empty).empty
    flat = pd.DataFrame({"unique_id": "s", "week": pd.date_range("2020-01-06", periods=80,
                                                                freq="7D"), "y": 1.0})
    assert actual_spike_windows(flat).empty
