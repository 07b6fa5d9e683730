"""Backtest plumbing with a deterministic fake forecaster, plus a smoke run of the baselines."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator

from models.backtest import (
    CURVE_COLUMNS,
    BacktestResult,
    backtest,
    horizon_days,
    make_origins,
    p_min_curve,
    predicted_windows,
)
from models.baselines import GlobalHistGradientBoosting, SeasonalNaive
from models.types import DAILY_COLUMNS, ForecastOutput

T = pd.Timestamp
CUTOFF = T("2024-02-04")  # a Sunday
HISTORY_SPIKE = T("2023-06-05")
ACTUAL_SPIKES = [T("2024-02-05"), T("2024-03-04"), T("2024-03-11"), T("2024-05-06")]


class FakeForecaster(BaseEstimator):  # type: ignore[misc]
    """Predicts 1/day in [0, 2] and weekly sums of 100 in ``spike_weeks``, else 0."""

    def __init__(self, spike_weeks: tuple[str, ...] = (), fail: bool = False) -> None:
        self.spike_weeks = spike_weeks
        self.fail = fail

    def fit(self, df: pd.DataFrame) -> Self:
        if self.fail:
            raise RuntimeError("boom")
        self.last_ = df.groupby("unique_id")["ds"].max()
        self.n_fits_ = getattr(self, "n_fits_", 0) + 1
        return self

    def predict(self, horizon: int) -> ForecastOutput:
        daily, weekly = [], []
        for uid, last in self.last_.items():
            ds = pd.date_range(last + pd.Timedelta(days=1), periods=horizon)
            daily.append(pd.DataFrame({"unique_id": uid, "ds": ds, "yhat": 1.0,
                                       "yhat_lower": 0.0, "yhat_upper": 2.0, "model": "fake"}))
            weeks = pd.date_range(ds[0], ds[-1], freq="W-MON")
            spikes = {T(w) for w in self.spike_weeks}
            values = np.array([[100.0 if w in spikes else 0.0] * 10 for w in weeks])
            idx = pd.MultiIndex.from_arrays([[uid] * len(weeks), weeks],
                                            names=["unique_id", "week"])
            weekly.append(pd.DataFrame(values, index=idx))
        return ForecastOutput(daily=pd.concat(daily, ignore_index=True)[DAILY_COLUMNS],
                              weekly_samples=pd.concat(weekly))


class GradedForecaster(FakeForecaster):
    """Like FakeForecaster, but week ``w`` spikes in a share ``probabilities[w]`` of 10 paths."""

    def __init__(self, probabilities: tuple[tuple[str, float], ...] = ()) -> None:
        self.probabilities = probabilities
        super().__init__()

    def predict(self, horizon: int) -> ForecastOutput:
        out = FakeForecaster.predict(self, horizon)
        weekly = out.weekly_samples * 0.0
        for week, share in self.probabilities:
            rows = weekly.index.get_level_values("week") == T(week)
            weekly.loc[rows, list(range(round(10 * share)))] = 100.0
        return ForecastOutput(daily=out.daily, weekly_samples=weekly)


@pytest.fixture(scope="module")
def flat_series() -> pd.DataFrame:
    """1/day, except 5/day in one history week and in four weeks after the cutoff."""
    ds = pd.date_range("2022-01-03", "2024-06-30", freq="D")
    y = np.ones(len(ds))
    weeks = ds - pd.to_timedelta(ds.day_of_week, unit="D")
    y[weeks.isin([HISTORY_SPIKE, *ACTUAL_SPIKES])] = 5.0
    return pd.DataFrame({"unique_id": "a", "ds": ds, "y": y})


@pytest.fixture(scope="module")
def fake_result(flat_series: pd.DataFrame) -> BacktestResult:
    fake = FakeForecaster(spike_weeks=("2024-02-05", "2024-03-11", "2024-04-08"))
    return backtest(flat_series, {"fake": fake}, origins=[CUTOFF], horizon_weeks=16)


def _metrics(result: BacktestResult) -> pd.Series:
    return result.summary.set_index("metric")["value"]


def test_hand_computed_scores(fake_result: BacktestResult) -> None:
    s = _metrics(fake_result)
    # actual windows: 02-05 (1 day ahead: too soon), 03-04..03-17, 05-06..05-12
    # predicted: 02-05 (TP vs the too-soon window), 03-11 (TP, catches 03-04 29 days ahead),
    # 04-08 (false positive); 05-06 missed
    assert s["n_actual"] == 2 and s["n_actual_too_soon"] == 1
    assert s["n_caught"] == 1 and s["recall"] == pytest.approx(0.5)
    assert s["n_predicted"] == 3 and s["n_true_positive"] == 2
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert s["median_lead_days"] == 29.0
    # 16 weeks, p in {0, 1}: wrong on 04-08, 03-04 and 05-06
    assert s["brier"] == pytest.approx(3 / 16)
    # 112 days, 28 spike days off by 4; in-sample lag-364 MAE = 7 days * 4 / (763 - 364)
    assert s["mae"] == pytest.approx(1.0)
    assert s["rmse"] == pytest.approx(2.0)
    assert s["mase"] == pytest.approx(1.0 / (28 / 399))
    assert s["coverage"] == pytest.approx(84 / 112)
    assert s["n_series"] == 1 and s["n_failures"] == 0


def test_p_min_curve_rescored_without_refitting(flat_series: pd.DataFrame) -> None:
    graded = GradedForecaster(probabilities=(("2024-02-05", 0.9), ("2024-03-11", 0.4),
                                             ("2024-04-08", 0.2), ("2024-05-06", 0.3)))
    result = backtest(flat_series, {"graded": graded}, origins=[CUTOFF], horizon_weeks=16,
                      p_min=0.3)
    raw = p_min_curve(result, [0.2, 0.3, 0.5])
    assert list(raw.columns) == CURVE_COLUMNS
    curve = raw.set_index("p_min")
    assert (curve["model"] == "graded").all()
    # at the backtest's own p_min the rebuilt windows are the backtest's, the curve its summary
    own = result.windows[result.windows["kind"] == "predicted"].sort_values("start")
    again = predicted_windows(result, 0.3).sort_values("start")
    for col in ("model", "cutoff", "unique_id", "start", "end", "max_probability"):
        assert again[col].tolist() == own[col].tolist()
    assert (again["available_at"] == again["cutoff"]).all()
    summary = _metrics(result)
    for m in ("recall", "precision", "f1", "n_actual", "n_caught", "n_predicted"):
        assert curve.at[0.3, m] == pytest.approx(summary[m])
    # 0.5: only 02-05 (a true positive of the too-soon window); 0.3: + 03-11 and 05-06, which
    # catch both eligible windows; 0.2: + the false alarm 04-08
    assert curve["n_caught"].tolist() == [2, 2, 0] and (curve["n_actual"] == 2).all()
    assert curve["n_predicted"].tolist() == [4, 3, 1]
    assert curve["n_true_positive"].tolist() == [3, 3, 1]
    assert curve.at[0.5, "recall"] == 0.0 and curve.at[0.5, "f1"] == 0.0
    assert curve.at[0.3, "f1"] == pytest.approx(1.0)


def test_frames(fake_result: BacktestResult) -> None:
    po = fake_result.per_origin
    assert list(po.columns) == ["model", "cutoff", "unique_id", "metric", "value"]
    assert set(po["cutoff"]) == {CUTOFF}
    w = fake_result.windows
    act = w[w["kind"] == "actual"].sort_values("start")
    assert act["start"].tolist() == [T("2024-02-05"), T("2024-03-04"), T("2024-05-06")]
    assert act["end"].tolist() == [T("2024-02-11"), T("2024-03-17"), T("2024-05-12")]
    assert act["eligible"].tolist() == [False, True, True]
    assert act["caught"].tolist() == [False, True, False]
    assert (act["threshold"] == 7.0).all()  # q90 of flat weeks, above min_spike_count
    pred = w[w["kind"] == "predicted"].sort_values("start")
    assert pred["true_positive"].tolist() == [True, True, False]
    wk = fake_result.weekly
    assert len(wk) == 16 and wk["week"].min() == T("2024-02-05")
    assert wk["spike"].sum() == 4


def test_clone_and_factory(flat_series: pd.DataFrame) -> None:
    proto = FakeForecaster()
    backtest(flat_series, proto, origins=[CUTOFF, T("2024-03-03")], horizon_weeks=4)
    assert not hasattr(proto, "last_")  # the instance itself is never fitted
    made: list[FakeForecaster] = []

    def factory() -> FakeForecaster:
        made.append(FakeForecaster())
        return made[-1]

    res = backtest(flat_series, {"f": factory}, origins=[CUTOFF, T("2024-03-03")],
                   horizon_weeks=4)
    assert len(made) == 2 and all(m.n_fits_ == 1 for m in made)
    assert set(res.summary["model"]) == {"f"}


def test_failing_model_counts_as_missing(flat_series: pd.DataFrame) -> None:
    res = backtest(flat_series, {"ok": FakeForecaster(), "bad": FakeForecaster(fail=True)},
                   origins=[CUTOFF], horizon_weeks=16)
    bad = res.summary[res.summary["model"] == "bad"].set_index("metric")["value"]
    assert bad["n_failures"] == 1 and bad["recall"] == 0.0 and bad["n_actual"] == 2
    assert res.failures["error"].str.contains("boom").all()


def test_origins_helpers() -> None:
    assert horizon_days(T("2024-02-04"), 13) == 91
    assert horizon_days(T("2013-12-31"), 52) == 5 + 364
    cut = make_origins(T("2025-12-31"), 3, horizon_weeks=13)
    assert all(c.day_of_week == 6 for c in cut)
    assert [(b - a).days for a, b in zip(cut, cut[1:], strict=False)] == [91, 91]
    assert cut[-1] + pd.Timedelta(days=91) <= T("2025-12-31")
    assert cut[-1] + pd.Timedelta(days=98) > T("2025-12-31")


def _panel(seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2021-01-04", "2024-12-29", freq="D")
    week = ds.isocalendar()["week"].to_numpy(dtype=int)
    parts = []
    for i, w0 in enumerate((15, 33)):
        lam = (3.0 + i) * (1 + 0.3 * np.sin(2 * np.pi * ds.day_of_year.to_numpy() / 365.25))
        lam = lam * np.where((week >= w0) & (week <= w0 + 1), 4.0, 1.0)
        parts.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": rng.poisson(lam)}))
    return pd.concat(parts, ignore_index=True)


def test_baselines_smoke() -> None:
    models: dict[str, Any] = {
        "SeasonalNaive": SeasonalNaive(n_samples=100),
        "GlobalHistGradientBoosting": GlobalHistGradientBoosting(max_iter=50, n_samples=100),
    }
    # s0 surges in ISO weeks 15-16 (2024-04-08), s1 in 33-34 (2024-08-12)
    res = backtest(_panel(), models, origins=[T("2024-03-10"), T("2024-07-07")],
                   horizon_weeks=13)
    wide = res.summary.pivot(index="metric", columns="model", values="value")
    for m in ("mase", "coverage", "brier", "recall", "precision"):
        assert wide.loc[m].notna().all(), m
    assert (wide.loc["coverage"] > 0.6).all() and (wide.loc["brier"] < 0.25).all()
    # both planted surges are actual windows, and both models see them coming
    assert wide.loc["n_actual"].min() >= 2
    assert (wide.loc["recall"] >= 0.5).all()
    assert res.failures.empty
    assert not math.isnan(float(wide.at["mase", "GlobalHistGradientBoosting"]))  # type: ignore[arg-type]


CHICAGO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "chicago_311"


@pytest.mark.shared_data
@pytest.mark.skipif(not CHICAGO.exists(), reason=f"real data not found at {CHICAGO}")
def test_seasonal_naive_on_chicago_311() -> None:
    """Real, messy data end to end: per-nature series, train 2011-2013, evaluate 2014."""
    files = sorted(CHICAGO.glob("chicago_311_sanitation_code_complaints_*.csv"))
    raw = pd.concat([pd.read_csv(f, usecols=["created_date", "violation_nature"], dtype=str)
                     for f in files], ignore_index=True)
    df = pd.DataFrame({"unique_id": raw["violation_nature"].fillna("blank"),
                       "ds": pd.to_datetime(raw["created_date"]), "y": 1.0})
    df = df.groupby(["unique_id", "ds"], as_index=False).agg(y=("y", "sum"))
    res = backtest(df, {"sn": SeasonalNaive(n_samples=100)}, origins=[T("2013-12-31")],
                   horizon_weeks=52)
    s = _metrics(res)
    assert res.failures.empty
    assert 0.5 < s["mase"] < 2.0 and 0.5 < s["coverage"] < 1.0
    assert s["n_actual"] >= 10 and 0.0 < s["recall"] <= 1.0
    assert s["median_lead_days"] >= 14
