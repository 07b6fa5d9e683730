"""ProphetForecaster contract: sklearn-style params, long output, flags, seeds, JSON, warm start."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

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


def test_bad_params_raise_at_fit() -> None:
    df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2024-01-01", periods=3), "y": 1})
    with pytest.raises(ValueError, match="transform"):
        ProphetForecaster(transform="boxcox").fit(df)


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
    assert (prophet["yhat_upper"] > prophet["yhat_lower"]).all()
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


@pytest.mark.slow
def test_fast_json_writer_gives_identical_forecasts(regular: pd.DataFrame,
                                                    fitted: ProphetForecaster) -> None:
    slow = ProphetForecaster(fast_json=False).fit(regular)
    for key in ("k", "m", "sigma_obs", "delta", "beta"):
        np.testing.assert_array_equal(slow.models_["regular"].params[key],
                                      fitted.models_["regular"].params[key])
    a, b = slow.predict(14).daily, fitted.predict(14).daily
    pd.testing.assert_frame_equal(a, b[b["unique_id"] == "regular"].reset_index(drop=True))


@pytest.mark.slow
@pytest.mark.filterwarnings(  # Prophet 1.5.0's own model_from_json under pandas 3.1
    "ignore:The 'convert_dates' keyword:pandas.errors.Pandas4Warning")
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
