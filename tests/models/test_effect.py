"""Campaign effect: counterfactual and difference-in-differences estimates, refit helpers,
and a validation on synthetic panels with a planted effect (``bench/effect.py`` runs many
more replications)."""

from __future__ import annotations

from functools import cache
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.baselines import SeasonalNaive
from models.effect import (
    HOLIDAY_COLUMNS,
    DidEstimate,
    EffectEstimate,
    campaign_effect,
    campaign_holidays,
    counterfactual_frame,
    did_effect,
    dispersion_factor,
    mask_campaign_windows,
    simulate_campaign_panel,
    window_weeks,
)

WEEKS = pd.date_range("2025-03-03", periods=3, freq="7D")  # Mondays


def _paths(rows: list[list[float]], weeks: pd.DatetimeIndex = WEEKS) -> pd.DataFrame:
    return pd.DataFrame(rows, index=weeks)


# --------------------------------------------------------------------------- counterfactual
def test_campaign_effect_matches_hand_computation() -> None:
    # 4 paths over 3 weeks: path totals 30, 45, 60, 90 (mean 56.25)
    paths = _paths([[10, 15, 20, 30], [10, 15, 20, 30], [10, 15, 20, 30]])
    actual = pd.Series([12.0, 13.0, 15.0, 99.0],
                       index=[*WEEKS, WEEKS[-1] + pd.Timedelta(days=7)])  # last week ignored
    est = campaign_effect(actual, paths, window_start="2025-03-03", window_end="2025-03-23")
    assert isinstance(est, EffectEstimate)
    assert est.actual == 40.0 and est.n_weeks == 3 and est.n_samples == 4
    assert est.counterfactual == pytest.approx(56.25)
    assert est.counterfactual_median == pytest.approx(52.5)
    assert est.effect == pytest.approx(40 - 56.25)
    assert est.relative_effect == pytest.approx((40 - 56.25) / 56.25)
    diffs = 40.0 - np.array([30.0, 45.0, 60.0, 90.0])
    assert est.effect_lower_80 == pytest.approx(np.quantile(diffs, 0.1))
    assert est.effect_upper_95 == pytest.approx(np.quantile(diffs, 0.975))
    assert est.relative_lower_95 == pytest.approx(np.quantile(diffs, 0.025) / 56.25)
    assert est.p_reduced == 0.75  # paths 45, 60, 90 exceed 40
    assert not est.significant  # upper 95 % bound is +9.25
    assert est.window_start == WEEKS[0] and est.window_end == pd.Timestamp("2025-03-23")
    frame = est.to_frame()
    assert len(frame) == 1 and frame.loc[0, "effect"] == pytest.approx(est.effect)


def test_campaign_effect_significant_reduction() -> None:
    rng = np.random.default_rng(0)
    paths = _paths(rng.poisson(100, size=(3, 500)).astype(float).tolist())
    actual = pd.Series([70.0, 70.0, 70.0], index=WEEKS)
    est = campaign_effect(actual, paths, window_start=WEEKS[0], window_end=WEEKS[-1])
    assert est.significant and est.effect_upper_95 < 0 and est.p_reduced == 1.0
    assert est.relative_effect == pytest.approx(-0.3, abs=0.01)


def test_campaign_effect_accepts_stored_and_forecast_layouts() -> None:
    rows = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]
    plain = campaign_effect(pd.Series([3.0, 3.0, 3.0], index=WEEKS), _paths(rows),
                            window_start=WEEKS[0], window_end=WEEKS[-1])
    # ForecastOutput.weekly_samples: index (unique_id, week)
    multi = _paths(rows)
    multi.index = pd.MultiIndex.from_arrays([["s"] * 3, WEEKS], names=["unique_id", "week"])
    # the service's stored rows: week + list of path sums; actual as a long frame
    stored = pd.DataFrame({"unique_id": "s", "week": WEEKS, "samples": rows})
    actual = pd.DataFrame({"unique_id": "s", "week": WEEKS, "y": [3.0, 3.0, 3.0]})
    for cf in (multi, stored):
        other = campaign_effect(actual, cf, window_start=WEEKS[0], window_end=WEEKS[-1])
        assert other == plain
    assert counterfactual_frame(stored).shape == (3, 3)


