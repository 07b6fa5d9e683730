"""Per-series Prophet forecaster with the Chinese working calendar and count-aware sample paths.

Input is a long daily frame ``unique_id, ds, y`` (zero-filled counts); output is a
:class:`models.types.ForecastOutput`. One new Prophet object per series (Prophet can be fitted
only once); a series that cannot be forecast becomes a row in ``failures`` and never aborts
the batch.

How a series is fitted (``fit_path="direct"``, the default)
-----------------------------------------------------------
Prophet's model, Prophet's priors, Prophet's compiled Stan program — without Prophet's Python
``fit`` overhead, which was about half of a fit here:

1. Calendar features are built once per batch (and cached per process), vectorised
   (:func:`models.calendar.holiday_features`: the same 0/1 indicators Prophet's per-holiday
   loop builds, tested), with holiday windows as weekly blocks
   (``calendar_block_days``). Each series keeps the holiday columns that are non-zero in
   its own history (prior scale ``holidays_prior_scale``), plus the ``is_workday``
   regressor. A column that is 0 over the history has a MAP coefficient of exactly 0 under
   Prophet's Gaussian prior, so dropping it changes nothing but the cost.
2. The Stan data (scaled ``y``, ``t``, changepoints, Fourier terms, prior scales, component
   indicators) are prepared with numpy exactly as ``Prophet.preprocess`` does (tested column
   by column), and the MAP estimate comes from Prophet's own ``prophet_model.bin`` through
   :func:`models._cmdstan.optimize` (LBFGS, Newton fallback, as Prophet; same parameters as
   ``Prophet.fit``, tested).
3. The fitted state (``history``, scales, seasonalities, holidays, regressors, component
   columns, changepoints, ``params``) is set on a real ``Prophet`` object, so ``to_json`` /
   ``model_from_json`` work, and so do ``m.predict(est.prophet_frame(uid, dates))``,
   ``m.predict(m.history)`` and ``m.plot_components`` (a ``holidays`` panel: each kept
   column is a holiday row with ``lower_window = upper_window = offset``, so Prophet's own
   loop rebuilds exactly these columns). ``m.history`` keeps ``ds, y, t, is_workday`` and
   ``params`` drop the per-day ``trend`` (smaller JSON).

``fit_path="prophet"`` runs ``Prophet.fit`` with the holiday frame instead (the reference,
for comparisons and tests).

Sample paths
------------
Only future days are simulated, vectorised over samples with numpy: Prophet's trend
uncertainty (new changepoints at the historical rate with Laplace slope changes, as in
``Prophet._sample_uncertainty``) + seasonal and calendar terms. Then the observation noise:

- ``noise="negbin"`` (default): counts drawn on the count scale,
  ``y ~ Poisson(mu * g_week * e)`` with ``e ~ Gamma`` (negative binomial, daily dispersion)
  and ``g_week`` a log-normal week-level shock shared by the seven days of an ISO week (AR(1)
  across weeks). Dispersion, week-shock variance and AR coefficient are moment estimates from
  the in-sample residuals at the daily *and* the weekly level (weekly residual variance
  captures the autocorrelation that daily Gaussian noise misses), and the week-shock variance
  is multiplied by ``noise_inflation`` (out-of-sample errors are larger than in-sample ones;
  the default was estimated by a rolling backtest on real data, see the class docstring).
- ``noise="gaussian"``: Prophet's own ``N(0, sigma_obs)`` on the fitted scale.

Paths are back-transformed (``transform``), never negative, and reproducible: each series
draws from ``numpy.random.default_rng(seed, id)``.

Layout: fitting is here; prediction (the sample paths, their daily summary and week sums) is
the mixin in :mod:`models._forecast_predict`, JSON persistence :mod:`models._forecast_json`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any, Literal, Self, cast

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from models import _forecast_json, calendar
from models._cmdstan import fast_cmdstan_json
from models._forecast_frames import _clean
from models._forecast_predict import TRANSFORMS, _Predicting
from models._prophet_calendar import _WORKDAY, _Calendar
from models._prophet_direct import (
    DEFAULT_STAN_OPTIONS,
    _as_init,
    _in_sample,
    _muted,
    _quiet,
    fit_direct,
    warm_start_params,
)
from models.count_noise import NO_NOISE, Noise, noise_moments
from models.fallback import FALLBACK_MODEL
from models.types import FAILURE_COLUMNS, FLAG_COLUMNS

__all__ = [
    "ProphetForecaster",
    "TRANSFORMS",
    "FALLBACK_MODEL",
    "NOISE_MODELS",
    "DEFAULT_NOISE_INFLATION",
    "DEFAULT_STAN_OPTIONS",
    "warm_start_params",
]

NOISE_MODELS = ("negbin", "gaussian")
# Out-of-sample multiplier of the in-sample week-shock variance (see ProphetForecaster).
DEFAULT_NOISE_INFLATION = 2.0
# Prophet knows only the holidays listed at fit time (for its own predict / plot_components).
_CALENDAR_AHEAD_DAYS = 400
_BLOCK_DAYS = calendar.BLOCK_DAYS

class ProphetForecaster(_Predicting, BaseEstimator):  # type: ignore[misc]
    """Prophet per series on (optionally transformed) counts, CN calendar, sample paths.

    Defaults chosen by backtests on real data (``bench/transform_choice.py`` on 174 Chicago
    311 series; the tables are in docs/benchmarks.md, "Forecaster defaults"):
    ``transform="none"`` (raw counts, back-transformed paths clipped at 0) catches 2.5-3.4x
    more spike windows than ``sqrt`` / ``log1p``; ``noise="negbin"`` with
    ``noise_inflation = 2`` brings the weekly 80 % path intervals from ~44 % to ~82 %
    coverage.

    Parameters
    ----------
    transform : ``"none"``, ``"sqrt"`` or ``"log1p"``; fitted on the transformed counts,
        sample paths back-transformed and clipped at 0.
    n_samples : sample paths per series (also the columns of ``weekly_samples``).
    interval_width : width of the daily ``yhat_lower``/``yhat_upper`` interval.
    yearly_seasonality : Fourier order of the yearly seasonality (used only with at least
        ``min_yearly_days`` of history), or False.
    weekly_seasonality : Prophet's weekly seasonality (order 3).
    seasonality_mode : ``"additive"`` or ``"multiplicative"``.
    changepoint_prior_scale, seasonality_prior_scale, holidays_prior_scale, changepoint_range :
        Prophet's priors.
    calendar : ``"cn"`` (holiday indicators and ``is_workday`` from :mod:`models.calendar`)
        or ``"none"``.
    local_events : include ``models/data/local_events.yaml`` in the calendar.
    calendar_block_days : one coefficient per block of this many days of a holiday window
        (ramps, local events) instead of one per day (``1`` = Prophet's per-day windows); see
        :func:`models.calendar.holiday_frame`.
    min_history_days : fewer observed days -> the ``seasonal_mean`` fallback.
    min_yearly_days : fewer days of history -> no yearly seasonality (flag ``short_history``).
    sparse_below : share of non-zero days below which the fallback is used (flag ``sparse``).
    seed : base seed; each series draws from ``seed`` and its id, so results do not depend on
        batch order, chunking or engine.
    warm_start_params : ``{unique_id: params}`` from :meth:`params_` used as Stan inits.
    fast_json : ``fit_path="prophet"`` only: write cmdstan data with orjson
        (:mod:`models._cmdstan`); the direct path always does.
    fit_path : ``"direct"`` (features + Stan data prepared here, Prophet's compiled model
        called directly; module docstring) or ``"prophet"`` (``Prophet.fit`` with the holiday
        frame; the reference).
    noise : ``"negbin"`` or ``"gaussian"`` (module docstring).
    noise_inflation : multiplier of the in-sample week-shock variance for ``"negbin"``.
    condition_last : ``"negbin"`` paths start their week shock from the Kalman-filtered shock
        of the last observed weeks (recent level above or below the fitted curve decays with
        the estimated AR coefficient) instead of from 0.
    stan_options : CmdStan optimiser arguments for the direct path; ``None`` =
        :data:`DEFAULT_STAN_OPTIONS` (looser LBFGS tolerances), ``{}`` = CmdStan's defaults,
        exactly as ``Prophet.fit``.

    Attributes
    ----------
    models_ : dict of fitted Prophet objects by ``unique_id``.
    fallbacks_ : dict of ids forecast by the ``seasonal_mean`` fallback -> reason.
    history_ : dict of observed history frames ``ds, y`` by ``unique_id``.
    flags_, failures_ : fit-time flags and failures (frames as in ``ForecastOutput``).
    fit_seconds_ : wall seconds per series.
    noise_ : ``{unique_id: (dispersion, week_var, phi, last_mean, last_var)}`` in-sample
        estimates: negative binomial ``1/r``, variance of the multiplicative week shock, its
        AR(1) coefficient, and the filtered log shock (mean, variance) before the forecast.
    """

    def __init__(
        self,
        transform: str = "none",
        n_samples: int = 200,
        interval_width: float = 0.8,
        yearly_seasonality: int | bool = 10,
        weekly_seasonality: bool = True,
        seasonality_mode: str = "additive",
        changepoint_prior_scale: float = 0.05,
        seasonality_prior_scale: float = 10.0,
        holidays_prior_scale: float = 10.0,
        changepoint_range: float = 0.8,
        calendar: str = "cn",
        local_events: bool = True,
        calendar_block_days: int = _BLOCK_DAYS,
        min_history_days: int = 56,
        min_yearly_days: int = 730,
        sparse_below: float = 0.05,
        seed: int = 0,
        warm_start_params: dict[str, dict[str, Any]] | None = None,
        fast_json: bool = True,
        fit_path: str = "direct",
        noise: str = "negbin",
        noise_inflation: float = DEFAULT_NOISE_INFLATION,
        condition_last: bool = True,
        stan_options: dict[str, float] | None = None,
    ) -> None:
        self.transform = transform
        self.n_samples = n_samples
        self.interval_width = interval_width
        self.yearly_seasonality = yearly_seasonality
        self.weekly_seasonality = weekly_seasonality
        self.seasonality_mode = seasonality_mode
        self.changepoint_prior_scale = changepoint_prior_scale
        self.seasonality_prior_scale = seasonality_prior_scale
        self.holidays_prior_scale = holidays_prior_scale
        self.changepoint_range = changepoint_range
        self.calendar = calendar
        self.local_events = local_events
        self.calendar_block_days = calendar_block_days
        self.min_history_days = min_history_days
        self.min_yearly_days = min_yearly_days
        self.sparse_below = sparse_below
        self.seed = seed
        self.warm_start_params = warm_start_params
        self.fast_json = fast_json
        self.fit_path = fit_path
        self.noise = noise
        self.noise_inflation = noise_inflation
        self.condition_last = condition_last
        self.stan_options = stan_options

    # ------------------------------------------------------------------ fit
    def fit(self, df: pd.DataFrame, init: Mapping[str, Mapping[str, Any]] | None = None) -> Self:
        """Fit one model per series.

        Parameters
        ----------
        df : long daily frame ``unique_id, ds, y`` (counts >= 0; zero-filled; rows missing
            or ``y`` NaN are treated as unobserved days and flagged ``gappy``).
        init : ``{unique_id: params}`` warm-start parameters (see :meth:`params_`); overrides
            ``warm_start_params`` for those ids. Shapes that do not match are ignored (the
            default inits are used).

        Returns
        -------
        self
        """
        self._check_params()
        _quiet()
        frame = _clean(df)
        self.models_: dict[str, Any] = {}
        self.fallbacks_: dict[str, str] = {}
        self.history_: dict[str, pd.DataFrame] = {}
        self.fit_seconds_: dict[str, float] = {}
        self.noise_: dict[str, Noise] = {}
        flags: list[tuple[str, str, str]] = []
        failures: list[tuple[str, str]] = []
        inits: dict[str, Mapping[str, Any]] = dict(self.warm_start_params or {})
        inits.update(init or {})
        context: dict[str, Any] = {}
        if self.calendar == "cn" and len(frame):
            s, e = frame["ds"].min(), frame["ds"].max()
            if self.fit_path == "direct":
                ahead = e + pd.Timedelta(days=_CALENDAR_AHEAD_DAYS)  # for Prophet's own predict
                context["calendar"] = _Calendar.build(s, ahead, self.local_events,
                                                      int(self.calendar_block_days))
            else:
                end = e + pd.Timedelta(days=_CALENDAR_AHEAD_DAYS)
                context["holidays"] = calendar.holiday_frame(
                    s, end, include_local=self.local_events,
                    block_days=int(self.calendar_block_days))
                context["workdays"] = calendar.day_table(s, end).set_index("ds")[_WORKDAY]
        json_patch = (fast_cmdstan_json() if self.fast_json and self.fit_path == "prophet"
                      else contextlib.nullcontext())
        with json_patch:
            for uid, g in frame.groupby("unique_id", sort=True):
                t0 = time.perf_counter()
                uid = str(uid)
                try:
                    self._fit_one(uid, g, context, inits.get(uid), flags)
                except Exception as exc:
                    failures.append((uid, f"{type(exc).__name__}: {exc}"))
                    self.history_.pop(uid, None)
                    self.models_.pop(uid, None)
                    self.fallbacks_.pop(uid, None)
                self.fit_seconds_[uid] = time.perf_counter() - t0
        self.flags_ = pd.DataFrame(flags, columns=FLAG_COLUMNS)
        self.failures_ = pd.DataFrame(failures, columns=FAILURE_COLUMNS)
        return self

    def _check_params(self) -> None:
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {sorted(TRANSFORMS)}, not "
                             f"{self.transform!r}")
        if self.calendar not in ("cn", "none"):
            raise ValueError(f"calendar must be 'cn' or 'none', not {self.calendar!r}")
        if self.fit_path not in ("direct", "prophet"):
            raise ValueError(f"fit_path must be 'direct' or 'prophet', not {self.fit_path!r}")
        if self.noise not in NOISE_MODELS:
            raise ValueError(f"noise must be one of {NOISE_MODELS}, not {self.noise!r}")
        if not float(self.noise_inflation) >= 0:
            raise ValueError("noise_inflation must be >= 0")
        if not 0 < self.interval_width < 1:
            raise ValueError("interval_width must be in (0, 1)")
        if int(self.n_samples) < 1:
            raise ValueError("n_samples must be >= 1")

    def _fit_one(
        self,
        uid: str,
        g: pd.DataFrame,
        context: Mapping[str, Any],
        init: Mapping[str, Any] | None,
        flags: list[tuple[str, str, str]],
    ) -> None:
        obs = g.dropna(subset=["y"]).sort_values("ds")[["ds", "y"]].reset_index(drop=True)
        if obs.empty:
            raise ValueError("no observed days")
        if (obs["y"] < 0).any():
            raise ValueError("negative counts")
        span = int((obs["ds"].iloc[-1] - obs["ds"].iloc[0]).days) + 1
        self.history_[uid] = obs
        if len(obs) < span:
            flags.append((uid, "gappy", f"{span - len(obs)} of {span} days unobserved"))
        reason = None
        if not (obs["y"] > 0).any():
            flags.append((uid, "all_zero", "every observed day is 0"))
            reason = "all_zero"
        elif len(obs) < self.min_history_days:
            flags.append((uid, "short_history",
                          f"{len(obs)} observed days < min_history_days={self.min_history_days}"))
            reason = "short_history"
        elif (share := float((obs["y"] > 0).mean())) < self.sparse_below:
            flags.append((uid, "sparse", f"{share:.3f} of days non-zero < {self.sparse_below}"))
            reason = "sparse"
        if reason is not None:
            flags.append((uid, "fallback", f"{FALLBACK_MODEL} ({reason})"))
            self.fallbacks_[uid] = reason
            return
        yearly: int | bool = self.yearly_seasonality
        if span < self.min_yearly_days and yearly is not False:
            flags.append((uid, "short_history",
                          f"{span} days < {self.min_yearly_days}: no yearly seasonality"))
            yearly = False
        y = TRANSFORMS[self.transform][0](obs["y"].to_numpy(dtype=float))
        if self.fit_path == "direct":
            model, X = self._fit_direct(obs["ds"].to_numpy(), y, yearly,
                                        context.get("calendar"), init)
        else:
            model, X = self._fit_prophet(obs, y, yearly, context, init)
        self.models_[uid] = model
        if self.noise == "negbin":
            mu = TRANSFORMS[self.transform][1](_in_sample(model, X))
            self.noise_[uid] = noise_moments(obs["ds"].to_numpy(),
                                              obs["y"].to_numpy(dtype=float), mu)
        model.params.pop("trend", None)  # per-day in-sample trend: not needed, big in JSON

    def _new_prophet(self, yearly: int | bool, holidays_frame: pd.DataFrame | None) -> Any:
        from prophet import Prophet

        return Prophet(
            growth="linear",
            yearly_seasonality=yearly,
            weekly_seasonality=self.weekly_seasonality,
            daily_seasonality=False,
            holidays=holidays_frame,
            seasonality_mode=cast(Literal["additive", "multiplicative"], self.seasonality_mode),
            changepoint_prior_scale=self.changepoint_prior_scale,
            seasonality_prior_scale=self.seasonality_prior_scale,
            holidays_prior_scale=self.holidays_prior_scale,
            changepoint_range=self.changepoint_range,
            interval_width=self.interval_width,
            uncertainty_samples=int(self.n_samples),
        )

    def _fit_prophet(
        self, obs: pd.DataFrame, y: np.ndarray, yearly: int | bool,
        context: Mapping[str, Any], init: Mapping[str, Any] | None,
    ) -> tuple[Any, np.ndarray]:
        """The reference path: ``Prophet.fit`` with the holiday frame."""
        model = self._new_prophet(yearly, context.get("holidays"))
        data = obs.assign(y=y)
        if "workdays" in context:
            model.add_regressor(_WORKDAY, standardize=False)
            data[_WORKDAY] = context["workdays"].reindex(data["ds"]).to_numpy(dtype=float)
        kwargs: dict[str, Any] = {"init": _as_init(init)} if init else {}
        with _muted():
            model.fit(data, **kwargs)
            X, _, _, _ = model.make_all_seasonality_features(model.history)
        return model, X.to_numpy(dtype=float)

    def _fit_direct(
        self, ds: np.ndarray, y: np.ndarray, yearly: int | bool, cal: _Calendar | None,
        init: Mapping[str, Any] | None,
    ) -> tuple[Any, np.ndarray]:
        """Prophet's preprocessing in numpy + Prophet's compiled Stan model
        (:func:`models._prophet_direct.fit_direct`)."""
        model = self._new_prophet(yearly, None)
        X = fit_direct(model, ds, y, yearly, cal, init, mode=str(self.seasonality_mode),
                       weekly=bool(self.weekly_seasonality),
                       seasonality_prior_scale=self.seasonality_prior_scale,
                       holidays_prior_scale=self.holidays_prior_scale,
                       changepoint_range=self.changepoint_range,
                       changepoint_prior_scale=self.changepoint_prior_scale,
                       stan_options=self.stan_options)
        return model, X

    # ------------------------------------------------------- serialisation
    def params_(self, unique_id: str) -> dict[str, Any]:
        """Warm-start parameters (JSON-able) of a fitted Prophet series."""
        return warm_start_params(self._model(unique_id))

    def to_json(self, unique_id: str) -> str:
        """Prophet JSON of a fitted series (``prophet.serialize``) plus a ``forewarn`` key
        holding this forecaster's parameters and noise estimates, so :meth:`from_json` can
        predict from it. ``prophet.serialize.model_from_json`` still loads it (unknown keys
        are ignored)."""
        params = {k: v for k, v in self.get_params().items() if k != "warm_start_params"}
        return _forecast_json.dump_series(self._model(unique_id), unique_id, params,
                                          self.noise_.get(unique_id, NO_NOISE))

    @classmethod
    def from_json(cls, models: Mapping[str, str], **params: Any) -> ProphetForecaster:
        """Rebuild a fitted forecaster from :meth:`to_json` strings, ready to ``predict``.

        Parameters
        ----------
        models : ``{unique_id: json}``; plain Prophet JSON works too (then pass ``transform``
            and the other parameters it was fitted with; with ``noise="negbin"`` and no stored
            estimates such a series gets Poisson noise).
        params : overrides of the parameters stored in the JSON.
        """
        _quiet()
        stored, fitted, noise = _forecast_json.load_series(models)
        valid = set(cls().get_params())
        est = cls(**{**{k: v for k, v in stored.items() if k in valid}, **params})
        est._check_params()
        inverse = TRANSFORMS[est.transform][1]
        est.models_ = fitted
        est.fallbacks_ = {}
        est.history_ = {
            uid: pd.DataFrame({
                "ds": pd.to_datetime(m.history["ds"]).astype("datetime64[ns]").to_numpy(),
                "y": inverse(m.history["y"].to_numpy(dtype=float)),
            })
            for uid, m in fitted.items()
        }
        est.fit_seconds_ = {}
        est.noise_ = noise
        est.flags_ = pd.DataFrame(columns=FLAG_COLUMNS)
        est.failures_ = pd.DataFrame(columns=FAILURE_COLUMNS)
        return est


# ---------------------------------------------------------------- helpers


