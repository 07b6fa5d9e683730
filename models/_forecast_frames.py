"""Frames in and out of :class:`models.forecast.ProphetForecaster`: the cleaned input, the
paths' ISO-week sums (the partial first week completed with the observed days, a partial last
week left out) and empty-safe concatenation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.series import iso_mondays
from models.types import require_columns

__all__ = []


def _clean(df: pd.DataFrame) -> pd.DataFrame:
    require_columns(df, ("unique_id", "ds", "y"))
    out = pd.DataFrame({
        "unique_id": df["unique_id"].astype(str).to_numpy(),
        "ds": pd.to_datetime(df["ds"]).dt.normalize().astype("datetime64[ns]").to_numpy(),
        "y": pd.to_numeric(df["y"], errors="coerce").astype(float).to_numpy(),
    })
    return out


def _weekly_sums(
    uid: str, hist: pd.DataFrame, future: pd.DatetimeIndex, paths: np.ndarray
) -> pd.DataFrame:
    weeks = iso_mondays(future)
    starts = np.flatnonzero(np.r_[True, weeks[1:] != weeks[:-1]])
    sums = np.add.reduceat(paths, starts, axis=0)
    labels = weeks[starts]
    first = pd.Timestamp(labels[0])
    if future[0] != first:  # partial first week: add the observed days of that week
        observed = hist.loc[hist["ds"] >= first, "y"].sum()
        sums[0] += float(observed)
    if future[-1].weekday() != 6:  # partial last week: leave out
        sums, labels = sums[:-1], labels[:-1]
    index = pd.MultiIndex.from_arrays(
        [np.full(len(labels), uid, dtype=object), pd.DatetimeIndex(labels)],
        names=["unique_id", "week"])
    return pd.DataFrame(sums, index=index, columns=pd.RangeIndex(paths.shape[1]))


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return pd.concat(frames, ignore_index=True)[columns]


def _concat_weekly(frames: list[pd.DataFrame], n_samples: int) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if frames:
        return pd.concat(frames)
    index = pd.MultiIndex.from_arrays(
        [pd.Index([], dtype=object), pd.DatetimeIndex([])], names=["unique_id", "week"])
    return pd.DataFrame(np.zeros((0, n_samples)), index=index,
                        columns=pd.RangeIndex(n_samples))
