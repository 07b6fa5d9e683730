"""The direct Prophet path: Prophet's preprocessing re-implemented in numpy (Fourier terms,
calendar columns, component indicators, scales, changepoints; tested column by column against
``Prophet.preprocess``), the MAP fit by Prophet's own compiled Stan model
(:func:`models._cmdstan.optimize`), the fitted state set on a real ``Prophet`` object, and the
sample-path means (trend changes as ``Prophet._sample_uncertainty``). ``Prophet.fit`` is the
reference path and the test oracle (``fit_path="prophet"`` of
:class:`models.forecast.ProphetForecaster`)."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from pandas.errors import Pandas4Warning

from models._cmdstan import StanError, optimize
from models._prophet_calendar import _WORKDAY, _Calendar, _prophet_key

__all__ = ["warm_start_params", "fit_direct", "DEFAULT_STAN_OPTIONS"]


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


# CmdStan LBFGS tolerances of the direct path (CmdStan/Prophet defaults: tol_rel_grad 1e7,
# tol_rel_obj 1e4): about 20 % less optimiser time; point forecasts moved by <= 1 % (median
# 0.005 %) on 40 synthetic 4-year series; backtests in bench/transform_choice.py.
DEFAULT_STAN_OPTIONS: dict[str, float] = {"tol_rel_grad": 1e8, "tol_rel_obj": 1e5}


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


def fit_direct(
    model: Any, ds: np.ndarray, y: np.ndarray, yearly: int | bool, cal: _Calendar | None,
    init: Mapping[str, Any] | None, *, mode: str, weekly: bool,
    seasonality_prior_scale: float, holidays_prior_scale: float, changepoint_range: float,
    changepoint_prior_scale: float, stan_options: Mapping[str, float] | None,
) -> np.ndarray:
    """Fit the unfitted Prophet ``model`` to ``y`` on days ``ds`` the way ``Prophet.fit``
    would (features, scales, changepoints, priors, LBFGS with a Newton fallback), with the
    calendar's holiday columns that are non-zero in this history and ``is_workday``.

    The model is left fitted in place (``params``, ``history``, scales, seasonalities,
    holidays, regressors, component columns, changepoints), so Prophet's own ``predict``,
    ``plot_components`` and JSON serialisation work on it. One straight sequence of
    Prophet's preprocessing steps, kept in one function so it reads against
    ``Prophet.preprocess`` step by step. Returns the regression features of the history.
    """
    ds = np.asarray(ds, dtype="datetime64[ns]")
    n = len(ds)
    # --- seasonalities (as Prophet.set_auto_seasonalities with explicit orders)
    blocks: list[np.ndarray] = []
    columns: list[str] = []
    sigmas: list[float] = []
    seasonal: list[str] = []
    days = _epoch_days(ds)
    orders = [("yearly", 365.25, 10 if yearly is True else int(yearly)),
              ("weekly", 7.0, 3 if weekly else 0)]
    for name, period, order in orders:
        if order <= 0:
            continue
        model.seasonalities[name] = {
            "period": period, "fourier_order": order,
            "prior_scale": float(seasonality_prior_scale), "mode": mode,
            "condition_name": None}
        blocks.append(_fourier(days, period, order))
        columns += [f"{name}_delim_{i + 1}" for i in range(2 * order)]
        sigmas += [float(seasonality_prior_scale)] * (2 * order)
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
            sigmas += [float(holidays_prior_scale)] * keep.size
        regressors = [_WORKDAY]
        model.extra_regressors[_WORKDAY] = {
            "prior_scale": float(holidays_prior_scale), "standardize": False,
            "mu": 0.0, "std": 1.0, "mode": mode}
        blocks.append(cal.workday[pos][:, None])
        columns.append(_WORKDAY)
        sigmas.append(float(holidays_prior_scale))
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
    hist_size = int(np.floor(n * float(changepoint_range)))
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
            "tau": float(changepoint_prior_scale), "trend_indicator": 0,
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
        options = dict(DEFAULT_STAN_OPTIONS if stan_options is None else stan_options)
        try:
            model.params = optimize(data, stan_init, options=options)
        except StanError:
            model.params = optimize(data, stan_init, algorithm="newton", options=options)
    if len(model.changepoints) == 0:
        model.params["k"] = model.params["k"] + model.params["delta"].reshape(-1)
        model.params["delta"] = np.zeros(model.params["delta"].shape).reshape((-1, 1))
    return X