def test_campaign_effect_names_missing_weeks() -> None:
    paths = _paths([[10.0, 12.0]] * 3)
    actual = pd.Series([5.0, np.nan], index=WEEKS[:2])
    with pytest.raises(ValueError, match=r"actual counts missing .*2025-03-10, 2025-03-17"):
        campaign_effect(actual, paths, window_start=WEEKS[0], window_end=WEEKS[-1])
    partial = campaign_effect(actual, paths, window_start=WEEKS[0], window_end=WEEKS[-1],
                              allow_partial=True)
    assert partial.n_weeks == 1 and partial.actual == 5.0
    assert partial.weeks_missing == (WEEKS[1], WEEKS[2])
    assert partial.counterfactual == pytest.approx(11.0)
    with pytest.raises(ValueError, match=r"counterfactual samples missing .*2025-03-24"):
        campaign_effect(actual, paths, window_start=WEEKS[0], window_end="2025-03-30",
                        allow_partial=True)
    with pytest.raises(ValueError, match="no actual counts"):
        campaign_effect(pd.Series(dtype=float), paths, window_start=WEEKS[0],
                        window_end=WEEKS[-1], allow_partial=True)


def test_campaign_effect_rejects_bad_inputs() -> None:
    paths = _paths([[1.0, 2.0]] * 3)
    actual = pd.Series([1.0, 1.0, 1.0], index=WEEKS)
    with pytest.raises(ValueError, match="Monday"):
        campaign_effect(pd.Series([1.0], index=[pd.Timestamp("2025-03-04")]), paths,
                        window_start=WEEKS[0], window_end=WEEKS[0])
    with pytest.raises(ValueError, match="before its start"):
        campaign_effect(actual, paths, window_start=WEEKS[2], window_end=WEEKS[0])
    with pytest.raises(ValueError, match="differ in length"):
        counterfactual_frame(pd.DataFrame({"week": WEEKS[:2], "samples": [[1.0], [1.0, 2.0]]}))
    with pytest.raises(ValueError, match="finite and >= 0"):
        counterfactual_frame(_paths([[1.0, -2.0]] * 3))
    two = pd.DataFrame({"unique_id": ["a", "b"], "week": WEEKS[:2], "y": [1.0, 1.0]})
    with pytest.raises(ValueError, match="2 series"):
        campaign_effect(two, paths, window_start=WEEKS[0], window_end=WEEKS[0])


def test_dispersion_widens_the_paths_and_factor_recalibrates() -> None:
    rng = np.random.default_rng(1)
    weeks = WEEKS[:1]
    narrow = _paths([rng.normal(100, 5, 1000).clip(0).tolist()], weeks)  # claims sd 5
    actual = pd.Series([88.0], index=weeks)
    plain = campaign_effect(actual, narrow, window_start=weeks[0], window_end=weeks[0])
    assert plain.significant and plain.dispersion == 1.0
    # past windows without a campaign missed by ~15 (true sd 15, three times the claimed)
    past = [campaign_effect(pd.Series([100.0 + d], index=weeks), narrow,
                            window_start=weeks[0], window_end=weeks[0])
            for d in (-15.0, 15.0, -15.0, 15.0)]
    k = dispersion_factor(past)
    assert k == pytest.approx(15.0 / plain.counterfactual_sd, rel=1e-3)
    wide = campaign_effect(actual, narrow, window_start=weeks[0], window_end=weeks[0],
                           dispersion=k)
    assert wide.counterfactual == pytest.approx(plain.counterfactual)
    assert wide.counterfactual_sd == pytest.approx(15.0, rel=1e-3)
    assert not wide.significant and 0.5 < wide.p_reduced < plain.p_reduced
    assert dispersion_factor(past[:0] + [plain], floor=1.0) >= 1.0
    with pytest.raises(ValueError, match="no past window"):
        dispersion_factor([])
    with pytest.raises(ValueError, match="dispersion must be > 0"):
        campaign_effect(actual, narrow, window_start=weeks[0], window_end=weeks[0],
                        dispersion=0.0)


def test_window_weeks_widens_to_whole_iso_weeks() -> None:
    assert list(window_weeks("2025-03-05", "2025-03-18")) == [WEEKS[0], WEEKS[1], WEEKS[2]]
    assert list(window_weeks("2025-03-03", "2025-03-09")) == [WEEKS[0]]


