"""Spike thresholds, weekly spike probabilities and peak windows (DESIGN.md definitions).

- Threshold per series, from history only: ``T = max(q90 of weekly counts over the last
  104 weeks, min_spike_count)``. A week is an *actual spike* when its count exceeds ``T``.
- ``P(spike)`` for a future week = share of sample paths whose weekly sum exceeds ``T``.
- A *predicted peak window* = consecutive weeks with ``P(spike) >= p_min``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_MIN_SPIKE_COUNT",
    "DEFAULT_LOOKBACK_WEEKS",
    "DEFAULT_P_MIN",
    "spike_threshold",
    "thresholds",
    "runs_to_windows",
    "actual_spike_windows",
    "spike_probabilities",
    "peak_windows",
    "PROBABILITY_COLUMNS",
    "PEAK_WINDOW_COLUMNS",
]

DEFAULT_MIN_SPIKE_COUNT = 5.0
DEFAULT_LOOKBACK_WEEKS = 104
DEFAULT_P_MIN = 0.5


def spike_threshold(
    weekly_counts: pd.Series | np.ndarray,
    *,
    min_spike_count: float = DEFAULT_MIN_SPIKE_COUNT,
    lookback_weeks: int = DEFAULT_LOOKBACK_WEEKS,
) -> float:
    """``max(q90 of the last lookback_weeks weekly counts, min_spike_count)``.

    ``weekly_counts`` must be in time order and hold complete weeks of history only.
    """
    values = np.asarray(weekly_counts, dtype=float)[-lookback_weeks:]
    if values.size == 0:
        return float(min_spike_count)
    return float(max(np.quantile(values, 0.9), min_spike_count))


def thresholds(
    weekly: pd.DataFrame,
    *,
    until: pd.Timestamp | pd.Series | None = None,
    min_spike_count: float = DEFAULT_MIN_SPIKE_COUNT,
    lookback_weeks: int = DEFAULT_LOOKBACK_WEEKS,
) -> pd.Series:
    """Threshold per series from complete weeks starting before ``until``.

    Parameters
    ----------
    weekly : DataFrame ``unique_id, week, y`` (see :func:`models.series.to_weekly`).
    until : only weeks with ``week + 7 days <= until`` count (history only); None = all.
        A Series indexed by ``unique_id`` gives each series its own cut-off (series that
        are not in it, or whose cut-off is NaT, keep all their weeks).

    Returns
    -------
    Series indexed by ``unique_id`` named ``threshold``.
    """
    w = weekly
    if isinstance(until, pd.Series):
        cut = pd.to_datetime(w["unique_id"].map(until))
        w = w[cut.isna() | (w["week"] + pd.Timedelta(days=7) <= cut)]
    elif until is not None:
        w = w[w["week"] + pd.Timedelta(days=7) <= pd.Timestamp(until)]
    out = w.sort_values("week").groupby("unique_id")["y"].apply(
        lambda s: spike_threshold(s, min_spike_count=min_spike_count, lookback_weeks=lookback_weeks)
    )
    out.name = "threshold"
    return out


def runs_to_windows(weeks: pd.Series, flags: pd.Series) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Consecutive flagged weeks as ``(first_week, last_week)`` pairs (week Mondays).

    ``weeks`` must be sorted; a gap of more than 7 days breaks a run.
    """
    windows: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    start: pd.Timestamp | None = None
    prev: pd.Timestamp | None = None
    for week, flag in zip(pd.to_datetime(weeks), flags.to_numpy(dtype=bool), strict=True):
        contiguous = prev is not None and (week - prev) == pd.Timedelta(days=7)
        if flag and start is not None and contiguous:
            prev = week
            continue
        if start is not None and prev is not None:
            windows.append((start, prev))
            start = None
        if flag:
            start = week
        prev = week
    if start is not None and prev is not None:
        windows.append((start, prev))
    return windows


