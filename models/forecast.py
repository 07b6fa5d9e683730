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
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Self, cast

import numpy as np
import pandas as pd
from pandas.errors import Pandas4Warning
from sklearn.base import BaseEstimator

from models import calendar
from models._cmdstan import StanError, fast_cmdstan_json, optimize
from models.types import DAILY_COLUMNS, FAILURE_COLUMNS, FLAG_COLUMNS, ForecastOutput

__all__ = [
    "ProphetForecaster",
    "TRANSFORMS",
    "FALLBACK_MODEL",
    "NOISE_MODELS",
    "DEFAULT_NOISE_INFLATION",
    "DEFAULT_STAN_OPTIONS",
    "warm_start_params",
]

FALLBACK_MODEL = "seasonal_mean"
PROPHET_MODEL = "prophet"
NOISE_MODELS = ("negbin", "gaussian")
# Out-of-sample multiplier of the in-sample week-shock variance (see ProphetForecaster).
DEFAULT_NOISE_INFLATION = 2.0
# CmdStan LBFGS tolerances of the direct path (CmdStan/Prophet defaults: tol_rel_grad 1e7,
# tol_rel_obj 1e4): about 20 % less optimiser time; point forecasts moved by <= 1 % (median
# 0.005 %) on 40 synthetic 4-year series; backtests in bench/transform_choice.py.
DEFAULT_STAN_OPTIONS: dict[str, float] = {"tol_rel_grad": 1e8, "tol_rel_obj": 1e5}
# Prophet knows only the holidays listed at fit time (for its own predict / plot_components).
_CALENDAR_AHEAD_DAYS = 400
_BLOCK_DAYS = calendar.BLOCK_DAYS
_JSON_KEY = "forewarn"
_JSON_VERSION = 2
_WORKDAY = "is_workday"
_MAX_DISPERSION = 10.0  # 1/r of the negative binomial
_MAX_WEEK_VAR = 4.0  # variance of the multiplicative week shock
_MAX_PHI = 0.9

_Fn = Callable[[np.ndarray], np.ndarray]
TRANSFORMS: dict[str, tuple[_Fn, _Fn]] = {
    # name: (forward on counts, inverse on fitted scale, clipped at 0)
    "none": (lambda y: y, lambda z: np.maximum(z, 0.0)),
    "sqrt": (np.sqrt, lambda z: np.square(np.maximum(z, 0.0))),
    "log1p": (np.log1p, lambda z: np.expm1(np.maximum(z, 0.0))),
}


def _quiet() -> None:
    """Silence cmdstanpy's per-fit INFO logging and Prophet's notices."""
    from cmdstanpy.utils import get_logger  # configures the logger once (lru_cache) ...

    get_logger().setLevel(logging.ERROR)  # ... then we lower it
    logging.getLogger("prophet").setLevel(logging.WARNING)
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)  # "Importing plotly failed"


