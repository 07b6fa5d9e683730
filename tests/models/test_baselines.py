"""Contract and behaviour of the baseline forecasters (no Prophet fits)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from models.baselines import GlobalHistGradientBoosting, SeasonalNaive, calendar_features
from models.peaks import spike_probabilities
from models.types import DAILY_COLUMNS, FAILURE_COLUMNS, FLAG_COLUMNS, ForecastOutput

CUTOFF = pd.Timestamp("2024-04-24")  # a Wednesday: the first forecast week is partial
HORIZON = 58  # ends on a Friday: the trailing partial week is dropped
SPIKE_WEEKS = {"s0": (20, 21), "s1": (30, 30), "s2": (12, 13)}


def spiky_panel(seed: int = 3) -> pd.DataFrame:
    """Three series 2021-01-04..2024-12-29: yearly wave, weekday effect, a planted surge in
    the same ISO weeks every year (x4), Poisson noise."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2021-01-04", "2024-12-29", freq="D")
    doy = ds.day_of_year.to_numpy()
    week = ds.isocalendar()["week"].to_numpy(dtype=int)
    parts = []
    for i, (uid, (w0, w1)) in enumerate(SPIKE_WEEKS.items()):
        base = (3.0, 1.0, 8.0)[i]
        lam = base * (1 + 0.4 * np.sin(2 * np.pi * (doy + 70 * i) / 365.25))
        lam = lam * np.where(ds.day_of_week < 5, 1.15, 0.65)
        lam = lam * np.where((week >= w0) & (week <= w1), 4.0, 1.0)
        parts.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": rng.poisson(lam)}))
    return pd.concat(parts, ignore_index=True)


FACTORIES: dict[str, Callable[[], Any]] = {
    "SeasonalNaive": lambda: SeasonalNaive(n_samples=100),
    "GlobalHistGradientBoosting": lambda: GlobalHistGradientBoosting(max_iter=60,
                                                                     n_samples=100),
}


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    p = spiky_panel()
    return p[p["ds"] <= CUTOFF].reset_index(drop=True)


@pytest.fixture(scope="module", params=list(FACTORIES))
def fitted(request: pytest.FixtureRequest, history: pd.DataFrame
           ) -> tuple[object, ForecastOutput]:
    est = FACTORIES[request.param]()
    assert est.fit(history) is est
    return est, est.predict(HORIZON)


def test_output_contract(fitted: tuple[object, ForecastOutput]) -> None:
    est, out = fitted
    d = out.daily
    assert list(d.columns) == DAILY_COLUMNS
    assert len(d) == 3 * HORIZON
    assert set(d["model"]) == {type(est).__name__}
    for _, g in d.groupby("unique_id"):
        assert g["ds"].iloc[0] == CUTOFF + pd.Timedelta(days=1)
        assert (g["ds"].diff().dropna() == pd.Timedelta(days=1)).all()
    assert (d[["yhat", "yhat_lower", "yhat_upper"]] >= 0).all().all()
    assert (d["yhat_lower"] <= d["yhat"]).all() and (d["yhat"] <= d["yhat_upper"]).all()
    assert (d["yhat_upper"] > d["yhat_lower"]).mean() > 0.9  # a real interval
    w = out.weekly_samples
    assert w.index.names == ["unique_id", "week"]
    assert [int(c) for c in w.columns] == list(range(100))
    weeks = pd.DatetimeIndex(w.index.get_level_values("week"))
    assert (weeks.day_of_week == 0).all()
    # partial first week (observed Mon-Wed) kept; last complete week ends before the horizon
    assert weeks.min() == pd.Timestamp("2024-04-22")
    assert (weeks + pd.Timedelta(days=6)).max() <= CUTOFF + pd.Timedelta(days=HORIZON)
    assert len(w) == 3 * 8  # 2024-04-22 .. 2024-06-10
    assert (w.to_numpy() >= 0).all()
    assert list(out.flags.columns) == FLAG_COLUMNS
    assert list(out.failures.columns) == FAILURE_COLUMNS and out.failures.empty


@pytest.mark.parametrize("name", list(FACTORIES))
def test_params_clone_round_trip(name: str) -> None:
    est = FACTORIES[name]()
    est.set_params(random_state=11)
    twin = clone(est)
    assert twin is not est
    assert twin.get_params() == est.get_params()
    assert twin.get_params()["random_state"] == 11
    assert not hasattr(twin, "history_")


@pytest.mark.parametrize("name", list(FACTORIES))
def test_seeded_reproducibility(name: str, history: pd.DataFrame) -> None:
    small = history[history["unique_id"] != "s2"]
    a = FACTORIES[name]().fit(small).predict(21)
    b = FACTORIES[name]().fit(small).predict(21)
    pd.testing.assert_frame_equal(a.weekly_samples, b.weekly_samples)
    pd.testing.assert_frame_equal(a.daily, b.daily)
    c = FACTORIES[name]().set_params(random_state=1).fit(small).predict(21)
    assert not np.array_equal(a.weekly_samples.to_numpy(), c.weekly_samples.to_numpy())


def test_seasonal_naive_point_is_lag_364(history: pd.DataFrame) -> None:
    out = SeasonalNaive(n_samples=50).fit(history).predict(400)
    h = history.set_index(["unique_id", "ds"])["y"]
    d = out.daily.set_index(["unique_id", "ds"])["yhat"]
    first = d.xs("s0").iloc[:364]
    lagged = pd.DatetimeIndex(first.index) - pd.Timedelta(days=364)
    expected = h.xs("s0").reindex(lagged).to_numpy()
    np.testing.assert_array_equal(first.to_numpy(), expected)
    # beyond a year the forecast repeats itself (lag 728 of history)
    s0 = d.xs("s0")
    np.testing.assert_array_equal(s0.iloc[364:].to_numpy(), s0.iloc[:36].to_numpy())


