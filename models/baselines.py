"""Baseline forecasters behind the same interface as Prophet.

Every baseline takes a long daily frame ``unique_id, ds, y`` in ``fit`` and return a
:class:`models.types.ForecastOutput` from ``predict(horizon)``: daily ``yhat`` with an 80 %
interval and weekly predictive sample paths, so that ``P(spike)`` (DESIGN.md) is computed
the same way for every model.

- :class:`SeasonalNaive` — the value of the same weekday of the same ISO week one year
  earlier (lag 364 days = 52 weeks). Uncertainty: a **weekly block bootstrap of its own past
  errors**: for each sample path and future ISO week, one past week of daily in-sample
  errors ``y[t] - y[t - 364]`` (the 7 days of a random complete week among the last
  ``error_weeks``) is added to the point forecast, day by day. Daily values are clipped at 0
  for the daily interval; weekly sums are clipped once per week (clipping each day first
  would push low-count series upwards, since a day forecast at 0 can only move up). Drawing
  whole weeks keeps the within-week correlation of errors (a season that comes a week early
  moves all 7 days), which is what the weekly spike probability depends on; independent
  daily errors would make weekly sums far too narrow. With fewer than ``min_error_weeks``
  weeks of errors it falls back to Poisson noise around the point (flag ``short_history``).
- :class:`GlobalHistGradientBoosting` (:mod:`models.hgb`) — one scikit-learn
  ``HistGradientBoostingRegressor`` (Poisson loss) across all series, direct multi-horizon:
  every training row is a (target day, origin) pair with a random lead ``h`` in
  ``1..max_horizon``, and every feature is known at the origin (calendar of the target day,
  series code, recent levels at the origin, same-week-last-year values). Uncertainty: a
  Poisson–gamma mixture around the mean, with a weekly gamma factor (variance ``beta``, from
  weekly in-sample residuals) and a daily gamma factor (variance ``alpha``, the remaining
  daily over-dispersion).
- :class:`PlainProphet` — a default Prophet loop on raw daily counts, the reference.

The shared estimator machinery is in :mod:`models._count_baseline`. Sample paths are seeded
per series (``random_state`` and the series id), so a series' paths
do not depend on which other series are in the frame.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from models._count_baseline import SEASON_DAYS, FloatArray, _CountBaseline
from models.hgb import GlobalHistGradientBoosting, calendar_features
from models.series import week_start

__all__ = ["SeasonalNaive", "GlobalHistGradientBoosting", "PlainProphet", "calendar_features",
           "SEASON_DAYS", "FloatArray"]


class SeasonalNaive(_CountBaseline):
    """Same weekday of the same ISO week one year earlier (lag 364 days).

    Parameters
    ----------
    n_samples : number of sample paths.
    error_weeks : how many recent complete weeks of in-sample errors to bootstrap from.
    min_error_weeks : below this many weeks of errors, paths are Poisson around the point.
    random_state : seed (combined with the series id).

    Notes
    -----
    Horizons beyond 364 days repeat the forecast (lag 728, …). With less than 364 days of
    history the point is the same weekday of the last observed week (lag 7), flagged
    ``short_history``. A 53-week ISO year shifts the lag-364 alignment by one week; accepted.
    """

    model_name: ClassVar[str] = "SeasonalNaive"

    def __init__(self, n_samples: int = 200, error_weeks: int = 104, min_error_weeks: int = 8,
                 random_state: int | None = 0) -> None:
        self.n_samples = n_samples
        self.error_weeks = error_weeks
        self.min_error_weeks = min_error_weeks
        self.random_state = random_state

    errors_: dict[object, FloatArray]
    lags_: dict[object, int]

    def _fit(self, hist: pd.DataFrame) -> None:
        self.errors_ = {}
        self.lags_ = {}
        for uid, g in hist.groupby("unique_id", sort=True):
            y = g["y"].to_numpy(dtype=float)
            ds = pd.DatetimeIndex(g["ds"])
            lag = SEASON_DAYS if len(y) >= SEASON_DAYS else 7
            self.lags_[uid] = lag
            if lag != SEASON_DAYS:
                self.flags_.append((str(uid), "short_history",
                                    f"{len(y)} days < {SEASON_DAYS}: lag 7 used"))
            if not y.any():
                self.flags_.append((str(uid), "all_zero", "no counts in history"))
            err = np.full(len(y), np.nan)
            if len(y) > lag:
                err[lag:] = y[lag:] - y[:-lag]
            # complete Monday..Sunday weeks of errors, as a (weeks, 7) matrix
            first_monday = int((7 - ds[0].weekday()) % 7)
            n_weeks = (len(y) - first_monday) // 7
            blocks = err[first_monday:first_monday + 7 * n_weeks].reshape(n_weeks, 7)
            blocks = blocks[~np.isnan(blocks).any(axis=1)][-self.error_weeks:]
            self.errors_[uid] = blocks
            if len(blocks) < self.min_error_weeks and lag == SEASON_DAYS:
                self.flags_.append((str(uid), "short_history",
                                    f"{len(blocks)} weeks of errors: Poisson paths"))

    def _points(self, future: pd.DataFrame) -> FloatArray:
        out: list[FloatArray] = []
        hist_groups = dict(tuple(self.history_.groupby("unique_id", sort=True)))
        for uid, fut in future.groupby("unique_id", sort=True):
            y = hist_groups[uid]["y"].to_numpy(dtype=float)
            lag = min(self.lags_[uid], len(y))
            ext = np.concatenate([y, np.zeros(len(fut))])
            n = len(y)
            for t in range(n, n + len(fut), lag):
                stop = min(t + lag, n + len(fut))
                ext[t:stop] = ext[t - lag:stop - lag]
            out.append(ext[n:])
        return np.concatenate(out) if out else np.zeros(0)

    def _forecast_series(self, uid: object, future: pd.DatetimeIndex, point: FloatArray,
                         rng: np.random.Generator) -> FloatArray:
        blocks = self.errors_[uid]
        if len(blocks) < self.min_error_weeks:
            return rng.poisson(np.broadcast_to(point, (self.n_samples, len(point)))).astype(float)
        week_idx, _ = pd.factorize(week_start(future), sort=True)
        dow = np.asarray(future.day_of_week)
        draws = rng.integers(0, len(blocks), size=(self.n_samples, int(week_idx.max()) + 1))
        noise = blocks[draws[:, week_idx], dow[None, :]]
        return np.asarray(point[None, :] + noise, dtype=float)


# --------------------------------------------------------------------------- plain Prophet
class PlainProphet(_CountBaseline):
    """A default Prophet loop on raw daily counts: the reference every change is judged against.

    One ``prophet.Prophet()`` per series with its default settings (yearly and weekly
    seasonality as Prophet decides, no holidays, Gaussian noise on raw counts), fitted with
    ``Prophet.fit``; sample paths from ``Prophet.predictive_samples`` over the future days
    (trend and observation uncertainty), summed per ISO week and clipped at 0 once per week.
    This is what a data scientist would write first (FIELD-NOTES: "a default Prophet loop on
    raw counts"), so a forecaster that does not beat it threshold-free is not worth its code.

    Parameters
    ----------
    n_samples : predictive sample paths per series (Prophet's ``uncertainty_samples``).
    random_state : seed of numpy's global generator for each series' sampling (Prophet draws
        from it), combined with the series id.
    """

    model_name: ClassVar[str] = "PlainProphet"

    def __init__(self, n_samples: int = 500, random_state: int | None = 0) -> None:
        self.n_samples = n_samples
        self.random_state = random_state

    models_: dict[object, Any]

    def _fit(self, hist: pd.DataFrame) -> None:
        import logging

        from prophet import Prophet

        logging.getLogger("cmdstanpy").setLevel(logging.ERROR)
        logging.getLogger("prophet").setLevel(logging.ERROR)
        self.models_ = {}
        for uid, g in hist.groupby("unique_id", sort=True):
            m = Prophet(uncertainty_samples=self.n_samples)
            m.fit(pd.DataFrame({"ds": g["ds"].to_numpy(), "y": g["y"].to_numpy(dtype=float)}))
            self.models_[uid] = m

    def _points(self, future: pd.DataFrame) -> FloatArray:
        out = [self.models_[uid].predict(pd.DataFrame({"ds": fut["ds"].to_numpy()}))[
            "yhat"].to_numpy(dtype=float) for uid, fut in future.groupby("unique_id", sort=True)]
        return np.concatenate(out) if out else np.zeros(0)

    def _forecast_series(self, uid: object, future: pd.DatetimeIndex, point: FloatArray,
                         rng: np.random.Generator) -> FloatArray:
        m = self.models_[uid]
        np.random.seed(int(rng.integers(0, 2**32 - 1)))  # Prophet samples from numpy's global RNG
        samples = m.predictive_samples(pd.DataFrame({"ds": future}))["yhat"]  # (days, S)
        return np.asarray(samples, dtype=float).T