@contextlib.contextmanager
def _muted() -> Iterator[None]:
    """Mute Prophet's stdout and its pandas-4 deprecation warnings (``inplace=``), which are
    Prophet 1.5.0's to fix; only for warnings raised from ``prophet`` modules."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=Pandas4Warning, module=r"prophet\.")
        yield


def _series_seed(seed: int, uid: str) -> int:
    """A per-series seed independent of batch order and chunking."""
    return (int(seed) * 1_000_003 + zlib.crc32(str(uid).encode("utf-8"))) % (2**32)


def warm_start_params(model: Any) -> dict[str, Any]:
    """JSON-able MAP parameters of a fitted Prophet model, for ``fit(init=...)``."""
    p = model.params
    out: dict[str, Any] = {k: float(np.asarray(p[k]).ravel()[0]) for k in ("k", "m", "sigma_obs")}
    out.update({k: np.asarray(p[k])[0].astype(float).tolist() for k in ("delta", "beta")})
    return out


def _as_init(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: float(params[k]) for k in ("k", "m", "sigma_obs") if k in params}
    for k in ("delta", "beta"):
        if k in params:
            out[k] = np.asarray(params[k], dtype=float).ravel()
    return out


@dataclass(frozen=True)
class _Calendar:
    """Calendar features over a contiguous day range (built once per batch)."""

    start: np.datetime64
    names: list[str]  # feature names ``<holiday><offset>`` (models.calendar.feature_name)
    values: np.ndarray  # (days, len(names)) 0/1 holiday indicators
    workday: np.ndarray  # (days,) 0/1

    @classmethod
    def build(cls, start: pd.Timestamp, end: pd.Timestamp, include_local: bool,
              block_days: int) -> _Calendar:
        """Cached per process (a worker builds the batch calendar once, not per chunk)."""
        return _build_calendar(pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize(),
                               bool(include_local), int(block_days))

    @classmethod
    def _build(cls, start: pd.Timestamp, end: pd.Timestamp, include_local: bool,
               block_days: int) -> _Calendar:
        feats = calendar.holiday_features(start, end, include_local=include_local,
                                          block_days=block_days)
        work = calendar.day_table(start, end)["is_workday"].to_numpy(dtype=float)
        return cls(np.datetime64(pd.Timestamp(start).date(), "D"), list(feats.columns),
                   feats.to_numpy(dtype=float), work)

    @property
    def end(self) -> np.datetime64:
        return self.start + np.timedelta64(len(self.workday) - 1, "D")

    def rows(self, ds: np.ndarray) -> np.ndarray:
        pos = (ds.astype("datetime64[D]") - self.start).astype(np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= len(self.workday)):
            raise ValueError("days outside the calendar range")
        return pos

    def column(self, name: str, pos: np.ndarray) -> np.ndarray:
        """Values of feature ``name`` (or ``is_workday``) on day positions ``pos``; 0 for a
        feature without an occurrence in this range."""
        if name == _WORKDAY:
            return np.asarray(self.workday[pos], dtype=float)
        try:
            j = self.names.index(name)
        except ValueError:
            return np.zeros(len(pos))
        return np.asarray(self.values[pos, j], dtype=float)

    def holidays(self, keep: np.ndarray) -> pd.DataFrame:
        """Prophet ``holidays`` frame whose features are exactly the columns ``keep``: one row
        per occurrence, ``ds`` = the base day and ``lower_window = upper_window = offset``, so
        Prophet's own loop (``m.predict``) rebuilds the same ``<holiday>_delim_<offset>``
        columns; rows cover the whole calendar range (history and the days ahead)."""
        col, day = np.nonzero(self.values[:, keep].T)
        split = [_split_feature(self.names[j]) for j in keep]
        offsets = np.array([o for _, o in split], dtype=np.int64)[col]
        base = self.start + (day - offsets).astype("timedelta64[D]")
        return pd.DataFrame({
            "holiday": np.array([h for h, _ in split], dtype=object)[col],
            "ds": base.astype("datetime64[ns]"),
            "lower_window": offsets, "upper_window": offsets})


@lru_cache(maxsize=16)
def _build_calendar(start: pd.Timestamp, end: pd.Timestamp, include_local: bool,
                    block_days: int) -> _Calendar:
    cal = _Calendar._build(start, end, include_local, block_days)
    cal.values.flags.writeable = False  # shared between calls: read-only
    cal.workday.flags.writeable = False
    return cal


def _split_feature(name: str) -> tuple[str, int]:
    """``"pre_spring_festival-20"`` -> ``("pre_spring_festival", -20)``."""
    i = max(name.rfind("+"), name.rfind("-"))
    return name[:i], int(name[i:])


def _holiday_features_of(frame: pd.DataFrame | None) -> list[str]:
    """Feature names (:func:`models.calendar.feature_name`) of the columns Prophet builds from
    a holidays ``frame``, in Prophet's column order (sorted ``<holiday>_delim_<offset>``)."""
    if frame is None or not len(frame):
        return []
    lw = frame["lower_window"].to_numpy(dtype=np.int64)
    uw = frame["upper_window"].to_numpy(dtype=np.int64)
    pairs = {(str(h), int(o)) for h, a, b in zip(frame["holiday"], lw, uw, strict=True)
             for o in range(a, b + 1)}
    ordered = sorted(pairs, key=lambda p: f"{p[0]}_delim_{'+' if p[1] >= 0 else '-'}{abs(p[1])}")
    return [calendar.feature_name(h, o) for h, o in ordered]


def _prophet_key(name: str) -> str:
    holiday, offset = _split_feature(name)
    return f"{holiday}_delim_{'+' if offset >= 0 else '-'}{abs(offset)}"


