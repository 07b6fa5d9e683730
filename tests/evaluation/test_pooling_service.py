"""service.evaluation.pooling: campaign-level report frames in, pooled results out (no database)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.effect_sim import simulate_stepped_wedge
from models.pooling import effect_rows, minimum_detectable_effect, pool
from models.pooling_correlation import did_correlation
from models.series import SeriesId
from models.stepped_wedge import design_effect
from service.evaluation.pooling import (
    annotate_effect,
    attach_pooled,
    calibration_variance,
    design_frame,
    estimate_frame,
    placebo_correlation,
    pooled_groups,
)

DEPTS = {"fireworks": "公共安全", "food_safety": None}
LEVELS = {"150100": "league", "150200": "league", "150102": "county"}


def _report(cid: str, category: str, region: str, *, start: str, rel: float,
            did_rel: float | None, calibrated: bool = True,
            evaluation: str = "complete") -> dict[str, Any]:
    cf_total = 100.0
    actual = cf_total * (1 + rel)
    cf = {"actual": actual, "counterfactual": cf_total, "counterfactual_median": cf_total,
          "effect_lower_95": actual - 130.0, "effect_upper_95": actual - 75.0,
          "calibrated": calibrated}
    did = ({"status": "ok", "log_effect": float(np.log1p(did_rel)), "placebo_rmse": 0.1,
            "controls": ["complaints|fireworks|152900"]}
           if did_rel is not None else {"status": "no_fair_control"})
    s = dt.date.fromisoformat(start)
    return {"campaign_id": cid, "category": category, "region": region,
            "window_start": s, "window_end": s + dt.timedelta(days=27),
            "evaluation": evaluation, "counterfactual": cf, "did": did, "reason": None}


REPORTS = [
    _report("a", "fireworks", "150100", start="2025-01-06", rel=-0.3, did_rel=-0.25),
    _report("b", "fireworks", "150200", start="2025-01-13", rel=-0.2, did_rel=-0.35),
    _report("c", "fireworks", "150102", start="2024-01-08", rel=-0.1, did_rel=None,
            calibrated=False),
    _report("d", "food_safety", "150100", start="2025-06-02", rel=0.05, did_rel=0.0),
    _report("e", "food_safety", "150200", start="2025-06-02", rel=0.0, did_rel=None,
            evaluation="interim"),
]


def test_estimate_frame_keeps_complete_windows_and_trusted_estimates() -> None:
    f = estimate_frame(REPORTS, departments=DEPTS, region_levels=LEVELS)
    assert list(f["campaign_id"]) == ["a", "b", "c", "d"]  # e is interim
    assert f["cf_actual"].isna().tolist() == [False, False, True, False]  # c: uncalibrated
    assert list(f["department"]) == ["公共安全", "公共安全", "公共安全", "未指定"]
    assert list(f["region_level"]) == ["league", "league", "county", "league"]
    assert list(f["year"]) == [2025, 2025, 2024, 2025]
    seasons = dict(zip(f["campaign_id"], f["season"], strict=True))
    assert seasons["a"] == seasons["b"] != seasons["c"]


def test_pooled_groups_match_models_pool_and_give_contributions() -> None:
    f = estimate_frame(REPORTS, departments=DEPTS, region_levels=LEVELS)
    groups, contrib = pooled_groups(f, "category", rho=0.3)
    fw = groups["fireworks"]
    assert fw["headline"] == "did" and fw["randomised"] is None
    assert fw["counterfactual"]["k"] == 2 and fw["did"]["k"] == 2
    cf = effect_rows(f.iloc[:2].rename(columns=lambda c: c[3:] if c.startswith("cf_") else c)
                     .drop(columns=["did_log_effect", "did_placebo_rmse", "did_controls"]),
                     method="counterfactual")
    r = np.array([[1.0, 0.3], [0.3, 1.0]])  # same season
    expected = pool(cf["log_effect"], cf["se"], correlation=r)
    assert fw["counterfactual"]["relative_effect"] == pytest.approx(expected.relative_effect)
    assert fw["counterfactual"]["relative_upper_95"] == pytest.approx(
        expected.relative_upper_95)
    did = pool(np.log1p([-0.25, -0.35]), [0.1, 0.1], correlation=did_correlation(
        [["x"], ["x"]], [("2025-01-06", "2025-02-02"), ("2025-01-13", "2025-02-09")]))
    assert fw["did"]["relative_effect"] == pytest.approx(did.relative_effect)
    assert contrib["a"]["did"]["weight"] == pytest.approx(0.5)
    assert contrib["a"]["counterfactual"]["weight"] + contrib["b"]["counterfactual"][
        "weight"] == pytest.approx(1.0)
    assert "counterfactual" not in contrib.get("c", {})
    assert groups["food_safety"]["did"]["k"] == 1
    by_year, _ = pooled_groups(f, "year")
    assert set(by_year) == {"2025"}  # c has neither a calibrated cf nor a DiD ok
    assert all(v is None or np.isfinite(v) for v in fw["did"].values()
               if isinstance(v, float))


def test_did_degrees_of_freedom_reach_the_pooled_and_per_campaign_intervals() -> None:
    """A DiD's t interval (``df``) is kept by the frame: a group of one campaign and its
    contribution show the DiD's own t interval and MDE, not a normal one."""
    rep = _report("a", "fireworks", "150100", start="2025-01-06", rel=-0.3, did_rel=-0.25)
    rep["did"]["df"] = 5.0
    f = estimate_frame([rep], departments=DEPTS, region_levels=LEVELS)
    assert f["did_df"].tolist() == [5.0]
    groups, contrib = pooled_groups(f, "category", rho=0.0)
    y, t95 = float(np.log1p(-0.25)), float(stats.t.ppf(0.975, 5))
    did = groups["fireworks"]["did"]
    assert did["k"] == 1 and did["df"] == 5.0
    assert did["relative_upper_95"] == pytest.approx(np.expm1(y + t95 * 0.1))
    assert did["mde"] == pytest.approx(minimum_detectable_effect(0.1, df=5.0))
    assert did["mde"] < minimum_detectable_effect(0.1)  # wider than the normal one
    c = contrib["a"]["did"]
    assert c["relative_lower_95"] == pytest.approx(np.expm1(y - t95 * 0.1))
    assert c["relative_upper_95"] == pytest.approx(np.expm1(y + t95 * 0.1))
    single = annotate_effect({**rep, "did": dict(rep["did"])})
    assert single["did"]["mde"] == pytest.approx(minimum_detectable_effect(0.1, df=5.0))
    # reports stored before the DiD had a df: the normal scale, as before
    old = estimate_frame(REPORTS[:1], departments=DEPTS, region_levels=LEVELS)
    assert np.isnan(old["did_df"].iloc[0])
    _, contrib = pooled_groups(old, "category", rho=0.0)
    assert contrib["a"]["did"]["relative_upper_95"] == pytest.approx(
        np.expm1(y + 1.959964 * 0.1))