def test_campaign_effect_from_a_frozen_seasonal_naive_forecast() -> None:
    """Plumbing: ForecastOutput.weekly_samples of a real forecaster goes straight in."""
    sim = simulate_campaign_panel(seed=3)
    cutoff = sim.window_start - pd.Timedelta(days=22)  # approved ~3 weeks ahead
    hist = sim.daily[(sim.daily["unique_id"] == sim.treated) & (sim.daily["ds"] <= cutoff)]
    out = SeasonalNaive(n_samples=300, random_state=0).fit(hist).predict(
        (sim.window_end - cutoff).days)
    weekly = sim.weekly()
    est = campaign_effect(weekly[weekly["unique_id"] == sim.treated], out.weekly_samples,
                          window_start=sim.window_start, window_end=sim.window_end)
    assert est.n_samples == 300 and est.n_weeks == 4
    assert est.effect_lower_95 <= est.effect_lower_80 <= est.effect_upper_80 \
        <= est.effect_upper_95


# --------------------------------------------------------------------------- DiD
@cache
def _sim(seed: int, effect: float
         ) -> tuple[pd.DataFrame, str, tuple[pd.Timestamp, pd.Timestamp]]:
    sim = simulate_campaign_panel(seed=seed, effect=effect)
    return sim.weekly(), sim.treated, (sim.window_start, sim.window_end)


def test_did_picks_similar_controls_and_recovers_the_effect() -> None:
    sim = simulate_campaign_panel(seed=5, effect=-0.3)
    est = did_effect(sim.weekly(), sim.treated, (sim.window_start, sim.window_end))
    assert isinstance(est, DidEstimate) and est.status == "ok" and est.reason is None
    assert set(est.controls) <= set(sim.controls) and len(est.controls) == 5
    assert all(est.similarity[u] < 0.5 for u in sim.unlike)
    assert est.n_placebos == 104 - 26 - 4 + 1
    assert est.relative_lower_95 < est.relative_lower_80 < est.relative_effect \
        < est.relative_upper_80 < est.relative_upper_95
    assert est.effect_lower_95 < est.effect < est.effect_upper_95
    assert est.actual - est.counterfactual == pytest.approx(est.effect)
    assert est.relative_effect == pytest.approx(np.expm1(est.log_effect))
    assert est.relative_lower_95 < -0.3 < est.relative_upper_95
    assert 0.0 <= est.p_reduced <= 1.0 and est.to_dict()["controls"] == list(est.controls)


def test_did_interval_uses_t_quantiles_on_the_non_overlapping_placebo_windows() -> None:
    """75 placebo windows of 4 weeks hold 18 non-overlapping ones: t(18), not the normal."""
    weekly, treated, window = _sim(5, -0.3)
    est = did_effect(weekly, treated, window)
    assert est.n_placebos == 75 and est.df == 75 // 4 == 18
    half95 = np.log1p(est.relative_upper_95) - est.log_effect
    half80 = est.log_effect - np.log1p(est.relative_lower_80)
    assert half95 == pytest.approx(stats.t.ppf(0.975, 18) * est.placebo_rmse, rel=1e-9)
    assert half80 == pytest.approx(stats.t.ppf(0.9, 18) * est.placebo_rmse, rel=1e-9)
    assert half95 > 1.001 * NormalDist().inv_cdf(0.975) * est.placebo_rmse  # wider than z
    assert est.p_reduced == pytest.approx(stats.t.cdf(-est.log_effect / est.placebo_rmse, 18))
    assert est.to_dict()["df"] == 18.0
    # fewer placebo windows (last year's excluded): fewer degrees of freedom, a larger quantile
    last_year = (window[0] - pd.Timedelta(weeks=52), window[1] - pd.Timedelta(weeks=52))
    fewer = did_effect(weekly, treated, window, exclude_windows=[last_year])
    assert fewer.df == (75 - 33) // 4 == 10
    half = np.log1p(fewer.relative_upper_95) - fewer.log_effect
    assert half == pytest.approx(stats.t.ppf(0.975, 10) * fewer.placebo_rmse, rel=1e-9)
    # no interval, no degrees of freedom
    short = weekly[weekly["week"] >= window[0] - pd.Timedelta(weeks=40)]
    assert np.isnan(did_effect(short, treated, window, min_similarity=0.0).df)