def _fourier(days: np.ndarray, period: float, order: int) -> np.ndarray:
    """Prophet's Fourier terms (sin, cos interleaved) of absolute day numbers."""
    x = 2.0 * np.pi * days[:, None] * (np.arange(1, order + 1)[None, :] / period)
    out = np.empty((len(days), 2 * order))
    out[:, 0::2] = np.sin(x)
    out[:, 1::2] = np.cos(x)
    return out


def _epoch_days(ds: np.ndarray) -> np.ndarray:
    return (ds.astype("datetime64[ns]").astype(np.int64) / 86_400e9).astype(float)


def _component_cols(
    columns: list[str], seasonal: list[str], holidays: list[str], regressors: list[str],
    mode: str,
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """``train_component_cols`` and ``component_modes`` exactly as Prophet's
    ``make_all_seasonality_features`` / ``regressor_column_matrix`` build them (every
    component in one ``mode``; tested against Prophet)."""
    comp = [c.split("_delim_")[0] for c in columns]
    table: dict[str, np.ndarray] = {
        name: np.array([c == name for c in comp], dtype=np.int64) for name in set(comp)}
    groups = {"holidays": set(holidays), f"{mode}_terms": set(seasonal + holidays + regressors),
              f"extra_regressors_{mode}": set(regressors)}
    for name, members in groups.items():
        ind = np.array([c in members for c in comp], dtype=np.int64)
        if ind.any():
            table[name] = ind
    table.pop("zeros", None)
    ordered = {k: table[k] for k in sorted(table)}
    for name in ("additive_terms", "multiplicative_terms"):
        ordered.setdefault(name, np.zeros(len(columns), dtype=np.int64))
    cc = pd.DataFrame(ordered, index=pd.Index(np.arange(len(columns)), name="col"))
    cc.columns.name = "component"
    modes: dict[str, list[str]] = {"additive": [], "multiplicative": []}
    modes[mode].extend(seasonal + holidays + regressors)
    for m in ("additive", "multiplicative"):
        modes[m].extend([f"{m}_terms", f"extra_regressors_{m}"])
    modes[mode].append("holidays")
    return cc, modes


def _piecewise_linear(t: np.ndarray, deltas: np.ndarray, k: float, m: float,
                      changepoints_t: np.ndarray) -> np.ndarray:
    """Prophet's piecewise-linear trend (scaled units)."""
    a = (t[:, None] >= changepoints_t[None, :]).astype(float)
    out: np.ndarray = (k + a @ deltas) * t + (m + a @ (-changepoints_t * deltas))
    return out


class ProphetForecaster(BaseEstimator):  # type: ignore[misc]
    """Prophet per series on (optionally transformed) counts, CN calendar, sample paths.

    Default ``transform="none"`` (raw counts, back-transformed paths clipped at 0), chosen by
    backtest on real data: ``bench/transform_choice.py`` on Chicago 311 (174 series: 9
    categories, 50 wards, 115 category x ward pairs with >= 200 records; origins 2013-07-01
    and 2013-12-30; 26-week horizon; lead 14 days; DESIGN.md spike definitions), pooled, with
    Prophet's Gaussian noise::

        transform  recall  precision  brier  cover80_weekly  mae_daily
        none        0.178      0.426  0.083           0.434      0.775
        sqrt        0.052      0.562  0.072           0.497      0.671
        log1p       0.071      0.541  0.072           0.482      0.706

    Raw counts catch 2.5-3.4x more spike windows (F1 0.25 vs 0.10 / 0.13) at somewhat lower
    precision; sqrt and log1p win on Brier and MAE because their paths sit low (a
    back-transformed symmetric path has its median below the mean), which is exactly what
    makes them miss spikes, as FIELD-NOTES warned.

    Calibration: with Prophet's Gaussian daily noise the weekly 80 % path intervals covered
    only ~44 % of real weekly counts (daily noise is independent, so weekly sums are too
    narrow; in-sample noise understates out-of-sample error), and clipping the Gaussian paths
    at 0 biased them 16 % high. ``noise="negbin"`` (count noise + week-level shocks estimated
    from daily and weekly residuals, week variance x ``noise_inflation`` = 2, picked on
    tune origins) is the default. ``bench/transform_choice.py`` on the same 174 Chicago
    series, test origins 2013-12-30, 2014-03-31, 2014-06-30 (26 weeks, lead 14 days)::

        noise             cover80_weekly  brier  mae_daily  recall  precision  (p_min 0.5)
        gaussian (before)          0.447  0.091      0.807   0.237      0.481
        negbin x2                  0.816  0.074      0.739   0.130      0.505

    Recall at ``p_min = 0.5`` falls because the old paths sat high; calibrated probabilities
    need a lower ``p_min`` for the same number of alarms (numbers in that script).

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
        self.noise_: dict[str, _Noise] = {}
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
            self.noise_[uid] = _noise_moments(obs["ds"].to_numpy(),
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
        """Prophet's preprocessing in numpy + Prophet's compiled Stan model (module doc)."""
        model = self._new_prophet(yearly, None)
        mode = str(self.seasonality_mode)
        ds = np.asarray(ds, dtype="datetime64[ns]")
        n = len(ds)
        # --- seasonalities (as Prophet.set_auto_seasonalities with explicit orders)
        blocks: list[np.ndarray] = []
        columns: list[str] = []
        sigmas: list[float] = []
        seasonal: list[str] = []
        days = _epoch_days(ds)
        orders = [("yearly", 365.25, 10 if yearly is True else int(yearly)),
                  ("weekly", 7.0, 3 if self.weekly_seasonality else 0)]
        for name, period, order in orders:
            if order <= 0:
                continue
            model.seasonalities[name] = {
                "period": period, "fourier_order": order,
                "prior_scale": float(self.seasonality_prior_scale), "mode": mode,
                "condition_name": None}
            blocks.append(_fourier(days, period, order))
            columns += [f"{name}_delim_{i + 1}" for i in range(2 * order)]
            sigmas += [float(self.seasonality_prior_scale)] * (2 * order)
            seasonal.append(name)
        # --- calendar: holiday columns non-zero in this history (Prophet's sorted key order),
        # then the is_workday regressor
        holidays: list[str] = []
        regressors: list[str] = []
        if cal is not None:
            pos = cal.rows(ds)
            hol = cal.values[pos]
            nonzero = np.flatnonzero(hol.any(axis=0))
            keys = [_prophet_key(cal.names[j]) for j in nonzero]
            rank = np.argsort(np.array(keys, dtype=object), kind="stable")
            keep = nonzero[rank]
            if keep.size:
                model.holidays = cal.holidays(keep)
                holidays = list(dict.fromkeys(model.holidays["holiday"]))
                model.train_holiday_names = pd.Series(holidays)
                blocks.append(hol[:, keep])
                columns += [keys[i] for i in rank]
                sigmas += [float(self.holidays_prior_scale)] * keep.size
            regressors = [_WORKDAY]
            model.extra_regressors[_WORKDAY] = {
                "prior_scale": float(self.holidays_prior_scale), "standardize": False,
                "mu": 0.0, "std": 1.0, "mode": mode}
            blocks.append(cal.workday[pos][:, None])
            columns.append(_WORKDAY)
            sigmas.append(float(self.holidays_prior_scale))
        if not columns:  # Prophet's placeholder
            blocks, columns, sigmas = [np.zeros((n, 1))], ["zeros"], [1.0]
        X = np.ascontiguousarray(np.hstack(blocks))
        cc, modes = _component_cols(columns, seasonal, holidays, regressors, mode)
        # --- scales, history, changepoints (as Prophet.setup_dataframe / set_changepoints)
        start = pd.Timestamp(ds[0])
        t_scale = pd.Timestamp(ds[-1]) - start
        t = (ds - ds[0]).astype(np.int64) / float(t_scale.value)
        y_scale = float(np.abs(y).max()) or 1.0
        y_scaled = y / y_scale
        model.y_scale, model.y_min, model.logistic_floor = y_scale, 0.0, False
        model.start, model.t_scale = start, t_scale
        model.history = pd.DataFrame({"ds": ds, "y": y, "t": t})  # small JSON (doc)
        for j, name in enumerate(regressors):  # so m.predict(m.history) works
            model.history[name] = X[:, X.shape[1] - len(regressors) + j]
        model.history_dates = pd.Series(ds, name="ds")
        hist_size = int(np.floor(n * float(self.changepoint_range)))
        if model.n_changepoints + 1 > hist_size:
            model.n_changepoints = hist_size - 1
        if model.n_changepoints > 0:
            cp_idx = np.linspace(0, hist_size - 1, model.n_changepoints + 1).round().astype(int)
            model.changepoints = model.history["ds"].iloc[cp_idx].tail(-1)
            model.changepoints_t = np.sort(t[cp_idx[1:]])
        else:
            model.changepoints = pd.Series(pd.to_datetime([]), name="ds")
            model.changepoints_t = np.array([0.0])
        model.train_component_cols = cc
        model.component_modes = modes
        s_a = cc["additive_terms"].to_numpy(dtype=float)
        s_m = cc["multiplicative_terms"].to_numpy(dtype=float)
        data = {"T": n, "S": len(model.changepoints_t), "K": X.shape[1],
                "tau": float(self.changepoint_prior_scale), "trend_indicator": 0,
                "y": y_scaled, "t": t, "cap": np.zeros(n), "t_change": model.changepoints_t,
                "X": X, "sigmas": sigmas, "s_a": s_a, "s_m": s_m}
        k = (y_scaled[-1] - y_scaled[0]) / (t[-1] - t[0])
        stan_init: dict[str, Any] = {"k": float(k), "m": float(y_scaled[0] - k * t[0]),
                                     "delta": np.zeros(len(model.changepoints_t)),
                                     "beta": np.zeros(X.shape[1]), "sigma_obs": 1.0}
        model.fit_kwargs = {}
        if init:
            custom = _as_init(init)
            model.fit_kwargs = {"init": custom}
            for key, value in custom.items():  # as Prophet: ignore mismatching shapes
                if np.shape(value) == np.shape(stan_init[key]):
                    stan_init[key] = value
        if y.min() == y.max():
            model.params = {key: np.asarray(v, dtype=float).reshape(1, -1)
                            for key, v in {**stan_init, "sigma_obs": 1e-9}.items()}
        else:
            options = dict(DEFAULT_STAN_OPTIONS if self.stan_options is None
                           else self.stan_options)
            try:
                model.params = optimize(data, stan_init, options=options)
            except StanError:
                model.params = optimize(data, stan_init, algorithm="newton", options=options)
        if len(model.changepoints) == 0:
            model.params["k"] = model.params["k"] + model.params["delta"].reshape(-1)
            model.params["delta"] = np.zeros(model.params["delta"].shape).reshape((-1, 1))
        return model, X

    # -------------------------------------------------------------- predict
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
                disp, week_var, phi, last_mean, last_var = self.noise_.get(uid, _NO_NOISE)
                last = (last_mean, last_var) if self.condition_last else (0.0, 0.0)
                paths = _count_paths(inverse(z), future, disp,
                                     week_var * float(self.noise_inflation), phi, rng, last)
            name = PROPHET_MODEL
        else:
            paths = _fallback_paths(hist, future, n, _series_seed(self.seed, uid))
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

    # ------------------------------------------------------- serialisation
    def params_(self, unique_id: str) -> dict[str, Any]:
        """Warm-start parameters (JSON-able) of a fitted Prophet series."""
        return warm_start_params(self._model(unique_id))

    def to_json(self, unique_id: str) -> str:
        """Prophet JSON of a fitted series (``prophet.serialize``) plus a ``forewarn`` key
        holding this forecaster's parameters and noise estimates, so :meth:`from_json` can
        predict from it. ``prophet.serialize.model_from_json`` still loads it (unknown keys
        are ignored)."""
        from prophet.serialize import model_to_dict

        with _muted():
            d = model_to_dict(self._model(unique_id))
        params = {k: v for k, v in self.get_params().items() if k != "warm_start_params"}
        d[_JSON_KEY] = {"version": _JSON_VERSION, "unique_id": unique_id, "params": params,
                        "noise": list(self.noise_.get(unique_id, _NO_NOISE))}
        return json.dumps(d)

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
        from prophet.serialize import model_from_dict

        stored: dict[str, Any] = {}
        fitted: dict[str, Any] = {}
        noise: dict[str, _Noise] = {}
        for uid, text in models.items():
            d = json.loads(text)
            meta = d.pop(_JSON_KEY, None)
            if meta and not stored:
                stored = dict(meta.get("params", {}))
                if int(meta.get("version", 1)) < 2:  # fitted with per-day holiday windows
                    stored.setdefault("calendar_block_days", 1)
            if meta and len(meta.get("noise", ())) == len(_NO_NOISE):
                a, b, c, d_, e = (float(x) for x in meta["noise"])
                noise[str(uid)] = (a, b, c, d_, e)
            with _muted():
                fitted[str(uid)] = model_from_dict(d)
        valid = set(cls().get_params())
        stored = {k: v for k, v in stored.items() if k in valid}
        est = cls(**{**stored, **params})
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

    def _model(self, unique_id: str) -> Any:
        models = getattr(self, "models_", {})
        if unique_id not in models:
            raise KeyError(f"no fitted Prophet model for {unique_id!r} (fallback, failed or "
                           "unknown series)")
        return models[unique_id]


def _calendar_for(dates: pd.DatetimeIndex, cache: dict[pd.Timestamp, _Calendar],
                  include_local: bool, block_days: int) -> _Calendar:
    """Calendar covering ``dates`` (cached per first day: every series of a batch usually
    shares its future days)."""
    key = pd.Timestamp(dates[0])
    cal = cache.get(key)
    end = pd.Timestamp(dates[-1])
    if cal is None or len(cal.workday) < (end - key).days + 1:
        cal = _Calendar.build(key, end, include_local, block_days)
        cache[key] = cal
    return cal


def _in_sample(model: Any, X: np.ndarray) -> np.ndarray:
    """In-sample fitted values on the fitted scale from the MAP ``trend`` and ``beta``."""
    p = model.params
    beta = np.asarray(p["beta"], dtype=float)[0]
    cc = model.train_component_cols
    xb_a = X @ (beta * cc["additive_terms"].to_numpy(dtype=float))
    xb_m = X @ (beta * cc["multiplicative_terms"].to_numpy(dtype=float))
    if "trend" in p:
        trend = np.asarray(p["trend"], dtype=float)[0]
    else:
        t = model.history["t"].to_numpy(dtype=float)
        trend = _piecewise_linear(t, np.asarray(p["delta"], dtype=float)[0],
                                  float(np.asarray(p["k"]).ravel()[0]),
                                  float(np.asarray(p["m"]).ravel()[0]),
                                  np.asarray(model.changepoints_t, dtype=float))
    out: np.ndarray = (trend * (1.0 + xb_m) + xb_a) * float(model.y_scale)
    return out


def _mean_paths(model: Any, X: np.ndarray, future: pd.DatetimeIndex, n: int,
                rng: np.random.Generator) -> np.ndarray:
    """Fitted-scale paths without observation noise, ``(days, n)``: Prophet's point trend plus
    its simulated future trend changes (as ``Prophet._sample_uncertainty``), plus the seasonal
    and calendar terms."""
    p = model.params
    k = float(np.asarray(p["k"]).ravel()[0])
    m = float(np.asarray(p["m"]).ravel()[0])
    deltas = np.asarray(p["delta"], dtype=float)[0]
    beta = np.asarray(p["beta"], dtype=float)[0]
    cps = np.asarray(model.changepoints_t, dtype=float)
    t = ((future - model.start) / model.t_scale).to_numpy(dtype=float)
    expected = _piecewise_linear(t, deltas, k, m, cps)
    horizon = len(t)
    step = float(np.diff(t).mean()) if horizon > 1 else float(
        pd.Timedelta(days=1) / model.t_scale)
    likelihood = len(cps) * step
    mean_delta = float(np.mean(np.abs(deltas))) + 1e-8
    change = rng.uniform(size=(n, horizon)) < likelihood
    shifts = rng.laplace(0.0, mean_delta, size=(n, horizon)) * change
    shifts = (shifts + np.hstack([np.zeros((n, 1)), shifts[:, :-1]])) / 2.0
    trend = (expected[None, :] + shifts.cumsum(axis=1).cumsum(axis=1) * step) * model.y_scale
    cc = model.train_component_cols
    xb_a = X @ (beta * cc["additive_terms"].to_numpy(dtype=float)) * model.y_scale
    xb_m = X @ (beta * cc["multiplicative_terms"].to_numpy(dtype=float))
    out: np.ndarray = (trend * (1.0 + xb_m[None, :]) + xb_a[None, :]).T
    return out


def _week_codes(days: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    weeks = _iso_monday(days)
    codes: np.ndarray = np.r_[0, np.cumsum(weeks[1:] != weeks[:-1])]
    return codes


_Noise = tuple[float, float, float, float, float]
_NO_NOISE: _Noise = (0.0, 0.0, 0.0, 0.0, 0.0)


def _noise_moments(ds: np.ndarray, y: np.ndarray, mu: np.ndarray) -> _Noise:
    """Moment estimates ``(dispersion, week_var, phi)`` of the count noise model.

    Model: ``y_d ~ Poisson(mu_d * g_w * e_d)``, ``e_d ~ Gamma(mean 1, var c)`` (daily
    over-dispersion, ``c`` = 1/r of a negative binomial), ``g_w`` a week shock (mean 1, var
    ``v``). Then ``Var(y_d) = mu + (c (1 + v) + v) mu^2`` and, for a complete week with
    ``M = sum mu_d``, ``S = sum mu_d^2``: ``Var(W) = M + c (1 + v) S + v M^2``. The daily
    residuals give ``a = c (1 + v) + v``; the weekly residual sums give ``v``
    (``sum((W-M)^2 - M) = (a - v) S + v M^2`` summed over weeks); ``phi`` is the lag-1
    autocorrelation of the standardised weekly residuals. All clipped to sane ranges;
    ``(0, 0, 0)`` (Poisson) when there is too little to estimate from.
    """
    mu = np.maximum(np.asarray(mu, dtype=float), 1e-6)
    resid = y - mu
    denom = float(np.sum(mu * mu))
    if denom <= 0 or len(y) < 14:
        return _NO_NOISE
    a = max(0.0, float(np.sum(resid * resid - mu)) / denom)
    codes = _week_codes(np.asarray(ds, dtype="datetime64[ns]"))
    size = np.bincount(codes)
    full = size == 7
    W = np.bincount(codes, weights=y)[full]
    M = np.bincount(codes, weights=mu)[full]
    S = np.bincount(codes, weights=mu * mu)[full]
    v = 0.0
    phi = 0.0
    if W.size >= 8:
        num = float(np.sum((W - M) ** 2 - M)) - a * float(S.sum())
        den = float(np.sum(M * M) - S.sum())
        v = float(np.clip(num / den, 0.0, _MAX_WEEK_VAR)) if den > 0 else 0.0
        var_w = M + a * S + v * (M * M - S) + 1e-9
        z = (W - M) / np.sqrt(var_w)
        zc = z - z.mean()
        ss = float(np.sum(zc * zc))
        share = float(np.mean(v * M * M / var_w))  # share of Var(W) due to the week shock
        if ss > 0 and share > 0:
            rho = float(np.sum(zc[1:] * zc[:-1])) / ss
            phi = float(np.clip(rho / share, 0.0, _MAX_PHI))
    c = float(np.clip((a - v) / (1.0 + v), 0.0, _MAX_DISPERSION))
    last_mean = last_var = 0.0
    if v > 0 and W.size:
        last_mean, last_var = _filter_last(W, M, S, c, v, phi, adjacent=bool(full[-1]))
    return c, v, phi, last_mean, last_var


def _filter_last(W: np.ndarray, M: np.ndarray, S: np.ndarray, c: float, v: float, phi: float,
                 *, adjacent: bool) -> tuple[float, float]:
    """Kalman filter of the log week shock over the complete in-sample weeks.

    State ``x_w`` AR(1) (``phi``, stationary variance ``log(1 + v)``); observation
    ``log((W + 0.5) / (M + 0.5)) = x_w + noise`` with the count noise's delta-method variance
    ``(M + c (1 + v) S) / M^2``. Returns the mean and variance of the shock of the week just
    before the forecast (one AR step past the last complete week when the history ends
    mid-week), so sample paths start from the recent level instead of the fitted curve.
    """
    s2 = float(np.log1p(v))
    q = s2 * (1.0 - phi * phi)
    e = np.log((W + 0.5) / (M + 0.5))
    r = (M + c * (1.0 + v) * S) / np.maximum(M, 0.5) ** 2
    m, p = 0.0, s2
    for w in range(len(W)):
        if w:
            m, p = phi * m, phi * phi * p + q
        gain = p / (p + float(r[w]))
        m, p = m + gain * (float(e[w]) - m), (1.0 - gain) * p
    if not adjacent:
        m, p = phi * m, phi * phi * p + q
    return float(m), float(p)


def _count_paths(mu: np.ndarray, future: pd.DatetimeIndex, disp: float, week_var: float,
                 phi: float, rng: np.random.Generator, last: tuple[float, float] = (0.0, 0.0),
                 ) -> np.ndarray:
    """Integer-valued daily paths ``(days, n)`` from mean paths ``mu`` (count scale): a
    log-normal AR(1) week shock (mean 1, variance ``week_var``; started from the filtered
    shock ``last = (mean, variance)`` of the week before the forecast), gamma daily
    over-dispersion (``disp`` = 1/r) and Poisson counts."""
    days, n = mu.shape
    lam = np.maximum(mu, 0.0)
    if week_var > 0:
        codes = _week_codes(future)
        n_weeks = int(codes[-1]) + 1
        s2 = float(np.log1p(week_var))
        eps = rng.normal(0.0, np.sqrt(s2), size=(n_weeks, n))
        prev = last[0] + np.sqrt(min(max(last[1], 0.0), s2)) * rng.standard_normal(n)
        x = np.empty_like(eps)
        innov = np.sqrt(1.0 - phi * phi)
        for w in range(n_weeks):
            x[w] = phi * (prev if w == 0 else x[w - 1]) + innov * eps[w]
        lam = lam * np.exp(x - s2 / 2.0)[codes]
    if disp > 0:
        shape = 1.0 / disp
        lam = rng.gamma(shape, 1.0, size=lam.shape) * (lam / shape)
    out: np.ndarray = rng.poisson(lam).astype(float)
    return out


# ---------------------------------------------------------------- helpers
def _clean(df: pd.DataFrame) -> pd.DataFrame:
    missing = {"unique_id", "ds", "y"} - set(df.columns)
    if missing:
        raise ValueError(f"frame lacks columns {sorted(missing)}")
    out = pd.DataFrame({
        "unique_id": df["unique_id"].astype(str).to_numpy(),
        "ds": pd.to_datetime(df["ds"]).dt.normalize().astype("datetime64[ns]").to_numpy(),
        "y": pd.to_numeric(df["y"], errors="coerce").astype(float).to_numpy(),
    })
    return out


def _iso_monday(ds: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """Monday of each day's ISO week, ``datetime64[ns]`` (1970-01-01 was a Thursday)."""
    days = np.asarray(ds, dtype="datetime64[D]").astype(np.int64)
    return np.asarray((days - (days + 3) % 7).astype("datetime64[D]").astype("datetime64[ns]"))


def _fallback_paths(
    hist: pd.DataFrame, future: pd.DatetimeIndex, n_samples: int, seed: int
) -> np.ndarray:
    """``seasonal_mean``: day-of-week means of the last 8 weeks, Poisson or negative binomial
    (moment-matched over-dispersion) daily draws. Shape ``(len(future), n_samples)``."""
    rng = np.random.default_rng(seed)
    recent = hist[hist["ds"] > hist["ds"].iloc[-1] - pd.Timedelta(days=56)]
    y = recent["y"].to_numpy(dtype=float)
    mean = float(y.mean()) if y.size else 0.0
    if mean <= 0:
        return np.zeros((len(future), n_samples))
    by_dow = recent.groupby(recent["ds"].dt.day_of_week)["y"].agg(["mean", "size"])
    mu_dow = np.full(7, mean)
    ok = by_dow["size"] >= 2
    mu_dow[by_dow.index[ok].to_numpy()] = by_dow.loc[ok, "mean"].to_numpy()
    mu = np.maximum(mu_dow[future.day_of_week.to_numpy()], 1e-9)[:, None]
    var = float(y.var(ddof=1)) if y.size > 1 else mean
    if var > mean * 1.05:
        r = mean**2 / (var - mean)
        draws = rng.negative_binomial(r, r / (r + mu), size=(len(future), n_samples))
    else:
        draws = rng.poisson(mu, size=(len(future), n_samples))
    return draws.astype(float)


def _weekly_sums(
    uid: str, hist: pd.DataFrame, future: pd.DatetimeIndex, paths: np.ndarray
) -> pd.DataFrame:
    weeks = _iso_monday(future)
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
