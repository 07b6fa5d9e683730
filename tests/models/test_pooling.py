"""Pooled effects (random-effects meta-analysis), minimum detectable effect, campaigns needed,
and the pooled recovery of a planted effect on simulated category panels
(``bench/effect.py --pooled`` runs many more replications)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.effect import campaign_effect, did_effect
from models.effect_sim import simulate_category_campaigns
from models.pooling import (
    POOL_COLUMNS,
    campaigns_needed,
    effect_rows,
    minimum_detectable_effect,
    pool,
    pool_effects,
)
from models.pooling_correlation import (
    clustered_mean_variance,
    did_correlation,
    error_correlation,
    group_correlation,
    shared_covariance,
)

Y = np.array([-0.3, -0.05, -0.6, 0.1, -0.45, -0.2])
V = np.array([0.01, 0.02, 0.015, 0.02, 0.01, 0.03])


def test_pool_matches_reference_dl_hksj() -> None:
    """Reference: statsmodels 0.15 ``combine_effects(Y, V, method_re="chi2")``, row
    "random effect wls" (the HKSJ variance) with a t interval on k-1 df."""
    p = pool(Y, np.sqrt(V))
    assert p.k == 6 and p.method == "DL+HKSJ" and p.df == 5
    assert p.log_effect == pytest.approx(-0.26278245061606387)
    assert p.se == pytest.approx(0.10478066045834586)
    assert p.tau2 == pytest.approx(0.045445278969957086)
    assert p.i2 == pytest.approx(0.7462778609814114)
    assert p.q == pytest.approx(19.706597222222225)
    assert np.log1p(p.relative_lower_95) == pytest.approx(-0.5321297131162639)
    assert np.log1p(p.relative_upper_95) == pytest.approx(0.006564811884136212)
    assert not p.significant and p.p_value == pytest.approx(
        2 * stats.t.sf(abs(p.log_effect / p.se), 5))
    assert sum(p.weights) == pytest.approx(1.0) and len(p.weights) == 6
    assert p.p_heterogeneity == pytest.approx(stats.chi2.sf(p.q, 5))


def test_pool_of_agreeing_estimates_is_never_narrower_than_fixed_effect() -> None:
    y = np.array([-0.2, -0.2001, -0.1999, -0.2])
    se = np.full(4, 0.1)
    p = pool(y, se)
    assert p.tau2 == 0 and p.i2 == 0
    assert p.se == pytest.approx(0.1 / 2)  # HKSJ scale truncated at 1: the FE error
    assert p.relative_effect == pytest.approx(np.expm1(-0.2), abs=1e-4)


def test_single_estimate_passes_through_with_normal_or_t_interval() -> None:
    p = pool([-0.3], [0.1])
    assert p.k == 1 and p.method == "single" and np.isnan(p.tau2)
    assert np.log1p(p.relative_upper_95) == pytest.approx(-0.3 + 1.959964 * 0.1, abs=1e-5)
    t = pool([-0.3], [0.1], df=[4])
    assert np.log1p(t.relative_upper_95) == pytest.approx(-0.3 + stats.t.ppf(0.975, 4) * 0.1)


def test_pool_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="nothing to pool"):
        pool([], [])
    with pytest.raises(ValueError, match="positive finite se"):
        pool([0.1, 0.2], [0.1, 0.0])
    with pytest.raises(ValueError, match="same length"):
        pool([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="2 x 2"):
        pool([0.1, 0.2], [0.1, 0.1], correlation=np.eye(3))


def test_correlated_errors_widen_the_pooled_interval() -> None:
    y = np.array([-0.2, -0.25, -0.22, -0.3, -0.1, -0.15])
    se = np.full(6, 0.15)
    free = pool(y, se)
    corr = pool(y, se, correlation=group_correlation([1, 1, 1, 2, 2, 2], 0.5))
    assert corr.log_effect == pytest.approx(free.log_effect)
    # design effect 1 + (3 - 1) * 0.5 = 2 on the variance, k_eff = 3
    assert corr.se == pytest.approx(np.sqrt(2) * 0.15 / np.sqrt(6))
    assert corr.df == pytest.approx(2.0)
    assert corr.relative_upper_95 > free.relative_upper_95


def test_a_shared_error_does_not_average_away() -> None:
    """A bias correction estimated once and applied to every campaign of a category: its
    variance stays in the pooled estimate however many campaigns are pooled."""
    y = np.full(40, -0.1)
    se = np.full(40, 0.3)
    free = pool(y, se)
    shared = shared_covariance(["a"] * 40, np.full(40, 0.04))
    assert shared.shape == (40, 40) and (shared == 0.04).all()
    with_shared = pool(y, se, shared=shared)
    # (0.09 / 40 + 0.04): the shared variance dominates; about two effective campaigns
    assert with_shared.se == pytest.approx(np.sqrt(0.09 / 40 + 0.04))
    assert with_shared.df == pytest.approx(40 / (1 + 40 * 0.04 / 0.09) - 1)
    assert free.se == pytest.approx(0.3 / np.sqrt(40))
    # estimates of two categories share only within their own
    blocks = shared_covariance(["a", "a", "b"], [0.04, 0.04, 0.01])
    assert blocks.tolist() == [[0.04, 0.04, 0.0], [0.04, 0.04, 0.0], [0.0, 0.0, 0.01]]
    with pytest.raises(ValueError, match="shared"):
        pool(y, se, shared=np.zeros((3, 3)))


def test_clustered_mean_variance_sees_errors_shared_within_groups() -> None:
    rng = np.random.default_rng(3)
    # independent values: about var / n
    x = rng.normal(0, 1, 400)
    groups = np.repeat(np.arange(100), 4)
    assert clustered_mean_variance(x, groups) == pytest.approx(1 / 400, rel=0.3)
    # a shared error per group of 10 (sd 0.5 against 0.1 within): about 0.25 / 20 groups,
    # twenty times what 200 independent values would give
    g = np.repeat(np.arange(20), 10)
    shared = np.repeat(rng.normal(0, 0.5, 20), 10) + rng.normal(0, 0.1, 200)
    v = clustered_mean_variance(shared, g)
    assert 0.25 / 20 * 0.4 < v < 0.25 / 20 * 2.0
    assert v > 5 * np.var(shared) / 200
    assert np.isnan(clustered_mean_variance([1.0, 2.0], ["a", "a"]))


def test_mde_and_campaigns_needed() -> None:
    assert minimum_detectable_effect(0.1) == pytest.approx(
        np.expm1(-(1.959964 + 0.841621) * 0.1), abs=1e-5)
    assert minimum_detectable_effect(0.1, df=5) < minimum_detectable_effect(0.1)
    assert np.isnan(minimum_detectable_effect(float("nan")))
    n = campaigns_needed(0.04)
    assert n is not None
    target = -np.log(0.8)

    def reach(k: int) -> float:
        return float((stats.t.ppf(0.975, k - 1) + stats.t.ppf(0.8, k - 1)) * np.sqrt(0.04 / k))

    assert reach(n) <= target < reach(n - 1)
    with_tau = campaigns_needed(0.04, tau2=0.02)
    assert with_tau is not None and with_tau > n
    assert campaigns_needed(float("nan")) is None
    assert campaigns_needed(100.0, max_campaigns=50) is None


def test_effect_rows_maps_counterfactual_bounds_exactly_onto_the_log_scale() -> None:
    weeks = pd.date_range("2025-03-03", periods=2, freq="7D")
    paths = pd.DataFrame(np.array([[10, 12, 14, 16, 18, 20, 22, 24, 26, 28]] * 2,
                                  dtype=float), index=weeks)
    actual = pd.Series([10.0, 12.0], index=weeks)
    est = campaign_effect(actual, paths, window_start=weeks[0], window_end=weeks[-1] +
                          pd.Timedelta(days=6))
    rows = effect_rows(est.to_frame(), method="counterfactual")
    totals = paths.sum(axis=0).to_numpy()
    q_lo, q_hi = np.quantile(totals, [0.025, 0.975])
    la = np.log(22.5)
    width = (la - np.log(q_lo + 0.5)) - (la - np.log(q_hi + 0.5))
    assert rows["se"].iloc[0] == pytest.approx(width / (2 * 1.959964), rel=1e-5)
    assert rows["log_effect"].iloc[0] == pytest.approx(la - np.log(np.median(totals) + 0.5))
    assert rows["mde"].iloc[0] < 0
    with pytest.raises(ValueError, match="lack columns"):
        effect_rows(pd.DataFrame({"actual": [1.0]}), method="counterfactual")
    with pytest.raises(ValueError, match="method must be"):
        effect_rows(pd.DataFrame(), method="bogus")  # type: ignore[arg-type]


def test_effect_rows_did_keeps_ok_rows_and_pool_effects_groups() -> None:
    f = pd.DataFrame({"status": ["ok", "ok", "no_fair_control", "ok"],
                      "log_effect": [-0.3, -0.2, np.nan, -0.4],
                      "placebo_rmse": [0.1, 0.12, np.nan, 0.1],
                      "category": ["a", "a", "a", "b"]})
    rows = effect_rows(f, method="did")
    assert list(rows.index) == [0, 1, 3] and list(rows["se"]) == [0.1, 0.12, 0.1]
    out = pool_effects(rows, "category")
    assert list(out.columns) == ["category", *POOL_COLUMNS]
    assert list(out["category"]) == ["a", "b"] and list(out["k"]) == [2, 1]
    assert out.loc[0, "relative_effect"] == pytest.approx(np.expm1(pool(
        [-0.3, -0.2], [0.1, 0.12]).log_effect))
    assert len(pool_effects(rows, "category", min_k=2)) == 1
    assert pool_effects(rows)["k"].tolist() == [3]


def test_error_correlation_recovers_a_shared_component() -> None:
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(60), 6)
    z = rng.normal(0, np.sqrt(0.4), 60)[groups] + rng.normal(0, np.sqrt(0.6), groups.size)
    assert error_correlation(z, groups) == pytest.approx(0.4, abs=0.1)
    assert error_correlation(rng.normal(size=30), np.arange(30)) == 0.0  # singletons


def test_did_correlation_from_shared_controls() -> None:
    w = ("2025-03-03", "2025-03-30")
    r = did_correlation([["a", "b"], ["a", "b"], ["c"], ["a", "b"]],
                        [w, w, w, ("2026-03-02", "2026-03-29")])
    assert r[0, 1] == pytest.approx((2 / 4) / 1.5)
    assert r[0, 2] == 0 and r[0, 3] == 0  # no shared control; windows do not overlap
    assert np.allclose(np.diag(r), 1.0)


# --------------------------------------------------------------------------- validation
def _pooled_did(seed: int, effect: float) -> tuple[bool, bool]:
    """(significant, recovered) of the pooled DiD over the treated campaigns of one panel."""
    sim = simulate_category_campaigns(seed=seed, effect=effect)
    weekly = sim.weekly()
    rows = []
    for c in sim.campaigns[sim.campaigns["treated"]].itertuples():
        controls = sim.campaigns[(sim.campaigns["year"] == c.year)
                                 & ~sim.campaigns["treated"]]["unique_id"].tolist()
        rows.append(did_effect(weekly, str(c.unique_id), (c.window_start, c.window_end),
                               controls=controls).to_dict())
    r = effect_rows(pd.DataFrame(rows), method="did")
    res = pool(r["log_effect"], r["se"], correlation=did_correlation(
        r["controls"].tolist(), list(zip(r["window_start"], r["window_end"], strict=True))))
    return res.significant, res.significant and (
        res.relative_lower_95 <= effect <= res.relative_upper_95)


@pytest.mark.slow
def test_pooled_did_recovers_a_planted_effect_and_keeps_its_level() -> None:
    """12 campaigns of one category over two seasons (6 controls each season); the
    counterfactual side and many more replications are in ``bench/effect.py --pooled``."""
    reps = 8
    planted = [_pooled_did(300 + i, -0.3) for i in range(reps)]
    null = [_pooled_did(300 + i, 0.0) for i in range(reps)]
    assert np.mean([rec for _, rec in planted]) >= 0.75
    assert np.mean([sig for sig, _ in null]) <= 0.25