def test_did_says_when_no_fair_control_exists() -> None:
    sim = simulate_campaign_panel(seed=5)
    window = (sim.window_start, sim.window_end)
    weekly = sim.weekly()
    # only the regions whose season peaks in autumn
    est = did_effect(weekly, sim.treated, window, controls=sim.unlike)
    assert est.status == "no_fair_control" and not est.significant
    assert est.reason is not None and "0 candidate(s) reach similarity" in est.reason
    assert np.isnan(est.effect) and est.controls == ()
    # a single good candidate is too few
    est = did_effect(weekly, sim.treated, window, controls=sim.controls[:1])
    assert est.status == "no_fair_control" and "need 2" in str(est.reason)
    # a candidate with a hole in its history is excluded, with the reason
    holed = weekly[~((weekly["unique_id"] == sim.controls[0])
                     & (weekly["week"] == sim.window_start - pd.Timedelta(weeks=3)))]
    est = did_effect(holed, sim.treated, window, controls=[*sim.controls[:2], "nowhere"])
    assert est.excluded == {sim.controls[0]: "1 of 108 matching/window weeks missing",
                            "nowhere": "not in the panel"}
    assert est.status == "no_fair_control"


def test_did_short_history_gives_no_interval_and_bad_treated_raises() -> None:
    sim = simulate_campaign_panel(seed=5)
    window = (sim.window_start, sim.window_end)
    weekly = sim.weekly()
    recent = weekly[weekly["week"] >= sim.window_start - pd.Timedelta(weeks=40)]
    est = did_effect(recent, sim.treated, window, min_similarity=0.0)
    assert est.status == "no_interval" and est.n_placebos == 40 - 26 - 4 + 1
    assert "min_placebos" in str(est.reason) and np.isfinite(est.relative_effect)
    assert np.isnan(est.relative_lower_95)
    too_short = weekly[weekly["week"] >= sim.window_start - pd.Timedelta(weeks=10)]
    with pytest.raises(ValueError, match="has 10 complete weeks before the window"):
        did_effect(too_short, sim.treated, window)
    no_window = weekly[weekly["week"] < sim.window_start + pd.Timedelta(weeks=2)]
    with pytest.raises(ValueError, match="lacks counts for window weeks"):
        did_effect(no_window, sim.treated, window)
    with pytest.raises(ValueError, match="not in the panel"):
        did_effect(weekly, "missing", window)


def test_did_skips_placebo_windows_that_overlap_other_campaigns() -> None:
    weekly, treated, window = _sim(5, -0.3)
    last_year = (window[0] - pd.Timedelta(weeks=52), window[1] - pd.Timedelta(weeks=52))
    full = did_effect(weekly, treated, window)
    fewer = did_effect(weekly, treated, window, exclude_windows=[last_year])
    assert fewer.n_placebos == full.n_placebos - (4 + 26 + 4 - 1)
    assert fewer.log_effect == full.log_effect


# --------------------------------------------------------------------------- refit helpers
CAMPAIGNS = pd.DataFrame({"unique_id": ["a", "a", "b"],
                          "start": ["2025-03-03", "2025-03-05", "2025-06-02"],
                          "end": ["2025-03-04", "2025-03-06", "2025-06-02"]})


def test_campaign_holidays_rows() -> None:
    h = campaign_holidays(CAMPAIGNS, post_days=1)
    assert list(h.columns) == HOLIDAY_COLUMNS
    a = h[h["unique_id"] == "a"]
    assert a["ds"].dt.strftime("%m-%d").tolist() == ["03-03", "03-04", "03-05", "03-06", "03-07"]
    assert h[h["unique_id"] == "b"]["ds"].dt.strftime("%m-%d").tolist() == ["06-02", "06-03"]
    assert set(h["holiday"]) == {"campaign"} and (h[["lower_window", "upper_window"]] == 0).all(
        axis=None)
    with pytest.raises(ValueError, match="end before"):
        campaign_holidays(pd.DataFrame({"unique_id": ["a"], "start": ["2025-03-05"],
                                        "end": ["2025-03-01"]}))


def test_mask_campaign_windows_only_masks_each_series_window() -> None:
    ds = pd.date_range("2025-03-01", "2025-03-08")
    df = pd.DataFrame({"unique_id": np.repeat(["a", "c"], len(ds)), "ds": np.tile(ds, 2),
                       "y": 1})
    out = mask_campaign_windows(df, CAMPAIGNS)
    masked = out[out["y"].isna()]
    assert masked["unique_id"].unique().tolist() == ["a"]
    assert masked["ds"].dt.day.tolist() == [3, 4, 5, 6]
    assert df["y"].notna().all() and len(out) == len(df)


