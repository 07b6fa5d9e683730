"""bench/accuracy.py's helpers: windows at every grid threshold, thresholds per series, the
generator's windows per origin, decision origins before the scored period."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench._accuracy_data import Plan
from bench._accuracy_fit import grid_windows
from bench._accuracy_score import (
    Score,
    at_thresholds,
    paired_ap_ratio,
    ratio_interval,
    truth_windows,
)
from models.decision import DEFAULT_GRID
from models.peaks import peak_windows, spike_probabilities


def _paths(seed: int = 3) -> tuple[pd.DataFrame, pd.Series]:
    """Sample paths of three series over 30 weeks with seasonal bumps of varying width."""
    rng = np.random.default_rng(seed)
    weeks = pd.date_range("2024-01-01", periods=30, freq="7D")
    frames = []
    for k, uid in enumerate(["a|x|1", "a|y|1", "b|x|2"]):
        t = np.arange(30)
        mu = 6 + 8 * np.exp(-0.5 * ((t - 8 - 5 * k) / (2 + k)) ** 2) + 5 * (t % 11 == 0)
        paths = rng.poisson(mu[:, None] * rng.gamma(4, 0.25, size=(30, 400)))
        part = pd.DataFrame(paths.astype(float))
        part.index = pd.MultiIndex.from_arrays([[uid] * 30, weeks], names=["unique_id", "week"])
        frames.append(part)
    return pd.concat(frames), pd.Series({"a|x|1": 10.0, "a|y|1": 9.0, "b|x|2": 11.0})


def test_grid_windows_equal_peak_windows_at_each_threshold() -> None:
    samples, thr = _paths()
    probs = spike_probabilities(samples, thr)
    fast = grid_windows(probs, samples, DEFAULT_GRID)
    slow = pd.concat([peak_windows(probs, p_min=p, weekly_samples=samples)
                      for p in DEFAULT_GRID], ignore_index=True)
    key = ["p_min", "unique_id", "start"]
    assert len(slow) > 20 and (slow["onset"] < slow["start"]).any()  # onsets really move
    pd.testing.assert_frame_equal(fast.sort_values(key).reset_index(drop=True),
                                  slow.sort_values(key).reset_index(drop=True))


def test_at_thresholds_takes_each_series_own_threshold() -> None:
    samples, thr = _paths()
    windows = grid_windows(spike_probabilities(samples, thr), samples, DEFAULT_GRID)
    chosen = pd.Series({"a|x|1": 0.1, "a|y|1": 0.5, "b|x|2": 0.3})
    got = at_thresholds(windows, chosen)
    assert set(got["unique_id"]) <= set(chosen.index) and len(got)
    assert np.allclose(got["p_min"], chosen.reindex(got["unique_id"]).to_numpy())
    assert len(got) == sum(((windows["unique_id"] == u) & np.isclose(windows["p_min"], p)).sum()
                           for u, p in chosen.items())


def test_truth_windows_of_an_origin() -> None:
    truth = pd.DataFrame({
        "unique_id": ["s"] * 5,
        "start": pd.to_datetime(["2024-12-02", "2025-01-06", "2025-01-20", "2025-03-03",
                                 "2025-05-05"]),
        "end": pd.to_datetime(["2025-01-05", "2025-01-12", "2025-01-26", "2025-03-09",
                               "2025-05-11"]),
        "planted": [True, True, True, False, True],
        "one_off": [False, False, True, False, False]})
    got = truth_windows(truth, pd.Timestamp("2024-12-29"), 13).set_index("start")
    # the horizon is 2024-12-30 .. 2025-03-30: the May window is out, the December one
    # overlaps (can make a campaign right) but started before the origin
    assert [d.strftime("%m-%d") for d in got.index] == ["12-02", "01-06", "01-20", "03-03"]
    # 2025-01-06 is 8 days after the origin: too soon for 14 days' lead
    assert got["eligible"].tolist() == [False, False, True, False]
    assert got["eligible_seasonal"].tolist() == [False, False, False, False]


def test_decision_origins_end_before_the_scored_origin() -> None:
    plan = Plan(pd.Timestamp("2013-12-31"),
                tuple(pd.Timestamp("2013-12-29") + pd.Timedelta(weeks=13 * k) for k in range(4)),
                pd.Timestamp("2011-01-01"))
    for origins, hw in plan.scorings().values():
        for o in origins:
            found = plan.decision_for(o, hw)
            assert found
            dh = plan.decision_weeks(hw)
            assert all(d + pd.Timedelta(weeks=dh, days=6) <= o for d in found)
    tasks = plan.tasks()
    assert len(tasks) == len(set(tasks)) and (plan.year, 52) in tasks


def test_ratio_interval_brackets_the_ap_ratio() -> None:
    rng = np.random.default_rng(0)
    n_series, n_weeks = 12, 40
    spike = rng.random((n_series, n_weeks)) < 0.15
    weekly = pd.DataFrame({
        "unique_id": np.repeat([f"s{i}" for i in range(n_series)], n_weeks),
        "y": 1.0, "spike": spike.reshape(-1),
        "sn_graded": rng.random(n_series * n_weeks)})
    weekly["same"] = weekly["sn_graded"]
    weekly["better"] = np.clip(weekly["spike"] * 0.6 + rng.random(len(weekly)) * 0.5, 0, 1)
    assert ratio_interval(weekly, "same") == (1.0, 1.0)
    lo, hi = ratio_interval(weekly, "better")
    assert 1.0 < lo < hi


def test_paired_ap_ratio_compares_two_models_on_the_same_weeks() -> None:
    rng = np.random.default_rng(1)
    n_series, n_weeks = 12, 40
    spike = (rng.random((n_series, n_weeks)) < 0.15).reshape(-1)
    keys = pd.DataFrame({
        "cutoff": pd.Timestamp("2024-01-01"),
        "unique_id": np.repeat([f"s{i}" for i in range(n_series)], n_weeks),
        "week": np.tile(pd.date_range("2024-01-01", periods=n_weeks, freq="7D"), n_series),
        "y": 1.0, "spike": spike})
    good = Score("forewarn", weekly=keys.assign(
        p_spike=np.clip(spike * 0.6 + rng.random(len(keys)) * 0.5, 0, 1)))
    noise = Score("plain", weekly=keys.assign(p_spike=rng.random(len(keys))))
    ratio, lo, hi = paired_ap_ratio(good, noise)
    assert lo < ratio < hi and lo > 1.0  # the informative score ranks spikes better
    same, lo1, hi1 = paired_ap_ratio(good, good)
    assert same == 1.0 and (lo1, hi1) == (1.0, 1.0)
    assert np.isnan(paired_ap_ratio(good, Score("plain"))[0])  # not computed: no ratio
