"""ProphetForecaster contract: sklearn-style params, long output, flags, seeds, JSON, warm start;
the direct fit path against Prophet's own preprocessing and fit; the count noise model."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import models._prophet_direct as direct_mod
from models.count_noise import count_paths, noise_moments
from models.forecast import FALLBACK_MODEL, ProphetForecaster
from models.types import DAILY_COLUMNS, FAILURE_COLUMNS, FLAG_COLUMNS, ForecastOutput

HORIZON = 70  # = the conftest ``horizon`` fixture (checked below)

PROPHET_IDS = {"regular", "medium", "gappy"}
FALLBACK_IDS = {"short", "zero", "sparse"}


def _flags(out: ForecastOutput, uid: str) -> set[str]:
    return set(out.flags.loc[out.flags["unique_id"] == uid, "flag"])


# ------------------------------------------------------------ fast (no Prophet fit)
def test_init_only_stores_params_and_clone_round_trips() -> None:
    est = ProphetForecaster(transform="sqrt", n_samples=50, seed=3)
    params = est.get_params()
    assert params["transform"] == "sqrt" and params["n_samples"] == 50 and params["seed"] == 3
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    assert twin.set_params(seed=9) is twin and twin.seed == 9
    assert not hasattr(est, "models_")


@pytest.mark.parametrize(("param", "value"), [
    ("transform", "boxcox"), ("fit_path", "r"), ("noise", "poisson"), ("calendar", "us"),
    ("noise_inflation", -1.0)])
def test_bad_params_raise_at_fit(param: str, value: Any) -> None:
    df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2024-01-01", periods=3), "y": 1})
    with pytest.raises(ValueError, match=param):
        ProphetForecaster(**{param: value}).fit(df)


def test_predict_before_fit_raises() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        ProphetForecaster().predict(7)


def test_fallback_only_batch_contract() -> None:
    ds = pd.date_range("2024-01-03", periods=20, freq="D")  # ends on a Monday
    rng = np.random.default_rng(0)
    df = pd.concat([
        pd.DataFrame({"unique_id": "few", "ds": ds, "y": rng.poisson(3, 20)}),
        pd.DataFrame({"unique_id": "nil", "ds": ds, "y": 0}),
    ])
    est = ProphetForecaster(n_samples=40)
    assert est.fit(df) is est
    out = est.predict(13)  # Tue 2024-01-23 .. Sun 2024-02-04: partial week + one whole week
    assert list(out.daily.columns) == DAILY_COLUMNS
    assert list(out.flags.columns) == FLAG_COLUMNS
    assert list(out.failures.columns) == FAILURE_COLUMNS and out.failures.empty
    assert set(out.daily["model"]) == {FALLBACK_MODEL}
    assert len(out.daily) == 2 * 13
    assert (out.daily[["yhat", "yhat_lower", "yhat_upper"]] >= 0).all().all()
    ws = out.weekly_samples
    assert [int(c) for c in ws.columns] == list(range(40))
    assert ws.index.names == ["unique_id", "week"]
    assert (pd.DatetimeIndex(ws.index.get_level_values("week")).day_of_week == 0).all()
    assert ws.loc["nil"].to_numpy().sum() == 0
    # partial first week (Mon 2024-01-22 .. ): observed Monday 2024-01-22 is included
    observed = df[(df["unique_id"] == "few") & (df["ds"] >= "2024-01-22")]["y"].sum()
    assert (ws.xs("few").loc[pd.Timestamp("2024-01-22")] >= observed).all()
    assert len(ws.loc["few"]) == 2
    assert {"short_history", "fallback"} <= _flags(out, "few")
    assert {"all_zero", "fallback"} <= _flags(out, "nil")


def test_missing_columns_raise() -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        ProphetForecaster().fit(pd.DataFrame({"ds": [], "y": []}))


@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")  # Prophet 1.5.0 internals
def test_direct_stan_data_equal_prophet_preprocess(
        regular: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    """Features, scales, changepoints, priors and component columns prepared in numpy are
    exactly what Prophet's own ``preprocess`` builds from the same holidays and regressor
    (no Stan run: the optimiser is replaced by one returning the inits)."""
    from prophet import Prophet

    seen: dict[str, dict[str, object]] = {}

    def fake_optimize(data: dict[str, object], init: dict[str, object], **_: object
                      ) -> dict[str, np.ndarray]:
        seen["data"], seen["init"] = data, init
        return {k: np.asarray(v, dtype=float).reshape(1, -1) for k, v in init.items()}

    monkeypatch.setattr(direct_mod, "optimize", fake_optimize)
    est = ProphetForecaster(noise="gaussian").fit(regular)
    model = est.models_["regular"]
    data = seen["data"]
    ref: Any = Prophet(yearly_seasonality=10, weekly_seasonality=True, daily_seasonality=False)
    ref.holidays = model.holidays  # per-offset rows; set after __init__ (no window checks)
    ref.add_regressor("is_workday", prior_scale=10.0, standardize=False)
    df = est.prophet_frame("regular", regular["ds"]).assign(y=regular["y"].to_numpy())
    inputs: Any = ref.preprocess(df)
    np.testing.assert_array_equal(np.asarray(data["X"]), inputs.X.to_numpy())
    np.testing.assert_array_equal(np.asarray(data["y"]), inputs.y.to_numpy())
    np.testing.assert_allclose(np.asarray(data["t"]), inputs.t.to_numpy(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(np.asarray(data["t_change"]), inputs.t_change, atol=1e-15)
    assert list(data["sigmas"]) == list(inputs.sigmas)  # type: ignore[call-overload]
    np.testing.assert_array_equal(np.asarray(data["s_a"]), inputs.s_a.to_numpy())
    np.testing.assert_array_equal(np.asarray(data["s_m"]), inputs.s_m.to_numpy())
    assert ref.train_component_cols.equals(model.train_component_cols)
    assert list(ref.train_component_cols.columns) == list(model.train_component_cols.columns)
    assert ref.component_modes == model.component_modes
    assert (ref.y_scale, ref.start, ref.t_scale) == (model.y_scale, model.start, model.t_scale)
    # dropped holiday columns are the ones that are zero over the history only
    assert inputs.X.shape[1] == np.asarray(data["X"]).shape[1] < 80
    assert (inputs.X.abs().sum(axis=0) > 0).all()


def test_cmdstan_optimize_errors_and_parsing() -> None:
    from models._cmdstan import StanError, _to_params, optimize

    params = _to_params(["lp__", "k", "delta.1", "delta.2", "beta.1"],
                        np.array([-1.0, 0.5, 0.1, 0.2, 3.0]))
    assert set(params) == {"k", "delta", "beta"}
    assert params["delta"].shape == (1, 2) and params["k"][0, 0] == 0.5
    bad = {"T": 5, "S": 1, "K": 1, "tau": 0.05, "trend_indicator": 0, "y": np.zeros(3),
           "t": np.linspace(0, 1, 5), "cap": np.zeros(5), "t_change": np.array([0.5]),
           "X": np.zeros((5, 1)), "sigmas": [1.0], "s_a": np.ones(1), "s_m": np.zeros(1)}
    init = {"k": 0.0, "m": 0.0, "delta": np.zeros(1), "beta": np.zeros(1), "sigma_obs": 1.0}
    with pytest.raises(StanError, match="failed"):
        optimize(bad, init)  # y has 3 values for T = 5
    with pytest.raises(ValueError, match="NaN"):
        optimize({**bad, "y": np.full(5, np.nan)}, init)


def test_noise_moments_recover_simulated_parameters() -> None:
    """Moment estimates of (dispersion, week variance, AR) on data simulated by the same
    count model the paths use; 3 years, 8 counts a day."""
    ds = pd.date_range("2022-01-03", periods=3 * 364, freq="D")
    mu = 8 * (1 + 0.3 * np.sin(2 * np.pi * np.arange(len(ds)) / 365.25))
    est = []
    for seed in range(6):
        y = count_paths(mu[:, None], ds, 0.3, 0.15, 0.5, np.random.default_rng(seed))[:, 0]
        est.append(noise_moments(ds.to_numpy(), y, mu))
    disp, week_var, phi = (np.median([e[i] for e in est]) for i in range(3))
    assert 0.2 < disp < 0.4
    assert 0.07 < week_var < 0.3
    assert 0.25 < phi < 0.8
    poisson = np.random.default_rng(9).poisson(mu).astype(float)
    d0, v0, *_ = noise_moments(ds.to_numpy(), poisson, mu)
    assert d0 < 0.05 and v0 < 0.03  # no over-dispersion found in Poisson data


def test_count_paths_weekly_moments() -> None:
    """Weekly sums of the paths have the mean and variance of the model:
    Var(W) = M + c (1 + v) S + v M^2 (M = 35, S = 175, c = 0.5, v = 0.2)."""
    ds = pd.date_range("2024-01-01", periods=14, freq="D")
    paths = count_paths(np.full((14, 20_000), 5.0), ds, 0.5, 0.2, 0.0,
                         np.random.default_rng(1))
    assert (paths >= 0).all() and np.array_equal(paths, np.round(paths))
    week = paths[:7].sum(axis=0)
    assert abs(week.mean() - 35) < 0.5
    assert abs(week.var() / (35 + 0.5 * 1.2 * 175 + 0.2 * 35**2) - 1) < 0.06
    # a filtered shock of +0.5 before the forecast lifts the first week by ~exp(0.5) (phi 0.8)
    up = count_paths(np.full((14, 20_000), 5.0), ds, 0.0, 0.2, 0.8,
                      np.random.default_rng(2), last=(0.5, 0.0))
    assert 1.3 < up[:7].sum(axis=0).mean() / 35 < 1.6


# ------------------------------------------------------------------ real Prophet fits
@pytest.mark.slow
def test_long_output_and_intervals(forecast: ForecastOutput, horizon: int,
                                  panel_end: pd.Timestamp) -> None:
    assert horizon == HORIZON
    daily = forecast.daily
    assert list(daily.columns) == DAILY_COLUMNS
    assert set(daily["unique_id"]) == PROPHET_IDS | FALLBACK_IDS
    assert (daily.groupby("unique_id").size() == HORIZON).all()
    assert daily["ds"].min() == panel_end + pd.Timedelta(days=1)
    assert set(daily.loc[daily["unique_id"].isin(PROPHET_IDS), "model"]) == {"prophet"}
    values = daily[["yhat", "yhat_lower", "yhat_upper"]]
    assert (values >= 0).all().all() and np.isfinite(values.to_numpy()).all()
    assert (daily["yhat_lower"] <= daily["yhat"]).all()
    assert (daily["yhat"] <= daily["yhat_upper"]).all()
    prophet = daily[daily["unique_id"].isin(PROPHET_IDS)]
    assert (prophet["yhat_upper"] > prophet["yhat_lower"]).mean() > 0.95  # integer paths
    reg = daily[daily["unique_id"] == "regular"]
    assert 2.0 < reg["yhat"].mean() < 15.0  # level of the synthetic series (~6 a day)


@pytest.mark.slow
def test_weekly_samples_shape(panel: pd.DataFrame, forecast: ForecastOutput) -> None:
    ws = forecast.weekly_samples
    assert ws.index.names == ["unique_id", "week"]
    assert [int(c) for c in ws.columns] == list(range(200))
    assert (ws.to_numpy() >= 0).all()
    weeks = pd.DatetimeIndex(ws.xs("regular").index)
    assert (weeks.day_of_week == 0).all()
    # panel ends Wed 2026-11-25: first week is partial (observed Mon-Wed added), and the
    # horizon ends Wed 2027-02-03, so that partial last week is left out
    assert weeks[0] == pd.Timestamp("2026-11-23") and weeks[-1] == pd.Timestamp("2027-01-25")
    reg = panel[panel["unique_id"] == "regular"]
    observed = reg.loc[reg["ds"] >= "2026-11-23", "y"].sum()
    assert observed > 0 and (ws.xs("regular").loc[weeks[0]] >= observed).all()


@pytest.mark.slow
def test_flags_and_failures(forecast: ForecastOutput) -> None:
    assert {"all_zero", "fallback"} <= _flags(forecast, "zero")
    assert {"short_history", "fallback"} <= _flags(forecast, "short")
    assert {"sparse", "fallback"} <= _flags(forecast, "sparse")
    assert "gappy" in _flags(forecast, "gappy")
    assert "short_history" in _flags(forecast, "medium")  # < 2 years: no yearly seasonality
    assert "fallback" not in _flags(forecast, "regular")
    unofficial = forecast.flags[forecast.flags["flag"] == "unofficial_calendar"]
    assert set(unofficial["unique_id"]) == PROPHET_IDS
    assert set(unofficial["detail"]) == {"2027"}
    assert list(forecast.failures["unique_id"]) == ["bad"]
    assert "negative" in forecast.failures["error"].iloc[0]


@pytest.mark.slow
def test_same_seed_same_output(regular: pd.DataFrame, fitted: ProphetForecaster) -> None:
    a = ProphetForecaster().fit(regular).predict(HORIZON)
    b = fitted.predict(HORIZON)
    pd.testing.assert_frame_equal(a.daily, b.daily[b.daily["unique_id"] == "regular"]
                                  .reset_index(drop=True))
    pd.testing.assert_frame_equal(a.weekly_samples, b.weekly_samples.loc[["regular"]])
    c = ProphetForecaster(seed=1).fit(regular).predict(HORIZON)
    assert not np.allclose(a.weekly_samples.to_numpy(), c.weekly_samples.to_numpy())


@pytest.fixture(scope="module")
def reference(regular: pd.DataFrame) -> ProphetForecaster:
    """``Prophet.fit`` itself (holiday frame + regressor), the reference of the direct path."""
    return ProphetForecaster(fit_path="prophet").fit(regular)


@pytest.mark.slow
def test_direct_path_equals_prophet_fit(regular: pd.DataFrame,
                                        reference: ProphetForecaster) -> None:
    """With CmdStan's default tolerances (``stan_options={}``): the same MAP parameters and
    the same forecasts as Prophet's own fit (same Stan model, data and inits)."""
    exact = ProphetForecaster(stan_options={}).fit(regular)
    direct, ref = exact.models_["regular"], reference.models_["regular"]
    for key in ("k", "m", "sigma_obs", "delta", "beta"):
        np.testing.assert_allclose(direct.params[key], ref.params[key], rtol=1e-6, atol=1e-9)
    pd.testing.assert_frame_equal(exact.predict(HORIZON).daily,
                                  reference.predict(HORIZON).daily)


