"""Placebo calibration of the counterfactual: maths (``models.effect.placebo_calibration``) and
the service (``campaign_effect_report``, ``scorecard``) on stored runs with known paths.

Stored data: three regions of ``fireworks`` with weekly counts that sum to 16 over any two
consecutive weeks (7/9 alternating, phase per region, and 8/8), so every two-week window's
actual total is 16. Placebo runs predict two-week peak windows whose sample paths have mean
10 per week (20 per window): the forecaster overstates the peaks by 25 % (actual = 0.8 ×
forecast), as the selection of campaign windows makes a real one do. A null campaign (actual
16 in its window) against the same biased forecast looks like a significant −20 % effect;
calibrated, it is ≈ 0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.effect import campaign_effect, placebo_calibration
from service.campaigns.tables import Campaign
from service.config import Settings
from service.db import make_sessionmaker
from service.evaluation import campaign_effect_report, placebo_windows, scorecard
from service.store.reference import load_reference
from service.store.summary import rebuild
from service.store.tables import Complaint, ForecastRun, ForecastWeek, Peak

START = dt.date(2022, 1, 3)  # a Monday
N_WEEKS = 80
REGIONS = ("150100", "150200", "152900")
PATTERNS = {"150100": (7, 9), "150200": (9, 7), "152900": (8, 8)}
N_PATHS = 50
CAMPAIGN_WEEK = 72


def _monday(k: int) -> dt.date:
    return START + dt.timedelta(weeks=k)


def _sid(region: str) -> str:
    return f"complaints|fireworks|{region}"


# --------------------------------------------------------------------------- maths
def _placebo_frame(n: int, bias: float, seed: int, sd: float = 2.0,
                   spread: float = 1.0) -> pd.DataFrame:
    """Windows whose actual total is ``bias`` × a forecast mean plus noise ``spread`` × the
    paths' sd (``spread`` > 1: paths too narrow)."""
    rng = np.random.default_rng(seed)
    expected = rng.uniform(10, 40, n)
    actual = bias * expected + spread * bias * sd * rng.standard_normal(n)
    return pd.DataFrame({"actual": np.maximum(actual, 0), "counterfactual": expected,
                         "counterfactual_sd": sd})


def test_placebo_calibration_recovers_bias_and_dispersion() -> None:
    cal = placebo_calibration(_placebo_frame(400, 0.8, seed=1, spread=2.0))
    assert cal.status == "calibrated" and cal.n_placebos == 400
    assert cal.bias_ratio == pytest.approx(0.8, abs=0.02)
    assert cal.shrinkage > 0.95
    assert cal.dispersion == pytest.approx(2.0, abs=0.2)
    # calibrated paths: a forecast as stored (never narrower than its own paths)
    ok = placebo_calibration(_placebo_frame(400, 1.0, seed=2, spread=0.5))
    assert ok.bias_ratio == pytest.approx(1.0, abs=0.02) and ok.dispersion == 1.0


def test_placebo_calibration_shrinks_with_few_noisy_placebos() -> None:
    few = placebo_calibration(_placebo_frame(8, 0.8, seed=3, sd=8.0), min_placebos=8)
    assert few.status == "calibrated" and 0.0 < few.shrinkage < 0.9
    assert few.raw_ratio < few.bias_ratio < 1.0  # between the data and no correction
    short = placebo_calibration(_placebo_frame(5, 0.8, seed=3), min_placebos=8)
    assert short.status == "uncalibrated" and (short.bias_ratio, short.dispersion) == (1, 1)
    assert short.n_placebos == 5 and "5 placebo" in str(short.reason)
    assert short.raw_ratio == pytest.approx(0.8, abs=0.1)  # the evidence is still reported
    empty = placebo_calibration(_placebo_frame(0, 0.8, seed=3))
    assert empty.status == "uncalibrated" and np.isnan(empty.raw_ratio)
    with pytest.raises(ValueError, match="lacks columns"):
        placebo_calibration(pd.DataFrame({"actual": [1.0]}))