def test_attach_pooled_adds_blocks_to_a_scorecard() -> None:
    f = estimate_frame(REPORTS, departments=DEPTS, region_levels=LEVELS)
    result: dict[str, Any] = {
        "groups": [{"key": "fireworks"}, {"key": "gas_safety"}], "total": {"key": "total"},
        "campaigns": [{"campaign_id": "a"}, {"campaign_id": "e"}]}
    attach_pooled(result, f, group_by="category", pooled_by="department", rho=0.0,
                  design=None, labels={})
    assert result["groups"][0]["pooled"]["did"]["k"] == 2
    assert result["groups"][1]["pooled"] is None
    assert result["total"]["pooled"]["did"]["k"] == 3
    assert result["campaigns"][0]["contribution"]["did"]["weight"] > 0
    assert result["campaigns"][1]["contribution"] is None
    assert [g["key"] for g in result["pooled"]["groups"]] == ["公共安全", "未指定"]


def test_design_frame_estimates_a_randomised_wave() -> None:
    sim = simulate_stepped_wedge(seed=3, effect=-0.3)
    campaigns = []
    for unit, arm in zip(sim.assignment["unit"], sim.assignment["arm"], strict=True):
        parsed = SeriesId.parse(unit)
        cat, region = parsed.category, parsed.region
        send = sim.early_send if arm == "early" else sim.delayed_send
        campaigns.append(SimpleNamespace(
            id=f"c{region}", category=cat, region=region, send_date=send.date(),
            window_start=sim.window_start.date(),
            timing={"design": "stepped_wedge", "wave": "w1", "arm": arm, "seed": 1}))
    campaigns.append(SimpleNamespace(id="x", category="cat", region="999", timing={},
                                     send_date=sim.early_send.date(),
                                     window_start=sim.window_start.date()))
    d = design_frame(sim.weekly(), campaigns, signal="complaints", departments={},
                     region_levels={})
    assert len(d) == 1 and d.loc[0, "n_early"] == 4 and d.loc[0, "n_delayed"] == 4
    direct = design_effect(sim.weekly(), sim.assignment, early_send=sim.early_send,
                           delayed_send=sim.delayed_send)
    assert d.loc[0, "log_effect"] == pytest.approx(direct.log_effect)
    assert "x" not in list(d["campaign_ids"].iloc[0])
    groups, _ = pooled_groups(estimate_frame([], departments={}, region_levels={}), "category",
                              design=d)
    assert groups["cat"]["headline"] == "randomised"
    assert groups["cat"]["randomised"]["k"] == 1 and groups["cat"]["randomised"]["waves"] == 1


