"""Prediction of :class:`models.forecast.ProphetForecaster`: future-only sample paths of
each fitted series (Prophet's trend uncertainty and seasonal and calendar terms, then the
count noise), their daily summary and ISO-week sums (``_Predicting``, a mixin the estimator
inherits), and the regression features of future days."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from models import calendar
from models._forecast_frames import _concat, _concat_weekly, _weekly_sums
from models._prophet_calendar import _Calendar, _calendar_for, _holiday_features_of
from models._prophet_direct import _epoch_days, _fourier, _mean_paths, _muted
from models.count_noise import NO_NOISE, Noise, count_paths
from models.fallback import FALLBACK_MODEL, fallback_paths
from models.types import DAILY_COLUMNS, FAILURE_COLUMNS, FLAG_COLUMNS, ForecastOutput

__all__ = ["PROPHET_MODEL", "TRANSFORMS"]

PROPHET_MODEL = "prophet"

_Fn = Callable[[np.ndarray], np.ndarray]
TRANSFORMS: dict[str, tuple[_Fn, _Fn]] = {
    # name: (forward on counts, inverse on fitted scale, clipped at 0)
    "none": (lambda y: y, lambda z: np.maximum(z, 0.0)),
    "sqrt": (np.sqrt, lambda z: np.square(np.maximum(z, 0.0))),
    "log1p": (np.log1p, lambda z: np.expm1(np.maximum(z, 0.0))),
}


def _series_seed(seed: int, uid: str) -> int:
    """A per-series seed independent of batch order and chunking."""
    return (int(seed) * 1_000_003 + zlib.crc32(str(uid).encode("utf-8"))) % (2**32)


class _Predicting:
    """``predict`` and its parts; the attributes are those :meth:`ProphetForecaster.fit`
    (or ``from_json``) sets and the estimator's parameters."""

    n_samples: int
    interval_width: float
    transform: str
    noise: str
    noise_inflation: float
    condition_last: bool
    fit_path: str
    local_events: bool
    calendar_block_days: int
    seed: int
    models_: dict[str, Any]
    history_: dict[str, pd.DataFrame]
    noise_: dict[str, Noise]
    flags_: pd.DataFrame
    failures_: pd.DataFrame

    def predict(self, horizon: int) -> ForecastOutput:
        """Forecast ``horizon`` days after each series' last observed day.

        Returns
        -------
        ForecastOutput
            ``daily``: ``unique_id, ds, yhat, yhat_lower, yhat_upper, model`` where ``yhat`` is
            the mean of the sample paths and the bounds their ``interval_width`` quantiles;
            ``weekly_samples``: index ``(unique_id, week)``, columns ``0..n_samples-1``, the
            paths' ISO-week sums; the partial first week adds the observed days of that week;
            a partial last week (horizon ending before Sunday) is left out; ``flags``: fit
            flags plus ``unofficial_calendar`` (detail: the years) for Prophet series whose
            horizon reaches a year without a published holiday schedule.
        """
        if not hasattr(self, "history_"):
            raise RuntimeError("ProphetForecaster is not fitted; call fit() first")
        horizon = int(horizon)
        if horizon < 1:
            raise ValueError("horizon must be >= 1")
        daily, weekly = [], []
        flags = [self.flags_]
        failures: list[tuple[str, str]] = list(
            self.failures_.itertuples(index=False, name=None))
        calendars: dict[pd.Timestamp, _Calendar] = {}
        for uid in sorted(self.history_):
            try:
                d, w, extra = self._predict_one(uid, horizon, calendars)
            except Exception as exc:
                failures.append((uid, f"{type(exc).__name__}: {exc}"))
                continue
            daily.append(d)
            weekly.append(w)
            if extra:
                flags.append(pd.DataFrame(extra, columns=FLAG_COLUMNS))
        return ForecastOutput(
            daily=_concat(daily, DAILY_COLUMNS),
            weekly_samples=_concat_weekly(weekly, int(self.n_samples)),
            flags=_concat(flags, FLAG_COLUMNS),
            failures=pd.DataFrame(failures, columns=FAILURE_COLUMNS),
        )

    def _predict_one(
        self, uid: str, horizon: int, calendars: dict[pd.Timestamp, _Calendar]
    ) -> tuple[pd.DataFrame, pd.DataFrame, list[tuple[str, str, str]]]:
        hist = self.history_[uid]
        last = hist["ds"].iloc[-1]
        future = pd.date_range(last + pd.Timedelta(days=1), periods=horizon, freq="D", unit="ns")
        rng = np.random.default_rng(_series_seed(self.seed, uid))
        n = int(self.n_samples)
        extra: list[tuple[str, str, str]] = []
        if uid in self.models_:
            model = self.models_[uid]
            if model.extra_regressors or model.holidays is not None:
                years = calendar.unofficial_years(future[0], future[-1])
                if years:
                    extra.append((uid, "unofficial_calendar", ",".join(map(str, years))))
            X = self._design(model, future, calendars)
            z = _mean_paths(model, X, future, n, rng)
            inverse = TRANSFORMS[self.transform][1]
            if self.noise == "gaussian":
                sigma = float(np.asarray(model.params["sigma_obs"]).ravel()[0]) * model.y_scale
                paths = inverse(z + rng.normal(0.0, sigma, size=z.shape))
            else:
                disp, week_var, phi, last_mean, last_var = self.noise_.get(uid, NO_NOISE)
                last = (last_mean, last_var) if self.condition_last else (0.0, 0.0)
                paths = count_paths(inverse(z), future, disp,
                                     week_var * float(self.noise_inflation), phi, rng, last)
            name = PROPHET_MODEL
        else:
            paths = fallback_paths(hist, future, n, _series_seed(self.seed, uid))
            name = FALLBACK_MODEL
        alpha = (1.0 - float(self.interval_width)) / 2.0
        yhat = paths.mean(axis=1)
        lo = np.minimum(np.quantile(paths, alpha, axis=1), yhat)
        hi = np.maximum(np.quantile(paths, 1.0 - alpha, axis=1), yhat)
        daily = pd.DataFrame({"unique_id": uid, "ds": future, "yhat": yhat,
                              "yhat_lower": lo, "yhat_upper": hi, "model": name})
        return daily, _weekly_sums(uid, hist, future, paths), extra

    def _design(self, model: Any, dates: pd.DatetimeIndex,
                calendars: dict[pd.Timestamp, _Calendar]) -> np.ndarray:
        """Regression features of ``dates`` in the model's column order."""
        if self.fit_path != "direct":  # the reference path: Prophet's own features
            df = self.prophet_frame(model, dates)
            with _muted():
                X, _, _, _ = model.make_all_seasonality_features(model.setup_dataframe(df))
            return np.asarray(X.to_numpy(dtype=float))
        days = _epoch_days(dates.to_numpy())
        blocks = [_fourier(days, float(p["period"]), int(p["fourier_order"]))
                  for p in model.seasonalities.values()]
        names = _holiday_features_of(model.holidays)
        if names or model.extra_regressors:
            cal = _calendar_for(dates, calendars, self.local_events,
                                int(self.calendar_block_days))
            pos = cal.rows(dates.to_numpy())
            blocks += [cal.column(name, pos)[:, None]
                       for name in names + list(model.extra_regressors)]
        if not blocks:
            blocks = [np.zeros((len(dates), 1))]
        return np.hstack(blocks)

    def prophet_frame(self, model_or_id: Any, dates: Any) -> pd.DataFrame:
        """Frame ``ds`` + the model's calendar regressors for ``dates``, ready for Prophet's
        own ``predict`` / ``plot_components`` (e.g.
        ``m.predict(est.prophet_frame(uid, pd.date_range(...)))``)."""
        model = self._model(model_or_id) if isinstance(model_or_id, str) else model_or_id
        dates = pd.DatetimeIndex(dates)
        df = pd.DataFrame({"ds": dates})
        if model.extra_regressors:
            cal = _Calendar.build(dates.min(), dates.max(), self.local_events,
                                  int(self.calendar_block_days))
            pos = cal.rows(dates.to_numpy())
            for name in model.extra_regressors:
                df[name] = cal.column(name, pos)
        return df

    def _model(self, unique_id: str) -> Any:
        models = getattr(self, "models_", {})
        if unique_id not in models:
            raise KeyError(f"no fitted Prophet model for {unique_id!r} (fallback, failed or "
                           "unknown series)")
        return models[unique_id]