@pytest.mark.slow
def test_fast_json_writer_gives_identical_fits(regular: pd.DataFrame,
                                               reference: ProphetForecaster) -> None:
    slow = ProphetForecaster(fit_path="prophet", fast_json=False).fit(regular)
    for key in ("k", "m", "sigma_obs", "delta", "beta"):
        np.testing.assert_array_equal(slow.models_["regular"].params[key],
                                      reference.models_["regular"].params[key])


@pytest.mark.slow
def test_default_stan_tolerance_moves_fit_little(reference: ProphetForecaster,
                                                 fitted: ProphetForecaster) -> None:
    """DEFAULT_STAN_OPTIONS (looser LBFGS tolerances) against Prophet's own fit: the
    noise-free future mean moves by well under 1 %."""
    ya, yb = _fitted_curve(fitted), _fitted_curve(reference)
    assert len(ya) == HORIZON and yb.mean() > 1
    assert np.abs(ya - yb).mean() / yb.mean() < 0.01


def _fitted_curve(est: ProphetForecaster) -> np.ndarray:
    """Noise-free future mean (trend + seasonal + calendar) of the ``regular`` series."""
    from models._prophet_direct import _piecewise_linear

    m = est.models_["regular"]
    fut = pd.date_range(est.history_["regular"]["ds"].iloc[-1] + pd.Timedelta(days=1),
                        periods=HORIZON)
    X = est._design(m, fut, {})
    p, cc = m.params, m.train_component_cols
    t = ((fut - m.start) / m.t_scale).to_numpy(dtype=float)
    trend = _piecewise_linear(t, p["delta"][0], float(p["k"][0, 0]), float(p["m"][0, 0]),
                              np.asarray(m.changepoints_t))
    beta = p["beta"][0]
    out: np.ndarray = (trend * (1 + X @ (beta * cc["multiplicative_terms"].to_numpy()))
                       + X @ (beta * cc["additive_terms"].to_numpy())) * m.y_scale
    return out