def test_conformal_bounds_hold_the_level_and_see_a_heavier_upper_tail() -> None:
    rng = np.random.default_rng(8)
    n = 200
    expected = rng.uniform(20, 40, n)
    # errors in units of the paths' sd (2): mostly N(0, 1), a few large surges above
    z = rng.standard_normal(n) + np.where(rng.random(n) < 0.08, rng.uniform(3, 6, n), 0)
    cal = placebo_calibration(pd.DataFrame({"actual": expected + 2.0 * z,
                                            "counterfactual": expected,
                                            "counterfactual_sd": 2.0}), prior_sd=1e-6)
    zs = np.sort(np.abs(z))
    conformal = zs[int(np.ceil(0.95 * (n + 1))) - 1] / 1.959964 * np.sqrt(1 + 1 / n)
    assert cal.dispersion >= conformal - 1e-6  # the symmetric 95 % bound
    upper = np.sort(z)[::-1][n - int(np.ceil(0.975 * (n + 1)))] / 1.959964 * np.sqrt(1 + 1 / n)
    assert cal.dispersion_high == pytest.approx(max(upper, cal.dispersion), rel=1e-6)
    assert cal.dispersion_high > cal.dispersion  # the surges make the upper tail heavier
    # a new window from the same errors falls outside the two-sided interval <= 5 % of times
    new = rng.standard_normal(4000) + np.where(rng.random(4000) < 0.08,
                                               rng.uniform(3, 6, 4000), 0)
    outside = (new > 1.959964 * cal.dispersion_high) | (new < -1.959964 * cal.dispersion)
    assert outside.mean() <= 0.05
    few = placebo_calibration(pd.DataFrame({"actual": expected[:20] + 2.0 * z[:20],
                                            "counterfactual": expected[:20],
                                            "counterfactual_sd": 2.0}))
    assert few.dispersion_high == few.dispersion  # < 39 placebos: no one-sided bound


def test_few_placebos_bound_is_never_below_the_largest_placebo_error() -> None:
    """With fewer than 19 placebos no 95 % conformal bound exists; the t bound of the rms
    assumes normal errors, so one surge among 10 placebos would leave it short: the bound is
    never below the largest |z| (the conformal bound at level m / (m + 1))."""
    z = np.array([0.1, -0.3, 0.2, 0.4, -0.2, 0.1, -0.1, 0.3, -0.4, 6.0])
    expected = np.full(10, 30.0)
    cal = placebo_calibration(pd.DataFrame({"actual": expected + 2.0 * z,
                                            "counterfactual": expected,
                                            "counterfactual_sd": 2.0}), prior_sd=1e-6)
    assert cal.calibrated and cal.n_placebos == 10
    assert cal.dispersion == pytest.approx(6.0 / 1.959964 * np.sqrt(1.1), rel=1e-3)
    rms = float(np.sqrt(np.mean(z**2)))
    assert cal.dispersion > rms * stats.t.ppf(0.975, 9) / 1.959964 * np.sqrt(1.1)


def test_dispersion_high_widens_only_the_lower_effect_bound() -> None:
    weeks = pd.DatetimeIndex(pd.to_datetime(["2024-02-12", "2024-02-19"]))
    paths = pd.DataFrame([[9.0, 10.0, 11.0], [9.0, 10.0, 11.0]], index=weeks)
    actual = pd.Series([12.0, 12.0], index=weeks)
    sym = campaign_effect(actual, paths, window_start=weeks[0], window_end=weeks[1],
                          dispersion=2.0)
    hi = campaign_effect(actual, paths, window_start=weeks[0], window_end=weeks[1],
                         dispersion=2.0, dispersion_high=3.0)
    sd = sym.counterfactual_sd
    assert sym.effect_lower_95 == pytest.approx(4.0 - 1.959964 * sd, abs=1e-4)
    assert hi.effect_lower_95 == pytest.approx(4.0 - 1.959964 * sd * 1.5, abs=1e-4)
    assert hi.effect_upper_95 == sym.effect_upper_95 and hi.effect == sym.effect


def test_campaign_effect_applies_bias_then_dispersion() -> None:
    weeks = pd.DatetimeIndex(pd.to_datetime(["2024-02-12", "2024-02-19"]))
    paths = pd.DataFrame([[9.0, 10.0, 11.0], [9.0, 10.0, 11.0]], index=weeks)
    actual = pd.Series([8.0, 8.0], index=weeks)
    raw = campaign_effect(actual, paths, window_start=weeks[0], window_end=weeks[1])
    cal = campaign_effect(actual, paths, window_start=weeks[0], window_end=weeks[1],
                          bias_ratio=0.8, dispersion=2.0)
    assert raw.counterfactual == pytest.approx(20.0) and raw.effect == pytest.approx(-4.0)
    assert cal.counterfactual == pytest.approx(16.0) and cal.effect == pytest.approx(0.0)
    assert cal.bias_ratio == 0.8 and cal.dispersion == 2.0
    # totals 18, 20, 22 -> ×0.8 -> 14.4, 16, 17.6 -> spread ×2 around 16 -> 12.8, 16, 19.2
    assert cal.counterfactual_sd == pytest.approx(np.std([12.8, 16.0, 19.2]))
    with pytest.raises(ValueError, match="bias_ratio"):
        campaign_effect(actual, paths, window_start=weeks[0], window_end=weeks[1],
                        bias_ratio=0.0)


