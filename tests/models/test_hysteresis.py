"""Open high, continue low: the open factor of predicted windows and how it is learned."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.decision import describe, learn_thresholds, series_open_factors
from models.hysteresis import open_probability, opened_windows
from models.peaks import peak_windows

T = pd.Timestamp
CUT = T("2023-12-31")
WEEKS = pd.date_range("2024-01-01", periods=20, freq="7D")


def test_open_probability_scales_the_odds() -> None:
    assert float(open_probability(0.1, 1.0)) == pytest.approx(0.1)
    assert float(open_probability(0.1, 2.0)) == pytest.approx(0.2 / 1.1)  # odds 0.111 -> 0.222
    assert float(open_probability(0.5, 2.0)) == pytest.approx(2 / 3)
    assert float(open_probability(1.0, 3.0)) == 1.0
    got = open_probability(np.array([0.05, 0.3, 0.7]), np.array([1.5, 2.0, 3.0]))
    assert np.all(got > [0.05, 0.3, 0.7]) and np.all(got < 1.0)


def _probs(p: list[float], uid: str = "s|fire|1") -> pd.DataFrame:
    n = len(p)
    return pd.DataFrame({"unique_id": uid, "week": WEEKS[:n], "expected": 5.0,
                         "p_spike": p, "threshold": 10.0})


def test_a_window_opens_high_and_keeps_its_low_weeks() -> None:
    # a blip at 0.12 (weeks 1-2), then a 9-week window whose P reaches 0.6 (two campaigns)
    p = [0.0, 0.12, 0.12, 0.0, 0.11, 0.2, 0.6, 0.6, 0.3, 0.2, 0.15, 0.11, 0.11, 0.0]
    probs = _probs(p)
    plain = peak_windows(probs, p_min=0.1, max_weeks=6)
    assert plain["window_start"].nunique() == 2
    got = peak_windows(probs, p_min=0.1, max_weeks=6, open_factor=2.0)
    assert set(got["window_start"]) == {WEEKS[4]}  # the blip never reaches 0.18
    assert list(got["part"]) == [1, 2] and got["start"].min() == WEEKS[4]
    assert got["end"].max() == WEEKS[12] + pd.Timedelta(days=6)  # down to P 0.11 at both ends
    # the same rows from opened_windows and from the loop with sample paths (but the onset)
    fast = opened_windows(plain, 2.0)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), fast.reset_index(drop=True))
    paths = pd.DataFrame(np.zeros((len(p), 10)),
                         index=pd.MultiIndex.from_product([["s|fire|1"], WEEKS[:len(p)]]))
    loop = peak_windows(probs, p_min=0.1, max_weeks=6, open_factor=2.0, weekly_samples=paths)
    pd.testing.assert_frame_equal(loop.drop(columns="onset"),
                                  got.drop(columns="onset").reset_index(drop=True),
                                  check_dtype=False)
    # per-series factors: a series without one keeps every window
    other = pd.concat([probs, _probs(p, "s|gas|1")], ignore_index=True)
    both = peak_windows(other, p_min=0.1, max_weeks=6, open_factor={"s|fire|1": 2.0})
    assert both.groupby("unique_id")["window_start"].nunique().to_dict() == {
        "s|fire|1": 1, "s|gas|1": 2}


def test_an_unopened_run_does_not_bound_the_next_onset() -> None:
    # paths: half of them cross T=10 from week 1 on, so the onset looks back to week 1 unless
    # a previous window (the blip at week 2) stands in the way
    p = [0.0, 0.0, 0.12, 0.0, 0.5, 0.5, 0.0, 0.0]
    probs = _probs(p)
    n_paths = 100
    values = np.zeros((len(p), n_paths))
    values[1:, :50] = 20.0
    idx = pd.MultiIndex.from_product([["s|fire|1"], WEEKS[:len(p)]])
    samples = pd.DataFrame(values, index=idx)
    bounded = peak_windows(probs, p_min=0.1, weekly_samples=samples)
    free = peak_windows(probs, p_min=0.1, weekly_samples=samples, open_factor=3.0)
    main = bounded[bounded["window_start"] == WEEKS[4]].iloc[0]
    assert main["onset"] == WEEKS[3]  # not before the blip's window (week 2)
    assert len(free) == 1 and free.iloc[0]["onset"] == WEEKS[1]


def _backtest(blips_are_spikes: bool) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Twelve series: a true window whose P creeps at 0.1 for five weeks before it peaks at
    0.4 (the spike comes early, in weeks 6-7), and a one-week blip of 0.12 in week 15."""
    weekly: list[pd.DataFrame] = []
    actual: list[dict[str, object]] = []
    cats: dict[str, str] = {}
    for i in range(12):
        uid = f"s|fire|{i}"
        cats[uid] = "fire"
        p = np.zeros(20)
        p[5:10], p[10], p[15] = 0.1, 0.4, 0.12
        spike = np.zeros(20, dtype=bool)
        spike[6:8] = True
        spike[15] = blips_are_spikes
        weekly.append(pd.DataFrame({"cutoff": CUT, "unique_id": uid, "week": WEEKS,
                                    "expected": 5.0, "p_spike": p, "threshold": 10.0,
                                    "y": np.where(spike, 20.0, 2.0), "spike": spike}))
        runs = [(6, 7)] + ([(15, 15)] if blips_are_spikes else [])
        actual.extend({"cutoff": CUT, "unique_id": uid, "start": WEEKS[a],
                       "end": WEEKS[b] + pd.Timedelta(days=6), "eligible": True}
                      for a, b in runs)
    return pd.concat(weekly, ignore_index=True), pd.DataFrame(actual), cats


def test_the_learner_opens_high_when_weak_blips_are_false_alarms() -> None:
    weekly, actual, cats = _backtest(blips_are_spikes=False)
    out = learn_thresholds(weekly, actual, categories=cats, grid=(0.1,))
    row = out.iloc[0]
    # factor 1 at 0.1: every blip is a campaign (precision 1/2); 1.5 opens at 0.143: none
    assert row["open_factor"] == 1.5 and row["threshold"] == 0.1
    assert row["precision"] == 1.0 and row["recall"] == 1.0
    assert series_open_factors(out, cats).to_dict() == dict.fromkeys(cats, 1.5)
    assert "opens only where P reaches 0.14" in describe(row.to_dict())
    assert "开启系数 1.5" in describe(row.to_dict(), language="zh")
    none = learn_thresholds(weekly, actual, categories=cats, grid=(0.1,), open_factors=(1.0,))
    assert none.iloc[0]["open_factor"] == 1.0 and none.iloc[0]["precision"] == 0.5
    assert "opens only" not in describe(none.iloc[0].to_dict())


def test_the_learner_keeps_factor_one_when_the_blips_are_real() -> None:
    weekly, actual, cats = _backtest(blips_are_spikes=True)
    row = learn_thresholds(weekly, actual, categories=cats, grid=(0.1,)).iloc[0]
    assert row["open_factor"] == 1.0 and row["recall"] == 1.0
