"""Spike probabilities and predicted peak windows on constructed inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.peaks import (
    PEAK_WINDOW_COLUMNS,
    PROBABILITY_COLUMNS,
    peak_windows,
    spike_probabilities,
    thresholds,
)


def _samples(rows: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    index = pd.MultiIndex.from_tuples(
        [(u, pd.Timestamp(w)) for u, w in rows], names=["unique_id", "week"])
    return pd.DataFrame(list(rows.values()), index=index)


def test_spike_probabilities_counts_paths_strictly_above_threshold() -> None:
    samples = _samples({
        ("b", "2024-01-08"): [1.0, 2.0, 3.0, 10.0],
        ("a", "2024-01-08"): [5.0, 5.0, 6.0, 7.0],   # 5 == T is not a spike
        ("a", "2024-01-01"): [0.0, 0.0, 0.0, 20.0],
        ("c", "2024-01-01"): [9.0, 9.0, 9.0, 9.0],   # no threshold -> left out
    })
    thr = pd.Series({"a": 5.0, "b": 2.5}, name="threshold")
    out = spike_probabilities(samples, thr)
    assert list(out.columns) == PROBABILITY_COLUMNS
    assert out[["unique_id", "week"]].astype(str).values.tolist() == [
        ["a", "2024-01-01"], ["a", "2024-01-08"], ["b", "2024-01-08"]]
    assert out["p_spike"].tolist() == [0.25, 0.5, 0.5]
    assert out["expected"].tolist() == [5.0, 5.75, 4.0]
    assert out["threshold"].tolist() == [5.0, 5.0, 2.5]


def test_spike_probabilities_empty() -> None:
    out = spike_probabilities(pd.DataFrame(), pd.Series(dtype=float))
    assert out.empty and list(out.columns) == PROBABILITY_COLUMNS


def _probs(uid: str, start: str, p: list[float], expected: list[float], thr: float,
           skip: int | None = None) -> pd.DataFrame:
    weeks = pd.date_range(start, periods=len(p), freq="7D")
    frame = pd.DataFrame({"unique_id": uid, "week": weeks, "expected": expected, "p_spike": p,
                          "threshold": thr})
    if skip is not None:
        frame = frame.drop(index=skip)
    return frame


def test_peak_windows_runs_and_summaries() -> None:
    probs = pd.concat([
        _probs("a", "2024-03-04", [0.2, 0.6, 0.5, 0.4, 0.9], [3, 12, 15, 8, 20], 10.0),
        # week 3 missing from the frame: the gap breaks the run
        _probs("b", "2024-03-04", [0.7, 0.8, 0.1, 0.9, 0.95], [6, 7, 1, 9, 9], 5.0, skip=2),
    ]).sample(frac=1.0, random_state=1)  # order must not matter
    out = peak_windows(probs, p_min=0.5)
    assert list(out.columns) == PEAK_WINDOW_COLUMNS
    got = list(zip(out["unique_id"], out["start"].dt.strftime("%Y-%m-%d"),
                   out["end"].dt.strftime("%Y-%m-%d"), strict=True))
    assert got == [("a", "2024-03-11", "2024-03-24"), ("a", "2024-04-01", "2024-04-07"),
                   ("b", "2024-03-04", "2024-03-17"), ("b", "2024-03-25", "2024-04-07")]
    first = out.iloc[0]
    assert first["peak_week"] == pd.Timestamp("2024-03-18")
    assert first["expected_count"] == 27.0
    assert first["expected_excess"] == 2.0 + 5.0
    assert first["max_probability"] == 0.6
    assert first["threshold"] == 10.0
    assert out.iloc[1]["expected_excess"] == 10.0
    # ties on the expected count: the first such week is the peak
    assert out.iloc[3]["peak_week"] == pd.Timestamp("2024-03-25")
    assert out.iloc[3]["expected_excess"] == 8.0


def test_peak_windows_p_min_is_inclusive_and_empty() -> None:
    probs = _probs("a", "2024-01-01", [0.5, 0.49], [9, 9], 5.0)
    assert len(peak_windows(probs, p_min=0.5)) == 1
    none = peak_windows(probs, p_min=0.9)
    assert none.empty and list(none.columns) == PEAK_WINDOW_COLUMNS


@pytest.mark.parametrize("until, expected", [(None, 50.0), ("2024-01-29", 5.0)])
def test_thresholds_use_history_only(until: str | None, expected: float) -> None:
    weeks = pd.date_range("2023-01-02", periods=60, freq="7D")
    y = np.ones(60)
    y[-8:] = 50.0  # a late surge only visible without the cut-off
    weekly = pd.DataFrame({"unique_id": "a", "week": weeks, "y": y})
    thr = thresholds(weekly, until=None if until is None else pd.Timestamp(until))
    assert thr["a"] == pytest.approx(expected)