# --------------------------------------------------------------------------- service
@dataclass
class Stored:
    factory: sessionmaker[Session]
    campaign_id: str
    placebo_run_ids: list[str]


def _counts(region: str) -> list[int]:
    a, b = PATTERNS[region]
    out = [a if k % 2 == 0 else b for k in range(N_WEEKS)]
    return out


def _records() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for region in REGIONS:
        for k, n in enumerate(_counts(region)):
            for i in range(n):
                day = _monday(k) + dt.timedelta(days=i % 7)
                rows.append({"source": "t", "external_id": f"{region}-{k}-{i}", "day": day,
                             "category": "fireworks", "region": region,
                             "received_at": dt.datetime(day.year, day.month, day.day, 3,
                                                        tzinfo=dt.UTC)})
    return rows


def _run(s: Session, train_until: dt.date, windows: dict[str, int], seed: int) -> str:
    """A finished run with a two-week peak window per series starting at week ``k``, paths
    of mean 10 (sd 1) per week."""
    run = ForecastRun(status="succeeded", engine="serial", horizon_days=182,
                      train_until=train_until, params={},
                      finished_at=dt.datetime(2023, 1, 1, tzinfo=dt.UTC))
    s.add(run)
    s.flush()
    rng = np.random.default_rng(seed)
    for region, k in windows.items():
        for j in range(2):
            samples = np.round(10.0 + rng.standard_normal(N_PATHS), 3)
            samples += 10.0 - samples.mean()  # exactly 10 on average
            s.add(ForecastWeek(run_id=run.id, series_id=_sid(region), week=_monday(k + j),
                               expected=10.0, p_spike=0.8, threshold=9.0,
                               samples=[float(x) for x in samples]))
        s.add(Peak(run_id=run.id, series_id=_sid(region), signal="complaints",
                   category="fireworks", region=region, start=_monday(k),
                   end=_monday(k + 2) - dt.timedelta(days=1), peak_week=_monday(k),
                   expected_count=20.0, expected_excess=2.0, max_probability=0.8,
                   threshold=9.0))
    return run.id


def store(engine: Engine, settings: Settings, n_placebo_runs: int) -> Stored:
    factory = make_sessionmaker(engine)
    with factory() as s:
        load_reference(session=s, categories_file=settings.categories_file,
                       regions_file=settings.regions_file)
        s.execute(insert(Complaint), _records())
        rebuild(s.connection())  # records written outside an import: summary + coverage
        placebo_runs = []
        for r in range(n_placebo_runs):
            k = 20 + 8 * r
            placebo_runs.append(_run(s, _monday(k - 3) - dt.timedelta(days=1),
                                     dict.fromkeys(REGIONS, k), seed=r))
        if n_placebo_runs:  # a later run predicting the first windows again: same placebos
            _run(s, _monday(18) - dt.timedelta(days=1), dict.fromkeys(REGIONS, 21), seed=99)
        frozen = _run(s, _monday(CAMPAIGN_WEEK - 3) - dt.timedelta(days=1),
                      {"150100": CAMPAIGN_WEEK}, seed=100)
        send = _monday(CAMPAIGN_WEEK) - dt.timedelta(days=14)
        c = Campaign(status="sent", category="fireworks", region="150100",
                     signal="complaints", title="t", window_start=_monday(CAMPAIGN_WEEK),
                     window_end=_monday(CAMPAIGN_WEEK + 2) - dt.timedelta(days=1),
                     send_date=send, planned_send_date=send, run_id=frozen,
                     approved_run_id=frozen)
        s.add(c)
        s.commit()
        return Stored(factory, c.id, placebo_runs)


