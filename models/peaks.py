"""Spike thresholds, weekly spike probabilities and peak windows (DESIGN.md definitions).

- Threshold per series, from history only: ``T = max(q90 of weekly counts over the last
  104 weeks, min_spike_count)``. A week is an *actual spike* when its count exceeds ``T``.
- ``P(spike)`` for a future week = share of sample paths whose weekly sum exceeds ``T``.
- A *predicted peak window* = consecutive weeks with ``P(spike) >= p_min`` (that reach the
  open probability, when an open factor is set: :mod:`models.hysteresis`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict, Unpack

import numpy as np
import pandas as pd

from models.hysteresis import DEFAULT_OPEN_FACTOR, open_probability, opened_windows

__all__ = [
    "SpikeRule",
    "DEFAULT_MIN_SPIKE_COUNT",
    "DEFAULT_LOOKBACK_WEEKS",
    "DEFAULT_P_MIN",
    "spike_threshold",
    "thresholds",
    "runs_to_windows",
    "actual_spike_windows",
    "rolling_thresholds",
    "ACTUAL_WINDOW_COLUMNS",
    "spike_probabilities",
    "peak_windows",
    "split_weeks",
    "DEFAULT_MAX_CAMPAIGN_WEEKS",
    "DEFAULT_ONSET_LOOKBACK_WEEKS",
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


def runs_to_windows(weeks: pd.Series | pd.DatetimeIndex, flags: pd.Series
                    ) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
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


ACTUAL_WINDOW_COLUMNS = ["unique_id", "start", "end", "peak_week", "peak_count", "threshold"]
_QUANTILE_CELLS = 2_000_000  # window values per np.quantile call (bounds the memory)


def rolling_thresholds(
    weekly: pd.DataFrame,
    *,
    min_spike_count: float = DEFAULT_MIN_SPIKE_COUNT,
    lookback_weeks: int = DEFAULT_LOOKBACK_WEEKS,
    min_history_weeks: int = 52,
) -> pd.DataFrame:
    """Each week's threshold from the ``lookback_weeks`` weeks before it (history only).

    Vectorised over all series at once: the series are stacked into one matrix (one row per
    series, weeks by position), and every threshold is ``np.quantile`` of a sliding window of
    that matrix, the same numbers :func:`spike_threshold` gives week by week (identical to
    the last bit: one quantile per row, the same interpolation). Windows shorter than
    ``lookback_weeks`` (the first weeks of a series) are done per window length, never per
    series.

    Returns
    -------
    ``weekly`` sorted by ``unique_id, week`` (stable) with a column ``threshold`` (NaN for the
    first ``min_history_weeks`` weeks of each series).
    """
    g = weekly.sort_values(["unique_id", "week"], kind="stable").reset_index(drop=True)
    n = len(g)
    thr = np.full(n, np.nan)
    if n:
        codes, uniques = pd.factorize(g["unique_id"], sort=True)
        first = np.r_[0, np.flatnonzero(np.diff(codes)) + 1]
        lengths = np.diff(np.r_[first, n])
        pos = np.arange(n) - np.repeat(first, lengths)
        width = int(lengths.max())
        mat = np.full((len(uniques), width), np.nan)
        mat[codes, pos] = g["y"].to_numpy(dtype=float)
        out = np.full((len(uniques), width), np.nan)
        # windows shorter than the lookback: week i (min_history <= i < lookback) uses y[:i]
        for i in range(min_history_weeks, min(lookback_weeks, width)):
            rows = np.flatnonzero(lengths > i)
            out[rows, i] = (np.quantile(mat[rows, :i], 0.9, axis=1) if i
                            else float(min_spike_count))
        # full windows: week i >= lookback uses y[i - lookback:i]
        lo = max(lookback_weeks, min_history_weeks)
        if width > lo:
            view = np.lib.stride_tricks.sliding_window_view(mat, lookback_weeks, axis=1)
            # view[:, j] is y[j:j + lookback], the window of week j + lookback
            step = max(1, _QUANTILE_CELLS // (lookback_weeks * max(1, width - lo)))
            for r0 in range(0, len(uniques), step):
                block = view[r0:r0 + step, lo - lookback_weeks:width - lookback_weeks]
                out[r0:r0 + step, lo:width] = np.quantile(block, 0.9, axis=2)
        out = np.maximum(out, float(min_spike_count))  # NaN stays NaN
        thr = out[codes, pos]
        thr[pos < min_history_weeks] = np.nan
    return g.assign(threshold=thr)


class SpikeRule(TypedDict, total=False):
    """The knobs of the spike rule, by keyword (defaults in :func:`rolling_thresholds`):
    ``min_spike_count``, the floor of the threshold T; ``lookback_weeks``, the weeks of
    history whose 90th percentile T is; ``min_history_weeks``, the weeks of history a week
    needs before it is judged."""

    min_spike_count: float
    lookback_weeks: int
    min_history_weeks: int


def actual_spike_windows(weekly: pd.DataFrame, **rule: Unpack[SpikeRule]) -> pd.DataFrame:
    """Actual spike windows: runs of weeks whose count exceeds the threshold from history.

    The threshold for each week uses only the ``lookback_weeks`` complete weeks before it
    (rolling, history only; :func:`rolling_thresholds`, which takes the same ``rule``). Weeks
    with fewer than ``min_history_weeks`` of history are not judged. A run is broken by a week
    that is not flagged or by a gap of more than 7 days. Vectorised over all series (no loop
    per series or per week).

    Returns
    -------
    DataFrame ``unique_id, start, end, peak_week, peak_count, threshold`` where ``start`` is the
    Monday of the first spike week and ``end`` the Sunday of the last; sorted by
    ``unique_id, start``.
    """
    g = rolling_thresholds(weekly, **rule)
    if g.empty:
        return pd.DataFrame(columns=ACTUAL_WINDOW_COLUMNS)
    y = g["y"].to_numpy(dtype=float)
    thr = g["threshold"].to_numpy(dtype=float)
    flag = ~np.isnan(thr) & (y > np.nan_to_num(thr, nan=np.inf))
    if not flag.any():
        return pd.DataFrame(columns=ACTUAL_WINDOW_COLUMNS)
    uid = g["unique_id"].to_numpy()
    week = pd.to_datetime(g["week"]).to_numpy()
    contiguous = np.r_[False, (uid[1:] == uid[:-1])
                       & (np.diff(week) == np.timedelta64(7, "D"))]
    starts = flag & ~(np.r_[False, flag[:-1]] & contiguous)
    rows = np.flatnonzero(flag)
    run = (np.cumsum(starts) - 1)[rows]
    frame = pd.DataFrame({"run": run, "unique_id": uid[rows], "week": week[rows],
                          "y": y[rows], "threshold": thr[rows]})
    by = frame.groupby("run", sort=True)
    peak = frame.loc[by["y"].idxmax(), ["week", "y"]].to_numpy()
    out = by.agg(unique_id=("unique_id", "first"), start=("week", "first"),
                 end=("week", "last"), threshold=("threshold", "first")).reset_index(drop=True)
    out["start"] = pd.to_datetime(out["start"])
    out["end"] = pd.to_datetime(out["end"]) + pd.Timedelta(days=6)
    out["peak_week"] = pd.to_datetime(peak[:, 0])
    out["peak_count"] = peak[:, 1].astype(float)
    out["threshold"] = out["threshold"].astype(float)
    return out[ACTUAL_WINDOW_COLUMNS]


PROBABILITY_COLUMNS = ["unique_id", "week", "expected", "p_spike", "threshold"]
PEAK_WINDOW_COLUMNS = [
    "unique_id", "start", "end", "peak_week", "expected_count", "expected_excess",
    "max_probability", "threshold", "onset", "p_min", "window_start", "window_end", "part",
    "parts",
]
#: How long one reminder is remembered (DESIGN.md): longer predicted windows are split.
DEFAULT_MAX_CAMPAIGN_WEEKS = 6
#: How many weeks before a window's first week its expected onset may lie.
DEFAULT_ONSET_LOOKBACK_WEEKS = 4


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


def split_weeks(first: pd.Timestamp, last: pd.Timestamp, max_weeks: int
                ) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Split the run of weeks ``first..last`` (Mondays) into consecutive parts of at most
    ``max_weeks`` weeks, as equal in length as possible (9 weeks, max 6 -> 5 + 4).

    ``max_weeks <= 0`` keeps the run whole.
    """
    n = int((pd.Timestamp(last) - pd.Timestamp(first)).days // 7) + 1
    k = 1 if max_weeks <= 0 else -(-n // int(max_weeks))
    out: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    start = pd.Timestamp(first)
    for i in range(k):
        size = n // k + (1 if i < n % k else 0)
        out.append((start, start + pd.Timedelta(weeks=size - 1)))
        start += pd.Timedelta(weeks=size)
    return out


def _per_series(value: float | Mapping[str, float] | pd.Series, uid: str, name: str,
                default: float | None = None) -> float:
    """``value`` for series ``uid`` (one value, or one per series); a series missing from
    the mapping gets ``default`` (so does a NaN there), or raises :class:`KeyError` without
    one."""
    if isinstance(value, (int, float, np.floating, np.integer)):
        return float(value)
    got = value.get(uid)
    if got is None or (default is not None and pd.isna(got)):
        if default is None:
            raise KeyError(f"no {name} for series {uid!r}")
        return default
    return float(got)


def _onset(paths: np.ndarray, weeks: pd.DatetimeIndex, threshold: float, first: pd.Timestamp,
           p_min: float, lookback_weeks: int, after: pd.Timestamp | None) -> pd.Timestamp:
    """The week by which a share ``p_min`` of the sample paths has crossed ``threshold`` at
    least once, counting from ``lookback_weeks`` before ``first`` (never before the first
    forecast week or the week after ``after``, the previous window's last week; never after
    ``first``)."""
    earliest = first - pd.Timedelta(weeks=lookback_weeks)
    if after is not None:
        earliest = max(earliest, after + pd.Timedelta(weeks=1))
    lo = max(0, int(weeks.searchsorted(earliest)))
    hi = int(weeks.searchsorted(first))
    if hi >= len(weeks) or weeks[hi] != first:
        return first
    started = np.logical_or.accumulate(paths[lo:hi + 1] > threshold, axis=0).mean(axis=1)
    reached = np.flatnonzero(started >= p_min - 1e-12)
    return pd.Timestamp(weeks[lo + int(reached[0])]) if reached.size else first


def _per_row(value: float | Mapping[str, float] | pd.Series, uids: pd.Series, name: str
             ) -> np.ndarray:
    """``value`` for every row's ``unique_id`` (one value, or one per series)."""
    if isinstance(value, (int, float, np.floating, np.integer)):
        return np.full(len(uids), float(value))
    table = pd.Series(value, dtype=float)
    out = table.reindex(uids.to_numpy()).to_numpy(dtype=float)
    missing = np.isnan(out) & ~uids.isin(table.index).to_numpy()
    if missing.any():
        raise KeyError(f"no {name} for series {uids[missing].iloc[0]!r}")
    return out


def _windows_without_paths(probs: pd.DataFrame, p_min: float | Mapping[str, float] | pd.Series,
                           max_weeks: int | Mapping[str, int] | pd.Series) -> pd.DataFrame:
    """:func:`peak_windows` without sample paths (``onset = start``), vectorised: the same
    runs, splits and figures as the loop, in a few array operations (the threshold learner
    rebuilds the windows of a whole backtest for every candidate threshold)."""
    g = probs.sort_values(["unique_id", "week"], kind="stable").reset_index(drop=True)
    if g.empty:
        return pd.DataFrame(columns=PEAK_WINDOW_COLUMNS)
    uid = g["unique_id"]
    week = pd.to_datetime(g["week"]).to_numpy()
    p = _per_row(p_min, uid, "p_min")
    cap = _per_row(max_weeks, uid, "max_weeks")
    flag = g["p_spike"].to_numpy(dtype=float) >= p
    same = np.r_[False, uid.to_numpy()[1:] == uid.to_numpy()[:-1]]
    contiguous = same & np.r_[False, np.diff(week) == np.timedelta64(7, "D")]
    starts = flag & ~(np.r_[False, flag[:-1]] & contiguous)
    if not flag.any():
        return pd.DataFrame(columns=PEAK_WINDOW_COLUMNS)
    run = np.cumsum(starts) - 1
    rows = np.flatnonzero(flag)
    run = run[rows]
    first_row = np.flatnonzero(starts)
    pos = rows - first_row[run]
    n = np.bincount(run)[run]
    m = cap[rows].astype(np.int64)
    k = np.where(m <= 0, 1, -(-n // np.maximum(m, 1)))
    base, rem = n // k, n % k
    edge = rem * (base + 1)
    part = np.where(pos < edge, pos // (base + 1),
                    rem + (pos - edge) // np.maximum(base, 1)) + 1
    sel = g.iloc[rows]
    expected = sel["expected"].to_numpy(dtype=float)
    thr = sel["threshold"].to_numpy(dtype=float)
    frame = pd.DataFrame({
        "run": run, "part": part, "parts": k, "unique_id": sel["unique_id"].to_numpy(),
        "week": week[rows], "expected": expected,
        "excess": np.clip(expected - thr, 0.0, None), "p_spike": sel["p_spike"].to_numpy(
            dtype=float), "threshold": thr, "p_min": p[rows]})
    frame["window_start"] = frame.groupby("run")["week"].transform("first")
    frame["window_end"] = frame.groupby("run")["week"].transform("last")
    by = frame.groupby(["run", "part"], sort=True)
    peak = frame.loc[by["expected"].idxmax(), "week"].to_numpy()
    out = by.agg(unique_id=("unique_id", "first"), start=("week", "first"),
                 end=("week", "last"), expected_count=("expected", "sum"),
                 expected_excess=("excess", "sum"), max_probability=("p_spike", "max"),
                 threshold=("threshold", "first"), p_min=("p_min", "first"),
                 window_start=("window_start", "first"), window_end=("window_end", "first"),
                 parts=("parts", "first")).reset_index()
    out["start"] = pd.to_datetime(out["start"])
    out["end"] = pd.to_datetime(out["end"]) + pd.Timedelta(days=6)
    out["peak_week"] = pd.to_datetime(peak)
    out["onset"] = out["start"]
    out["window_start"] = pd.to_datetime(out["window_start"])
    out["window_end"] = pd.to_datetime(out["window_end"]) + pd.Timedelta(days=6)
    out["part"] = out["part"].astype(int)
    out["parts"] = out["parts"].astype(int)
    return out[PEAK_WINDOW_COLUMNS].reset_index(drop=True)


def peak_windows(
    probs: pd.DataFrame,
    *,
    p_min: float | Mapping[str, float] | pd.Series = DEFAULT_P_MIN,
    max_weeks: int | Mapping[str, int] | pd.Series = DEFAULT_MAX_CAMPAIGN_WEEKS,
    weekly_samples: pd.DataFrame | None = None,
    onset_lookback_weeks: int = DEFAULT_ONSET_LOOKBACK_WEEKS,
    open_factor: float | Mapping[str, float] | pd.Series = DEFAULT_OPEN_FACTOR,
) -> pd.DataFrame:
    """Predicted peak windows, split into campaign windows (DESIGN.md definitions).

    A predicted peak window is a run of consecutive weeks with ``p_spike >= p_min``; a run
    longer than ``max_weeks`` becomes consecutive campaign windows of at most that many weeks
    (:func:`split_weeks`), one row each, so that precision is counted per campaign.

    Parameters
    ----------
    probs : DataFrame ``unique_id, week, expected, p_spike, threshold``
        (see :func:`spike_probabilities`).
    p_min : decision threshold: one value, or one per ``unique_id`` (a mapping or Series;
        see :mod:`models.decision` for thresholds learned per category).
    max_weeks : longest campaign window in weeks, one value or one per ``unique_id``
        (``0`` = never split).
    weekly_samples : the sample paths behind ``probs`` (``ForecastOutput.weekly_samples``).
        When given, each window's ``onset`` is the week by which a share ``p_min`` of the
        paths has crossed the threshold, looking back up to ``onset_lookback_weeks`` before
        the first week (not past the series' previous window): an uncertain start is warned
        of early. Without paths, or for the
        second and later part of a split window, ``onset = start``.
    open_factor : hysteresis (:mod:`models.hysteresis`): a run of weeks is a window only when
        its highest ``p_spike`` reaches :func:`~models.hysteresis.open_probability` of
        ``p_min`` and this factor; one value or one per ``unique_id``; 1 = every run.

    Returns
    -------
    DataFrame with :data:`PEAK_WINDOW_COLUMNS`: ``start`` is the Monday of the first week of
    the campaign window, ``end`` the Sunday of its last, ``peak_week`` the week with the
    highest expected count, ``expected_count`` the sum of expected weekly counts,
    ``expected_excess`` the sum of ``max(expected - threshold, 0)`` (for ranking),
    ``max_probability`` the highest weekly ``p_spike``, ``onset`` the Monday of the expected
    onset week, ``p_min`` the decision threshold used, ``window_start``/``window_end`` the
    whole predicted window, ``part``/``parts`` the position in it (1-based).
    """
    if weekly_samples is None:
        return opened_windows(_windows_without_paths(probs, p_min, max_weeks), open_factor)
    rows = []
    for uid, g in probs.sort_values("week").groupby("unique_id", sort=True):
        g = g.reset_index(drop=True)
        weeks = pd.DatetimeIndex(pd.to_datetime(g["week"]))
        p = _per_series(p_min, str(uid), "p_min")
        cap = int(_per_series(max_weeks, str(uid), "max_weeks"))
        opens = float(open_probability(p, _per_series(open_factor, str(uid), "open factor",
                                                      DEFAULT_OPEN_FACTOR)))
        paths: np.ndarray | None = None
        path_weeks = pd.DatetimeIndex([])
        if weekly_samples is not None and uid in weekly_samples.index.get_level_values(0):
            block = weekly_samples.xs(uid, level=0)
            path_weeks = pd.DatetimeIndex(pd.to_datetime(block.index))
            paths = block.to_numpy(dtype=float)
        previous: pd.Timestamp | None = None
        for first, last in runs_to_windows(weeks, g["p_spike"] >= p):
            if opens > p and g.loc[(weeks >= first) & (weeks <= last),
                                   "p_spike"].max() < opens - 1e-12:
                continue  # never reaches the open probability: no window
            parts = split_weeks(first, last, cap)
            for k, (a, b) in enumerate(parts, start=1):
                sel = (weeks >= a) & (weeks <= b)
                w = g[sel]
                expected = w["expected"].to_numpy(dtype=float)
                thr = w["threshold"].to_numpy(dtype=float)
                onset = a
                if paths is not None and k == 1:
                    onset = _onset(paths, path_weeks, float(thr[0]), a, p, onset_lookback_weeks,
                                   previous)
                rows.append({
                    "unique_id": uid,
                    "start": a,
                    "end": b + pd.Timedelta(days=6),
                    "peak_week": pd.Timestamp(w["week"].iloc[int(np.argmax(expected))]),
                    "expected_count": float(expected.sum()),
                    "expected_excess": float(np.clip(expected - thr, 0.0, None).sum()),
                    "max_probability": float(w["p_spike"].max()),
                    "threshold": float(thr[0]),
                    "onset": onset,
                    "p_min": p,
                    "window_start": first,
                    "window_end": last + pd.Timedelta(days=6),
                    "part": k,
                    "parts": len(parts),
                })
            previous = last
    return pd.DataFrame(rows, columns=PEAK_WINDOW_COLUMNS)