def test_placebo_correlation_sees_shared_season_errors() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for season in range(40):
        shared = rng.normal(0, 0.15)
        start = pd.Timestamp("2020-01-06") + pd.Timedelta(weeks=10 * season)
        for _region in range(5):
            cf = 100.0
            rows.append({"category": "c", "start": start, "counterfactual": cf,
                         "counterfactual_sd": 10.0,
                         "actual": cf * np.exp(shared + rng.normal(0, 0.1))})
    rho = placebo_correlation(pd.DataFrame(rows))
    assert 0.5 < rho < 0.8  # 0.15^2 / (0.15^2 + 0.1^2) = 0.69
    assert placebo_correlation(pd.DataFrame()) == 0.0


def test_calibration_variance_and_pooled_counterfactual_share_the_bias_error() -> None:
    """Seasons whose forecasts all miss the same way make the category's bias estimate
    uncertain; every calibrated campaign of the category shares that error, so its pooled
    counterfactual widens (a null category whose campaigns all read high is then no longer
    significant), while a DiD is untouched."""
    rng = np.random.default_rng(1)
    def window(category: str, region: int, season: int, error: float) -> dict[str, Any]:
        return {"category": category, "region": str(region), "counterfactual": 100.0,
                "start": pd.Timestamp("2020-01-06") + pd.Timedelta(weeks=20 * season),
                "counterfactual_sd": 10.0, "actual": 100.0 * np.exp(error)}

    miss = rng.normal(0, 0.3, 6)  # one miss per season of category c, in all its regions
    rows = [window("c", r, k, miss[k] + rng.normal(0, 0.05))
            for k in range(6) for r in range(4)]
    # a category whose forecasts miss independently
    rows += [window("d", 0, k, rng.normal(0, 0.05)) for k in range(8)]
    var = calibration_variance(pd.DataFrame(rows))
    assert set(var) == {"c", "d"}
    assert var["c"] > 10 * var["d"]
    assert 0.3**2 / 6 * 0.2 < var["c"] < 0.3**2 / 6 * 3
    assert calibration_variance(pd.DataFrame()) == {}
    # twelve campaigns of category c, all about 25 % above their calibrated counterfactual
    reports = [_report(f"x{i}", "c", "150100", start=f"{2014 + i}-01-06", rel=0.25,
                       did_rel=None) for i in range(12)]
    frame = estimate_frame(reports, departments={}, region_levels={})
    plain, _ = pooled_groups(frame, "category")
    shared, contrib = pooled_groups(frame, "category", bias_variance=var)
    assert plain["c"]["counterfactual"]["significant"]
    assert not shared["c"]["counterfactual"]["significant"]
    assert shared["c"]["counterfactual"]["relative_effect"] == pytest.approx(
        plain["c"]["counterfactual"]["relative_effect"])
    assert sum(c["counterfactual"]["weight"] for c in contrib.values()) == pytest.approx(1.0)


def test_annotate_effect_dates_reasons_and_mde() -> None:
    r = _report("a", "fireworks", "150100", start="2025-01-08", rel=-0.3, did_rel=-0.25)
    r["window_end"] = dt.date(2025, 2, 2)
    out = annotate_effect(r)
    assert out["measurable_from"] == dt.date(2025, 1, 13)  # Monday after the first week
    assert out["complete_on"] == dt.date(2025, 2, 3)
    assert out["did"]["mde"] == pytest.approx(np.expm1(-(1.959964 + 0.841621) * 0.1),
                                              abs=1e-5)
    assert out["counterfactual"]["mde"] < 0 and out["counterfactual"]["campaigns_needed"] >= 2
    pending = annotate_effect({**r, "reason": "no window week has been fully observed yet",
                               "counterfactual": None, "did": None})
    assert pending["reason_zh"] == "窗口内尚无完整一周的数据"
    never = annotate_effect({**r, "reason": "the campaign was never approved, so ...",
                             "counterfactual": None, "did": None})
    assert "未经批准" in never["reason_zh"]