def test_seasonal_naive_paths_do_not_depend_on_other_series(history: pd.DataFrame) -> None:
    alone = SeasonalNaive(n_samples=50).fit(history[history["unique_id"] == "s1"]).predict(30)
    together = SeasonalNaive(n_samples=50).fit(history).predict(30)
    pd.testing.assert_frame_equal(alone.weekly_samples,
                                  together.weekly_samples.loc[["s1"]])


def test_partial_first_week_adds_observed_days() -> None:
    ds = pd.date_range("2022-01-03", "2024-04-24", freq="D")  # ends on a Wednesday
    df = pd.DataFrame({"unique_id": "flat", "ds": ds, "y": 2.0})
    out = SeasonalNaive(n_samples=20).fit(df).predict(11)
    w = out.weekly_samples
    # zero errors: every path is exactly 2/day; week 1 = 3 observed + 4 forecast days
    assert w.index.get_level_values("week").tolist() == [pd.Timestamp("2024-04-22"),
                                                          pd.Timestamp("2024-04-29")]
    assert (w.to_numpy() == 14.0).all()


def test_short_and_bad_series_are_isolated() -> None:
    ds = pd.date_range("2024-01-01", periods=30, freq="D")
    long_ds = pd.date_range("2022-06-01", "2024-01-30", freq="D")
    df = pd.concat([
        pd.DataFrame({"unique_id": "short", "ds": ds, "y": 1.0}),
        pd.DataFrame({"unique_id": "bad", "ds": ds, "y": [-1.0] + [1.0] * 29}),
        pd.DataFrame({"unique_id": "long", "ds": long_ds, "y": 3.0}),
    ])
    for est in (SeasonalNaive(n_samples=20), GlobalHistGradientBoosting(max_iter=20,
                                                                         n_samples=20)):
        out = est.fit(df).predict(14)
        assert out.failures["unique_id"].tolist() == ["bad"]
        assert set(out.daily["unique_id"]) == {"short", "long"}
        assert (out.daily["yhat"] >= 0).all()
    flags = SeasonalNaive().fit(df).predict(7).flags
    assert ("short", "short_history") in set(zip(flags["unique_id"], flags["flag"],
                                                 strict=True))


def test_predict_before_fit_raises() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        SeasonalNaive().predict(7)


def test_hgb_learns_the_planted_surge() -> None:
    """Forecast from before s0's surge weeks (ISO 20-21): they must stand out."""
    panel = spiky_panel()
    cutoff = pd.Timestamp("2024-04-07")
    est = GlobalHistGradientBoosting(max_iter=150, n_samples=200)
    out = est.fit(panel[panel["ds"] <= cutoff]).predict(70)
    thr = pd.Series({"s0": 60.0, "s1": 60.0, "s2": 60.0})  # calm ~25-35, surge ~105
    probs = spike_probabilities(out.weekly_samples, thr).set_index(["unique_id", "week"])
    s0 = probs.xs("s0")
    surge = s0.loc[[pd.Timestamp("2024-05-13"), pd.Timestamp("2024-05-20")]]
    calm = s0.drop(surge.index)
    assert surge["expected"].min() > 2.0 * calm["expected"].max()
    assert surge["p_spike"].min() > 0.8 and calm["p_spike"].max() < 0.2


def test_hgb_dispersion_small_on_poisson_data(history: pd.DataFrame) -> None:
    est = GlobalHistGradientBoosting(max_iter=60, n_samples=20).fit(history)
    assert all(v < 0.1 for v in est.beta_.values())
    assert all(v < 0.1 for v in est.alpha_.values())


def test_calendar_features_cn_and_other() -> None:
    days = pd.date_range("2024-02-03", "2024-02-12", freq="D")
    cn = calendar_features(days, country="CN").set_index(days)
    assert cn.loc["2024-02-04", "is_workday"] == 1       # 调休 Sunday
    assert cn.loc["2024-02-12", "is_holiday"] == 1
    assert cn.loc["2024-02-10", "days_to_spring_festival"] == 0
    us = calendar_features(pd.date_range("2013-07-04", periods=1), country="US")
    assert us["is_holiday"].tolist() == [1] and us["is_workday"].tolist() == [0]
    bare = calendar_features(days, country=None)
    assert list(bare.columns) == ["dow", "doy", "iso_week", "month", "dom"]


def test_hgb_many_series_and_calendar_hook() -> None:
    """> 255 series: no categorical series code (HGB's limit); extra day features join in."""
    rng = np.random.default_rng(0)
    ds = pd.date_range("2023-01-02", periods=60, freq="D")
    df = pd.DataFrame({"unique_id": np.repeat([f"u{i:03d}" for i in range(256)], len(ds)),
                       "ds": np.tile(ds, 256), "y": rng.poisson(2.0, 256 * len(ds))})

    def payday(days: pd.DatetimeIndex) -> pd.DataFrame:
        return pd.DataFrame({"payday": (days.day == 15).astype(int)})

    est = GlobalHistGradientBoosting(max_iter=10, n_samples=10, country=None, calendar=payday)
    out = est.fit(df).predict(7)
    assert not est.use_code_ and "series" not in est.feature_names_
    assert "cal_payday" in est.feature_names_
    assert out.daily["unique_id"].nunique() == 256 and out.failures.empty
    assert set(out.flags["flag"]) == {"no_series_code"}