@pytest.mark.slow
def test_masked_refit_does_not_learn_the_campaign_dip() -> None:
    """A campaign halved last spring's peak; the masked refit still forecasts the full peak."""
    from models.forecast import ProphetForecaster

    rng = np.random.default_rng(0)
    ds = pd.date_range("2023-01-02", "2025-12-28", freq="D")
    doy = ds.day_of_year.to_numpy(dtype=float)
    y = rng.poisson(10 * (1 + 1.5 * np.exp(-0.5 * ((doy - 100) / 12) ** 2))).astype(float)
    campaigns = pd.DataFrame({"unique_id": ["s", "s"],
                              "start": pd.to_datetime(["2024-03-25", "2025-03-24"]),
                              "end": pd.to_datetime(["2024-04-21", "2025-04-20"])})
    in_campaign = np.zeros(len(ds), dtype=bool)
    for start, end in zip(campaigns["start"], campaigns["end"], strict=True):
        in_campaign |= np.asarray((ds >= start) & (ds <= end))
    y[in_campaign] = rng.binomial(y[in_campaign].astype(np.int64), 0.4)
    df = pd.DataFrame({"unique_id": "s", "ds": ds, "y": y})
    peak = window_weeks("2026-03-23", "2026-04-19")
    true_total = float((10 * (1 + 1.5 * np.exp(-0.5 * ((pd.date_range(
        "2026-03-23", "2026-04-19").day_of_year.to_numpy(dtype=float) - 100) / 12) ** 2))).sum())
    totals = {}
    for name, frame in (("raw", df), ("masked", mask_campaign_windows(df, campaigns))):
        out = ProphetForecaster(calendar="none", seed=1).fit(frame).predict(120)
        totals[name] = float(out.weekly_samples.droplevel(0).loc[peak].mean(axis=1).sum())
    assert totals["raw"] < 0.8 * true_total  # the dip was learnt as seasonality
    assert abs(totals["masked"] / true_total - 1) < 0.15


# --------------------------------------------------------------------------- validation
REPS = 60


def _replicate(effect: float, seed: int) -> dict[str, float]:
    sim = simulate_campaign_panel(seed=seed, effect=effect)
    weekly, untreated = sim.weekly(), sim.weekly(untreated=True)
    window = window_weeks(sim.window_start, sim.window_end)
    actual = weekly[weekly["unique_id"] == sim.treated].set_index("week")["y"]
    y0 = untreated[untreated["unique_id"] == sim.treated].set_index("week")["y"]
    realised = float(actual.loc[window].sum() - y0.loc[window].sum())
    cf = campaign_effect(actual, sim.oracle_paths(400, seed=seed),
                         window_start=sim.window_start, window_end=sim.window_end)
    did = did_effect(weekly, sim.treated, (sim.window_start, sim.window_end))
    return {
        "cf_cov80": cf.effect_lower_80 <= realised <= cf.effect_upper_80,
        "cf_cov95": cf.effect_lower_95 <= realised <= cf.effect_upper_95,
        "cf_sig": cf.significant,
        "cf_bias": cf.relative_effect - effect,
        "did_ok": did.status == "ok",
        "did_cov80": did.relative_lower_80 <= effect <= did.relative_upper_80,
        "did_cov95": did.relative_lower_95 <= effect <= did.relative_upper_95,
        "did_sig": did.significant,
        "did_bias": did.relative_effect - effect,
    }


@pytest.fixture(scope="module")
def replications() -> dict[float, pd.DataFrame]:
    return {effect: pd.DataFrame([_replicate(effect, 100 + i) for i in range(REPS)])
            for effect in (0.0, -0.3)}


@pytest.mark.parametrize("effect", [0.0, -0.3])
@pytest.mark.parametrize("estimator", ["cf", "did"])
def test_intervals_cover_the_planted_effect(
    replications: dict[float, pd.DataFrame], effect: float, estimator: str
) -> None:
    """Counterfactual: the interval covers the realised effect (treated minus untreated
    count) with oracle sample paths; DiD: it covers the planted relative effect."""
    r = replications[effect]
    assert r["did_ok"].mean() >= 0.9
    assert r[f"{estimator}_cov80"].mean() >= 0.65  # nominal 0.80, 60 replications
    assert r[f"{estimator}_cov95"].mean() >= 0.85  # nominal 0.95
    assert abs(r[f"{estimator}_bias"].mean()) < 0.05


@pytest.mark.parametrize("estimator", ["cf", "did"])
def test_null_effect_is_rarely_significant_and_the_real_one_is_often(
    replications: dict[float, pd.DataFrame], estimator: str
) -> None:
    false_positive = replications[0.0][f"{estimator}_sig"].mean()
    power = replications[-0.3][f"{estimator}_sig"].mean()
    assert false_positive <= 0.125  # nominal 0.05; slack for 60 replications
    assert power >= 0.35 and power > 2 * false_positive
