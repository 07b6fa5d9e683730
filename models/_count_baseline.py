"""The machinery the count baselines share (:mod:`models.baselines`, :mod:`models.hgb`):
frame preparation, per-series random streams, weekly sums of sample paths and the
``_CountBaseline`` estimator that turns a model's point forecast and noise into a
:class:`models.types.ForecastOutput`."""

from __future__ import annotations

import zlib
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from models.series import week_start
from models.types import (
    DAILY_COLUMNS,
    FAILURE_COLUMNS,
    FLAG_COLUMNS,
    ForecastOutput,
    require_columns,
)

__all__ = ["SEASON_DAYS", "FloatArray", "_CountBaseline"]

SEASON_DAYS = 364
_LOWER_Q, _UPPER_Q = 0.1, 0.9

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


def _prepare(df: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Zero-filled, sorted ``unique_id, ds, y`` with float ``y``, and the series left out.

    A series with a negative or missing count is left out (one failure row each) instead of
    failing the whole batch.
    """
    require_columns(df, ("unique_id", "ds", "y"))
    f = df[["unique_id", "ds", "y"]].copy()
    f["ds"] = pd.to_datetime(f["ds"]).dt.normalize()
    f["y"] = pd.to_numeric(f["y"], errors="coerce").astype(float)
    invalid = f["y"].isna() | (f["y"] < 0)
    bad = pd.unique(f.loc[invalid, "unique_id"])
    failures = [{"unique_id": str(u), "error": "ValueError: negative or missing counts"}
                for u in bad]
    f = f[~f["unique_id"].isin(bad)]
    f = f.groupby(["unique_id", "ds"], sort=True, as_index=False).agg(y=("y", "sum"))
    parts = []
    for uid, g in f.groupby("unique_id", sort=True):
        idx = pd.date_range(g["ds"].iloc[0], g["ds"].iloc[-1], freq="D")
        y = g.set_index("ds")["y"].reindex(idx, fill_value=0.0)
        parts.append(pd.DataFrame({"unique_id": uid, "ds": idx, "y": y.to_numpy(dtype=float)}))
    if not parts:
        raise ValueError("no usable series in the frame")
    return pd.concat(parts, ignore_index=True), failures


def _series_rng(random_state: int | None, uid: object) -> np.random.Generator:
    key = zlib.crc32(str(uid).encode("utf-8"))
    seed = [0 if random_state is None else int(random_state), key]
    return np.random.default_rng(seed)


def _weekly_sums(
    ds: pd.DatetimeIndex, paths: FloatArray, observed_first_week: float, n_observed: int
) -> tuple[pd.DatetimeIndex, FloatArray]:
    """Sum daily paths ``(S, h)`` per ISO week; keep complete weeks only.

    The first week adds ``observed_first_week`` (the known days before the horizon); a
    trailing week that the horizon does not cover completely is dropped.
    """
    codes, uniq = pd.factorize(pd.DatetimeIndex(week_start(ds)), sort=True)
    starts = np.flatnonzero(np.r_[True, np.diff(codes) != 0])
    counts = np.bincount(codes)
    sums = np.add.reduceat(paths, starts, axis=1) if paths.shape[1] else paths
    if counts.size:
        sums[:, 0] += observed_first_week
        counts[0] += n_observed
    keep = counts == 7
    return pd.DatetimeIndex(uniq[keep]), sums[:, keep]


class _CountBaseline(BaseEstimator):  # type: ignore[misc]
    """Shared ``predict`` machinery: daily point + daily sample paths -> ForecastOutput."""

    model_name: ClassVar[str] = "baseline"
    n_samples: int
    random_state: int | None

    history_: pd.DataFrame
    flags_: list[tuple[str, str, str]]
    fit_failures_: list[dict[str, str]]

    # subclasses implement _fit, _points and _forecast_series
    def _fit(self, hist: pd.DataFrame) -> None:
        raise NotImplementedError

    def _forecast_series(self, uid: object, future: pd.DatetimeIndex, point: FloatArray,
                         rng: np.random.Generator) -> FloatArray:
        """Daily sample paths ``(n_samples, len(future))`` for one series (may be negative:
        daily intervals clip them at 0 day by day, weekly sums once per week)."""
        raise NotImplementedError

    def _points(self, future: pd.DataFrame) -> FloatArray:
        """Point forecasts aligned with ``future`` (``unique_id, ds``)."""
        raise NotImplementedError

    def fit(self, df: pd.DataFrame) -> Self:
        """Fit on a long daily frame ``unique_id, ds, y`` (missing days count as 0).

        Returns
        -------
        self
        """
        hist, self.fit_failures_ = _prepare(df)
        self.history_ = hist
        self.flags_ = []
        self._fit(hist)
        return self

    def predict(self, horizon: int) -> ForecastOutput:
        """Forecast ``horizon`` days after each series' last day.

        Returns
        -------
        ForecastOutput
            ``daily``: ``unique_id, ds, yhat, yhat_lower, yhat_upper, model`` (80 % interval
            from the 10 % and 90 % quantiles of the daily sample paths, widened if needed to
            contain ``yhat``); ``weekly_samples``: index ``(unique_id, week)``, columns
            ``0..n_samples-1``, complete ISO weeks only (the partial first week includes the
            observed days, a trailing partial week is dropped).
        """
        if not hasattr(self, "history_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        if horizon < 1:
            raise ValueError("horizon must be >= 1")
        hist = self.history_
        last = hist.groupby("unique_id", sort=True)["ds"].max()
        future = pd.concat(
            [pd.DataFrame({"unique_id": uid,
                           "ds": pd.date_range(d + pd.Timedelta(days=1), periods=horizon)})
             for uid, d in last.items()],
            ignore_index=True,
        )
        points = self._points(future)
        future = future.assign(point=np.clip(points, 0.0, None))

        daily_parts: list[pd.DataFrame] = []
        weekly_parts: list[pd.DataFrame] = []
        failures: list[dict[str, str]] = list(self.fit_failures_)
        cols = list(range(self.n_samples))
        hist_groups = dict(tuple(hist.groupby("unique_id", sort=True)))
        for uid, fut in future.groupby("unique_id", sort=True):
            try:
                h = hist_groups[uid]
                ds = pd.DatetimeIndex(fut["ds"])
                point = fut["point"].to_numpy(dtype=float)
                paths = self._forecast_series(uid, ds, point, _series_rng(self.random_state, uid))
                clipped = np.clip(paths, 0.0, None)
                lo = np.quantile(clipped, _LOWER_Q, axis=0)
                hi = np.quantile(clipped, _UPPER_Q, axis=0)
                daily_parts.append(pd.DataFrame({
                    "unique_id": uid, "ds": ds, "yhat": point,
                    "yhat_lower": np.minimum(lo, point), "yhat_upper": np.maximum(hi, point),
                    "model": self.model_name,
                }))
                first_week = week_start(ds[:1]).iloc[0]
                known = h[h["ds"] >= first_week]
                # weekly sums of the unclipped daily paths, clipped once per week: clipping
                # each day would bias low-count series upwards (additive errors)
                weeks, sums = _weekly_sums(ds, paths, float(known["y"].sum()), len(known))
                sums = np.clip(sums, 0.0, None)
                part = pd.DataFrame(sums.T, columns=cols)
                part.index = pd.MultiIndex.from_arrays(
                    [np.repeat(np.array([uid], dtype=object), len(weeks)), weeks],
                    names=["unique_id", "week"])
                weekly_parts.append(part)
            except Exception as exc:  # one failing series must not abort the batch
                failures.append({"unique_id": str(uid), "error": f"{type(exc).__name__}: {exc}"})

        daily = (pd.concat(daily_parts, ignore_index=True) if daily_parts
                 else pd.DataFrame(columns=DAILY_COLUMNS))
        if weekly_parts:
            weekly = pd.concat(weekly_parts)
        else:
            weekly = pd.DataFrame(columns=cols, index=pd.MultiIndex.from_arrays(
                [[], pd.DatetimeIndex([])], names=["unique_id", "week"]))
        flags = pd.DataFrame(self.flags_, columns=FLAG_COLUMNS)
        return ForecastOutput(daily=daily[DAILY_COLUMNS], weekly_samples=weekly, flags=flags,
                              failures=pd.DataFrame(failures, columns=FAILURE_COLUMNS))


# --------------------------------------------------------------------------- seasonal naive