@pytest.mark.slow
def test_gaussian_noise_is_prophets(regular: pd.DataFrame, fitted: ProphetForecaster) -> None:
    """``noise="gaussian"``: continuous paths, clipped at 0, spread from ``sigma_obs``."""
    gauss = ProphetForecaster.from_json({"regular": fitted.to_json("regular")},
                                        noise="gaussian", n_samples=400)
    out = gauss.predict(28)
    assert (out.weekly_samples.to_numpy() >= 0).all()
    assert not np.array_equal(out.weekly_samples, np.round(out.weekly_samples))
    sigma = float(fitted.models_["regular"].params["sigma_obs"][0, 0])
    spread = (out.daily["yhat_upper"] - out.daily["yhat_lower"]).mean()
    assert 1.5 < spread / (sigma * fitted.models_["regular"].y_scale) < 3.5  # ~2 x 1.28 sd


@pytest.mark.slow
@pytest.mark.filterwarnings(  # Prophet 1.5.0's own model_from_json / predict under pandas 3.1
    "ignore:The 'convert_dates' keyword:pandas.errors.Pandas4Warning",
    "ignore:The inplace keyword:pandas.errors.Pandas4Warning")
def test_json_round_trip(fitted: ProphetForecaster, forecast: ForecastOutput) -> None:
    from prophet.serialize import model_from_json

    text = fitted.to_json("regular")
    assert json.loads(text)["forewarn"]["params"]["transform"] == fitted.transform
    assert model_from_json(text).params["k"].shape == (1, 1)  # still plain Prophet JSON
    rebuilt = ProphetForecaster.from_json({"regular": text})
    assert rebuilt.get_params()["transform"] == fitted.transform
    out = rebuilt.predict(HORIZON)
    want = forecast.daily[forecast.daily["unique_id"] == "regular"].reset_index(drop=True)
    pd.testing.assert_frame_equal(out.daily, want)
    pd.testing.assert_frame_equal(out.weekly_samples, forecast.weekly_samples.loc[["regular"]])
    with pytest.raises(KeyError, match="zero"):
        fitted.to_json("zero")
    # Prophet's own predict / plot_components work on the loaded model (holidays panel)
    loaded = model_from_json(text)
    days = pd.date_range("2027-02-01", periods=30)
    own = loaded.predict(fitted.prophet_frame(loaded, days))
    assert {"holidays", "yearly", "weekly", "is_workday"} <= set(own.columns)
    assert (own.loc[own["ds"].isin(pd.date_range("2027-02-05", "2027-02-11")),
                    "holidays"] != 0).any()  # Spring Festival 2027 (unofficial dates)
    assert len(text) < 400_000
    own_history = fitted.models_["regular"].predict(fitted.models_["regular"].history)
    assert len(own_history) == 800 and own_history["yhat"].notna().all()  # notebook 01


