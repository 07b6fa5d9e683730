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
    split_weeks,
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


@pytest.mark.parametrize("weeks, cap, sizes", [
    (9, 6, [5, 4]), (6, 6, [6]), (13, 6, [5, 4, 4]), (7, 3, [3, 2, 2]), (20, 0, [20]),
])
def test_split_weeks_into_balanced_campaign_windows(weeks: int, cap: int,
                                                    sizes: list[int]) -> None:
    first = pd.Timestamp("2024-01-01")
    parts = split_weeks(first, first + pd.Timedelta(weeks=weeks - 1), cap)
    assert [int((b - a).days // 7) + 1 for a, b in parts] == sizes
    # consecutive, no gap, no overlap, covering the run
    assert parts[0][0] == first and parts[-1][1] == first + pd.Timedelta(weeks=weeks - 1)
    assert all(b + pd.Timedelta(weeks=1) == c for (_, b), (c, _) in zip(parts, parts[1:],
                                                                       strict=False))


def test_long_windows_become_campaign_windows() -> None:
    probs = _probs("a", "2024-01-01", [0.9] * 9 + [0.1], list(range(10, 20)), 5.0)
    out = peak_windows(probs, p_min=0.5, max_weeks=6)
    assert len(out) == 2 and out["parts"].tolist() == [2, 2] and out["part"].tolist() == [1, 2]
    assert out["start"].dt.strftime("%m-%d").tolist() == ["01-01", "02-05"]
    assert out["end"].dt.strftime("%m-%d").tolist() == ["02-04", "03-03"]
    assert (out["window_start"] == pd.Timestamp("2024-01-01")).all()
    assert (out["window_end"] == pd.Timestamp("2024-03-03")).all()
    assert out["expected_count"].tolist() == [sum(range(10, 15)), sum(range(15, 19))]
    whole = peak_windows(probs, p_min=0.5, max_weeks=0)
    assert len(whole) == 1 and whole.iloc[0]["end"] == pd.Timestamp("2024-03-03")
    # a threshold and a cap per series
    two = pd.concat([probs, probs.assign(unique_id="b")])
    out = peak_windows(two, p_min=pd.Series({"a": 0.5, "b": 0.95}),
                       max_weeks={"a": 3, "b": 6})
    assert out["unique_id"].tolist() == ["a", "a", "a"]
    assert out["p_min"].tolist() == [0.5, 0.5, 0.5]


def test_onset_is_where_enough_paths_have_started() -> None:
    """Ten paths over six weeks; the window (P >= 0.3) starts in week 4, but four of the
    paths cross T already in week 2: with p_min 0.3 the expected onset is week 2."""
    weeks = pd.date_range("2024-01-01", periods=6, freq="7D")
    paths = np.zeros((6, 10))
    paths[1, :4] = 20.0          # week 2: four paths early (weekly P 0.4 >= 0.3 too)
    paths[3:, :] = 20.0          # weeks 4-6: every path
    paths[2, 4:5] = 20.0         # week 3: one path (P 0.1 < 0.3)
    index = pd.MultiIndex.from_arrays([["a"] * 6, weeks], names=["unique_id", "week"])
    samples = pd.DataFrame(paths, index=index)
    probs = spike_probabilities(samples, pd.Series({"a": 10.0}))
    out = peak_windows(probs, p_min=0.3, weekly_samples=samples)
    # at p_min 0.3 week 2 is a window of its own; the second window's onset looks back only
    # to the week after it (one path of ten in week 3: too few)
    assert out["start"].dt.strftime("%m-%d").tolist() == ["01-08", "01-22"]
    assert out["onset"].tolist() == [pd.Timestamp("2024-01-08"), pd.Timestamp("2024-01-22")]
    # at p_min 0.5 the window starts in week 4, but by week 3 five of the ten paths have
    # crossed T: the expected onset is week 3, a week before the window
    late = peak_windows(probs, p_min=0.5, weekly_samples=samples)
    assert late["start"].tolist() == [pd.Timestamp("2024-01-22")]
    assert late["onset"].tolist() == [pd.Timestamp("2024-01-15")]
    # without paths the onset is the first week
    bare = peak_windows(probs, p_min=0.5)
    assert bare["onset"].tolist() == bare["start"].tolist()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_windows_without_paths_equal_the_loop(seed: int) -> None:
    """The vectorised path (no sample paths) gives exactly the loop's windows: runs broken
    by low weeks and by gaps in the weeks, per-series thresholds and lengths, splits."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(12):
        weeks = pd.date_range("2024-01-01", periods=40, freq="7D")
        keep = rng.random(40) > 0.08  # a few missing weeks break runs
        p = np.clip(rng.normal(0.35, 0.25, 40), 0, 1)
        p[10:21] = 0.9  # a long run to split
        for w, ok, pp in zip(weeks, keep, p, strict=True):
            if ok:
                rows.append({"unique_id": f"s{i:02d}", "week": w, "p_spike": pp,
                             "expected": float(rng.poisson(20)), "threshold": 15.0 + i})
    probs = pd.DataFrame(rows).sample(frac=1.0, random_state=seed)  # any row order
    p_min = pd.Series({f"s{i:02d}": 0.2 + 0.03 * i for i in range(12)})
    max_weeks = {f"s{i:02d}": [0, 1, 3, 6][i % 4] for i in range(12)}
    no_paths = pd.DataFrame(index=pd.MultiIndex.from_arrays([[], []]))
    for pm, mw in ((p_min, max_weeks), (0.4, 6), (0.95, 2)):
        fast = peak_windows(probs, p_min=pm, max_weeks=mw)
        loop = peak_windows(probs, p_min=pm, max_weeks=mw, weekly_samples=no_paths)
        assert len(loop) > 0 or pm == 0.95
        pd.testing.assert_frame_equal(fast, loop)
    with pytest.raises(KeyError, match="no p_min for series"):
        peak_windows(probs, p_min=p_min.drop("s03"))