def actual_spike_windows(
    weekly: pd.DataFrame,
    *,
    min_spike_count: float = DEFAULT_MIN_SPIKE_COUNT,
    lookback_weeks: int = DEFAULT_LOOKBACK_WEEKS,
    min_history_weeks: int = 52,
) -> pd.DataFrame:
    """Actual spike windows: runs of weeks whose count exceeds the threshold from history.

    The threshold for each week uses only the ``lookback_weeks`` complete weeks before it
    (rolling, history only). Weeks with fewer than ``min_history_weeks`` of history are not
    judged.

    Returns
    -------
    DataFrame ``unique_id, start, end, peak_week, peak_count, threshold`` where ``start`` is the
    Monday of the first spike week and ``end`` the Sunday of the last.
    """
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
            rows.append({
                "unique_id": uid,
                "start": start,
                "end": last + pd.Timedelta(days=6),
                "peak_week": weeks[peak],
                "peak_count": float(y[peak]),
                "threshold": float(thr[idx[0]]),
            })
    cols = ["unique_id", "start", "end", "peak_week", "peak_count", "threshold"]
    return pd.DataFrame(rows, columns=cols)


PROBABILITY_COLUMNS = ["unique_id", "week", "expected", "p_spike", "threshold"]
PEAK_WINDOW_COLUMNS = [
    "unique_id", "start", "end", "peak_week", "expected_count", "expected_excess",
    "max_probability", "threshold",
]


def spike_probabilities(weekly_samples: pd.DataFrame, thresholds: pd.Series) -> pd.DataFrame:
    """Weekly spike probability per series from predictive sample paths.

    Parameters
    ----------
    weekly_samples : DataFrame indexed by ``(unique_id, week)`` with one column per sample
        path holding the path's weekly sum (``ForecastOutput.weekly_samples``).
    thresholds : Series indexed by ``unique_id`` (see :func:`thresholds`). Series without a
        threshold are left out of the result.

    Returns
    -------
    DataFrame ``unique_id, week, expected, p_spike, threshold`` sorted by ``unique_id, week``:
    ``expected`` is the mean of the paths, ``p_spike`` the share of paths strictly above
    ``threshold``.
    """
    if weekly_samples.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in PROBABILITY_COLUMNS})
    values = weekly_samples.to_numpy(dtype=float)
    uids = weekly_samples.index.get_level_values(0)
    thr = pd.Series(thresholds, dtype=float).reindex(uids).to_numpy()
    keep = ~np.isnan(thr)
    out = pd.DataFrame({
        "unique_id": uids[keep],
        "week": pd.to_datetime(weekly_samples.index.get_level_values(1)[keep]),
        "expected": values[keep].mean(axis=1),
        "p_spike": (values[keep] > thr[keep, None]).mean(axis=1),
        "threshold": thr[keep],
    })
    return out.sort_values(["unique_id", "week"], kind="stable").reset_index(drop=True)


def peak_windows(probs: pd.DataFrame, *, p_min: float = DEFAULT_P_MIN) -> pd.DataFrame:
    """Predicted peak windows: runs of consecutive weeks with ``p_spike >= p_min``.

    Parameters
    ----------
    probs : DataFrame ``unique_id, week, expected, p_spike, threshold``
        (see :func:`spike_probabilities`).
    p_min : minimum weekly spike probability for a week to belong to a window.

    Returns
    -------
    DataFrame ``unique_id, start, end, peak_week, expected_count, expected_excess,
    max_probability, threshold``: ``start`` is the Monday of the first week, ``end`` the Sunday
    of the last, ``peak_week`` the week with the highest expected count, ``expected_count`` the
    sum of expected weekly counts over the window, ``expected_excess`` the sum of
    ``max(expected - threshold, 0)`` (for ranking windows) and ``max_probability`` the highest
    weekly ``p_spike``.
    """
    rows = []
    for uid, g in probs.sort_values("week").groupby("unique_id", sort=True):
        g = g.reset_index(drop=True)
        weeks = pd.to_datetime(g["week"])
        for first, last in runs_to_windows(weeks, g["p_spike"] >= p_min):
            w = g[(weeks >= first) & (weeks <= last)]
            expected = w["expected"].to_numpy(dtype=float)
            thr = w["threshold"].to_numpy(dtype=float)
            rows.append({
                "unique_id": uid,
                "start": first,
                "end": last + pd.Timedelta(days=6),
                "peak_week": pd.Timestamp(w["week"].iloc[int(np.argmax(expected))]),
                "expected_count": float(expected.sum()),
                "expected_excess": float(np.clip(expected - thr, 0.0, None).sum()),
                "max_probability": float(w["p_spike"].max()),
                "threshold": float(thr[0]),
            })
    return pd.DataFrame(rows, columns=PEAK_WINDOW_COLUMNS)