def test_calibration_recovers_the_bias_and_nulls_the_effect(engine: Engine,
                                                            settings: Settings) -> None:
    st = store(engine, settings, n_placebo_runs=4)
    with st.factory() as s:
        cands = placebo_windows(session=s, signal="complaints")
        # 4 runs × 3 regions + the overlapping re-forecast of the first windows
        assert len(cands) == 4 * 3 + 3 + 1  # (+ the campaign's own window)
        assert set(cands["actual"]) == {16.0}
        e = campaign_effect_report(session=s, campaign_id=st.campaign_id)
    cal = e["calibration"]
    assert cal["status"] == "calibrated" and cal["pooled_over"] == "category"
    assert cal["n_placebos"] == 12  # one per real window: the re-forecast is not counted twice
    assert cal["lead_days"] == 22
    assert cal["bias_ratio"] == pytest.approx(0.8, abs=0.01)
    assert cal["dispersion"] == pytest.approx(1.0, abs=0.1)
    raw, cf = e["counterfactual_raw"], e["counterfactual"]
    assert raw["calibrated"] is False and cf["calibrated"] is True
    assert raw["relative_effect"] == pytest.approx(-0.2, abs=0.01) and raw["significant"]
    assert cf["counterfactual"] == pytest.approx(16.0, abs=0.2)
    assert abs(cf["relative_effect"]) < 0.02 and not cf["significant"]
    assert cf["effect_lower_95"] < 0 < cf["effect_upper_95"]
    assert 0.2 < cf["p_reduced"] < 0.8
    assert e["weeks"][0]["counterfactual"] == pytest.approx(8.0, abs=0.1)
    did = e["did"]
    assert did["status"] != "ok"  # the regions' weekly patterns are not alike: no DiD
    # the scorecard counts the calibrated counterfactual
    with st.factory() as s:
        sc = scorecard(session=s, settings=settings)
    (row,) = sc["campaigns"]
    assert row["method"] == "counterfactual" and row["avoided"] == pytest.approx(
        -cf["effect"])
    fw = next(g for g in sc["groups"] if g["key"] == "fireworks")
    assert (fw["campaigns_evaluated"], fw["counted_counterfactual"], fw["not_counted"]) == (
        1, 1, 0)
    assert fw["avoided_lower_95"] == pytest.approx(-cf["effect_upper_95"], abs=1e-3)
    assert fw["avoided_lower_95"] < 0 < fw["avoided_upper_95"]


def test_committed_campaign_windows_are_not_placebos(engine: Engine,
                                                     settings: Settings) -> None:
    st = store(engine, settings, n_placebo_runs=4)
    with st.factory() as s:  # an approved campaign over one placebo window
        k = 28
        s.add(Campaign(status="approved", category="fireworks", region="150200",
                       signal="complaints", title="t", window_start=_monday(k),
                       window_end=_monday(k + 2) - dt.timedelta(days=1),
                       send_date=_monday(k - 2), planned_send_date=_monday(k - 2)))
        s.commit()
        e = campaign_effect_report(session=s, campaign_id=st.campaign_id)
    assert e["calibration"]["n_placebos"] == 11


def test_too_few_placebos_leave_the_estimate_uncalibrated_and_uncounted(
        engine: Engine, settings: Settings) -> None:
    st = store(engine, settings, n_placebo_runs=2)  # 6 placebo windows < 8
    with st.factory() as s:
        e = campaign_effect_report(session=s, campaign_id=st.campaign_id)
        sc = scorecard(session=s, settings=settings)
    cal, cf = e["calibration"], e["counterfactual"]
    assert cal["status"] == "uncalibrated" and cal["n_placebos"] == 6
    assert cal["pooled_over"] == "signal"  # the category had too few; pooled, still too few
    assert (cal["bias_ratio"], cal["dispersion"]) == (1.0, 1.0)
    assert cal["raw_ratio"] == pytest.approx(0.8, abs=0.01)
    assert "6 placebo" in cal["reason"]
    # shown, labelled, as stored: the spurious −20 %
    assert cf["calibrated"] is False and e["counterfactual_raw"] is None
    assert cf["relative_effect"] == pytest.approx(-0.2, abs=0.01) and cf["significant"]
    (row,) = sc["campaigns"]
    assert row["method"] == "none" and row["avoided"] is None
    assert "uncalibrated" in row["reason"]
    total = sc["total"]
    assert (total["campaigns_sent"], total["campaigns_evaluated"], total["not_counted"]) == (
        1, 0, 1)
    assert total["avoided"] is None
    # with a lower bar the same placebos calibrate it
    with st.factory() as s:
        e = campaign_effect_report(session=s, campaign_id=st.campaign_id, min_placebos=6)
    assert e["calibration"]["status"] == "calibrated"
    assert abs(e["counterfactual"]["relative_effect"]) < 0.02