@pytest.mark.slow
@pytest.mark.filterwarnings(
    "ignore:The 'convert_dates' keyword:pandas.errors.Pandas4Warning")
def test_version_1_json_still_predicts(regular: pd.DataFrame) -> None:
    """Models stored before the direct path (Prophet.fit, per-day holiday windows, no noise
    estimates) predict with the fast features exactly as with Prophet's own."""
    old = ProphetForecaster(fit_path="prophet", calendar_block_days=1,
                            noise="gaussian").fit(regular)
    d = json.loads(old.to_json("regular"))
    d["forewarn"] = {"version": 1, "unique_id": "regular", "weekly_noise": [0.0, 0.0],
                     "params": {"transform": "none", "n_samples": 200, "seed": 0}}
    rebuilt = ProphetForecaster.from_json({"regular": json.dumps(d)}, noise="gaussian")
    assert rebuilt.calendar_block_days == 1 and rebuilt.fit_path == "direct"
    pd.testing.assert_frame_equal(rebuilt.predict(HORIZON).daily, old.predict(HORIZON).daily)


@pytest.mark.slow
def test_warm_start(regular: pd.DataFrame, fitted: ProphetForecaster) -> None:
    params = fitted.params_("regular")
    assert set(params) == {"k", "m", "sigma_obs", "delta", "beta"}
    json.dumps(params)  # JSON-able
    daily = fitted.predict(HORIZON).daily
    cold = daily[daily["unique_id"] == "regular"]["yhat"].to_numpy()
    warm = ProphetForecaster().fit(regular, init={"regular": params})
    w = warm.predict(HORIZON).daily["yhat"].to_numpy()
    assert np.abs(w - cold).mean() / cold.mean() < 0.05
    via_attr = ProphetForecaster(warm_start_params={"regular": params}).fit(regular)
    np.testing.assert_allclose(via_attr.predict(HORIZON).daily["yhat"].to_numpy(), w)
    # params of the wrong shape are ignored by Prophet, not fatal
    bad = {**params, "beta": [0.0]}
    assert "regular" in ProphetForecaster().fit(regular, init={"regular": bad}).models_


@pytest.mark.slow
def test_transforms_stay_non_negative(regular: pd.DataFrame) -> None:
    for transform in ("sqrt", "log1p"):
        out = ProphetForecaster(transform=transform, n_samples=50).fit(regular).predict(28)
        assert (out.daily[["yhat", "yhat_lower"]] >= 0).all().all()
        assert (out.weekly_samples.to_numpy() >= 0).all()
        assert 2.0 < out.daily["yhat"].mean() < 15.0
