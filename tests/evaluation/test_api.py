"""Effect, scorecard, chart and PNG endpoints on seeded data (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import struct
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from scipy import stats

from models.peaks import actual_spike_windows
from service.campaigns.tables import Campaign
from service.errors import PROBLEM_JSON
from service.evaluation import weekly_panel
from tests.evaluation.conftest import ACTUAL, SAMPLES, TREATED, WINDOW, Seeded

Api = tuple[TestClient, dict[str, str]]


def _get(api: Api, url: str, scope: str = "read", **params: Any) -> Any:
    """GET a materialised answer: a query never asked before answers 202 and wakes the
    evaluation worker; once it has finished, the stored answer is served."""
    client, keys = api
    r = client.get(url, headers={"X-API-Key": keys[scope]}, params=params)
    if r.status_code == 202:
        assert int(r.headers["Retry-After"]) > 0
        assert r.json()["materialised"]["recompute_pending"] is True
        client.app.state.evaluation_executor.wait(120)  # type: ignore[attr-defined]
        r = client.get(url, headers={"X-API-Key": keys[scope]}, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    if url.endswith(("/effect", "/evaluation")):
        assert body["materialised"]["recompute_pending"] is False
        assert body["materialised"]["computed_at"] is not None
    return body


def test_effect_of_a_sent_campaign_matches_hand_computation(api: Api, seeded: Seeded) -> None:
    e = _get(api, f"/v1/campaigns/{seeded.sent_id}/effect")
    assert e["evaluation"] == "complete" and e["series_id"] == TREATED
    assert e["approved_run_id"] == seeded.run_id
    cf = e["counterfactual"]
    assert isinstance(cf, dict)
    totals = np.sum(SAMPLES, axis=0)          # 24, 26, 28, 30, 32
    actual = float(sum(ACTUAL))               # 16
    assert cf["actual"] == actual and cf["counterfactual"] == pytest.approx(28.0)
    assert cf["effect"] == pytest.approx(-12.0)
    assert cf["relative_effect"] == pytest.approx(-12.0 / 28.0)
    diffs = actual - totals                   # -8 … -16
    assert cf["effect_lower_95"] == pytest.approx(-15.8)
    assert cf["effect_upper_95"] == pytest.approx(-8.2)
    assert cf["effect_lower_80"] == pytest.approx(float(np.quantile(diffs, 0.1)))
    assert cf["effect_upper_80"] == pytest.approx(-8.8)
    assert cf["p_reduced"] == 1.0 and cf["significant"] is True and cf["n_samples"] == 5
    # no stored peak window without a campaign: shown as stored, labelled uncalibrated
    assert cf["calibrated"] is False and e["counterfactual_raw"] is None
    cal = e["calibration"]
    assert cal["status"] == "uncalibrated" and cal["n_placebos"] == 0
    assert (cal["bias_ratio"], cal["dispersion"], cal["pooled_over"]) == (1.0, 1.0, None)
    assert cal["lead_days"] == 35
    weeks = e["weeks"]
    assert isinstance(weeks, list)
    assert [w["actual"] for w in weeks] == [7.0, 9.0]
    assert [w["counterfactual"] for w in weeks] == [15.0, 13.0]
    assert weeks[0]["week"] == WINDOW[0].isoformat()
    did = e["did"]
    assert isinstance(did, dict)
    assert did["status"] == "ok", did
    assert set(did["controls"]) == {"complaints|fireworks|150200", "complaints|fireworks|152900"}
    assert did["relative_effect"] < -0.3 and did["significant"] is True
    assert did["relative_upper_95"] < 0
    # the smallest effect each estimate could have detected, and campaigns needed for -20 %
    # (the DiD's on its t quantiles, like its interval)
    assert did["df"] >= 1
    mult = stats.t.ppf(0.975, did["df"]) + stats.t.ppf(0.8, did["df"])
    assert did["mde"] == pytest.approx(np.expm1(-mult * did["placebo_rmse"]), abs=1e-4)
    assert isinstance(did["campaigns_needed"], int) and did["campaigns_needed"] >= 2
    assert -1 < cf["mde"] < 0 and cf["campaigns_needed"] >= 2


def test_effect_states_unavailable_and_pending(api: Api, seeded: Seeded) -> None:
    client, keys = api
    r = client.get(f"/v1/campaigns/{seeded.draft_id}/effect",
                   headers={"X-API-Key": keys["read"]})  # not sent: no number, a 409
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM_JSON
    assert r.json()["status_now"] == "draft" and "only for sent" in r.json()["detail"]
    pending = _get(api, f"/v1/campaigns/{seeded.pending_id}/effect")
    assert pending["evaluation"] == "pending" and pending["weeks_observed"] == 0
    assert pending["counterfactual"] is None and pending["did"] is None
    assert len(pending["weeks"]) == 2
    start = dt.date.fromisoformat(pending["window_start"])
    assert pending["measurable_from"] == (start + dt.timedelta(days=7)).isoformat()
    assert pending["complete_on"] == (dt.date.fromisoformat(pending["window_end"])
                                      + dt.timedelta(days=1)).isoformat()
    assert pending["reason_zh"] == "窗口内尚无完整一周的数据"
    other = _get(api, f"/v1/campaigns/{seeded.sent_id}/effect", signal="violations")
    assert other["evaluation"] == "unavailable" and "no sample paths" in str(other["reason"])
    assert "没有该序列的样本路径" in other["reason_zh"]
    r = client.get("/v1/campaigns/nope/effect", headers={"X-API-Key": keys["read"]})
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM_JSON


def test_did_says_when_no_fair_control_exists(api: Api, seeded: Seeded) -> None:
    with seeded.factory() as s:  # a campaign in one of the two control regions
        s.add(Campaign(status="approved", category="fireworks", region="152900",
                       signal="complaints", title="t", window_start=WINDOW[0],
                       window_end=WINDOW[1], send_date=seeded.send_date,
                       planned_send_date=seeded.send_date))
        s.commit()
    did = _get(api, f"/v1/campaigns/{seeded.sent_id}/effect")["did"]
    assert isinstance(did, dict)
    assert did["status"] == "no_fair_control" and did["controls"] == []
    assert "complaints|fireworks|152900" not in did["similarity"]


def test_scorecard_by_category(api: Api, seeded: Seeded) -> None:
    sc = _get(api, "/v1/evaluation", group_by="category")
    assert sc["group_by"] == "category" and sc["signal"] == "complaints"
    groups = {g["key"]: g for g in sc["groups"]}
    fw, food = groups["fireworks"], groups["food_safety"]
    assert fw["label"] == "违规销售燃放烟花爆竹"
    assert (fw["campaigns"], fw["campaigns_sent"], fw["campaigns_evaluated"]) == (1, 1, 1)
    # the counterfactual is uncalibrated (no placebo windows), so the DiD estimate counts
    assert (fw["counted_counterfactual"], fw["counted_did"], fw["not_counted"]) == (0, 1, 0)
    rows = {r["campaign_id"]: r for r in sc["campaigns"]}
    assert rows[seeded.sent_id]["method"] == "did"
    assert rows[seeded.pending_id]["method"] == "none"
    assert "pending" in rows[seeded.pending_id]["reason"]
    did = _get(api, f"/v1/campaigns/{seeded.sent_id}/effect")["did"]
    assert fw["avoided"] == pytest.approx(-did["effect"], abs=1e-3) and fw["avoided"] > 0
    assert fw["avoided_lower_95"] == pytest.approx(-did["effect_upper_95"], abs=1e-3)
    assert fw["avoided_upper_95"] == pytest.approx(-did["effect_lower_95"], abs=1e-3)
    assert fw["avoided_lower_95"] <= fw["avoided_lower_80"] < fw["avoided"]
    assert fw["avoided"] < fw["avoided_upper_80"] <= fw["avoided_upper_95"]
    assert "sum of the per-campaign bounds" in sc["interval_method"]
    assert (fw["deliveries"], fw["deliveries_failed"]) == (2, 1)
    assert (food["campaigns_sent"], food["campaigns_evaluated"], food["avoided"]) == (1, 0, None)
    assert food["deliveries_failed"] == 2
    # the yearly peaks are actual spike windows; the 2024 one was reminded of in advance
    with seeded.factory() as s:
        spikes = actual_spike_windows(weekly_panel(session=s, signal="complaints"))
    treated = spikes[spikes["unique_id"] == TREATED]
    hit = treated[(treated["start"] <= pd.Timestamp(WINDOW[1]) + pd.Timedelta(days=7))
                  & (treated["end"] >= pd.Timestamp(WINDOW[0]) - pd.Timedelta(days=7))]
    assert len(hit) >= 1  # the campaign's dip may split the peak into two windows
    starts = [t.date() for t in hit["start"]]
    assert all(seeded.send_date < d <= WINDOW[1] for d in starts)
    assert fw["spike_windows"] > len(hit) and fw["spike_windows_caught"] == len(hit)
    assert fw["median_lead_days"] == pytest.approx(
        float(np.median([(d - seeded.send_date).days for d in starts])))
    # pooled first: one sent campaign with a DiD ok -> a "pooled" estimate of k = 1 that
    # equals it, its contribution has all the weight; the uncalibrated counterfactual is left
    # out of the pooling
    pooled = fw["pooled"]
    assert pooled["headline"] == "did" and pooled["counterfactual"] is None
    assert pooled["did"]["k"] == 1 and pooled["randomised"] is None
    assert pooled["did"]["relative_effect"] == pytest.approx(did["relative_effect"], abs=1e-6)
    assert pooled["did"]["mde"] == pytest.approx(did["mde"], abs=1e-6)
    contribution = rows[seeded.sent_id]["contribution"]
    assert contribution["did"]["weight"] == 1.0 and "counterfactual" not in contribution
    assert rows[seeded.pending_id]["contribution"] is None
    assert food["pooled"] is None
    assert sc["pooled"]["by"] == "category"
    assert [g["key"] for g in sc["pooled"]["groups"]] == ["fireworks"]
    assert sc["pooled"]["groups"][0]["label"] == "违规销售燃放烟花爆竹"
    by_year = _get(api, "/v1/evaluation", pooled_by="year")["pooled"]
    assert [g["label"] for g in by_year["groups"]] == [f"{WINDOW[0].year}年"]
    total = sc["total"]
    assert isinstance(total, dict)
    assert total["pooled"]["did"]["k"] == 1
    assert total["campaigns_sent"] == 2 and total["deliveries_failed"] == 3
    assert total["avoided"] == pytest.approx(fw["avoided"])
    assert total["avoided_upper_95"] == pytest.approx(fw["avoided_upper_95"])


def test_scorecard_groups_and_period(api: Api, seeded: Seeded) -> None:
    dept = _get(api, "/v1/evaluation", group_by="department")
    assert {g["key"] for g in dept["groups"]} >= {"公共安全", "餐饮"}
    region = _get(api, "/v1/evaluation", group_by="region")
    labels = {g["key"]: g["label"] for g in region["groups"]}
    assert labels["150100"] == "呼和浩特市"
    later = _get(api, "/v1/evaluation", **{"from": (WINDOW[1] + dt.timedelta(days=1))
                                            .isoformat()})
    groups = {g["key"]: g for g in later["groups"]}
    assert groups.get("fireworks", {}).get("campaigns_sent", 0) == 0
    assert later["from"] == (WINDOW[1] + dt.timedelta(days=1)).isoformat()
    client, keys = api
    r = client.get("/v1/evaluation", params={"group_by": "sector"},
                   headers={"X-API-Key": keys["read"]})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM_JSON
    r = client.get("/v1/evaluation", params={"from": "2024-02-01", "to": "2024-01-01"},
                   headers={"X-API-Key": keys["read"]})
    assert r.status_code == 422


def test_chart_and_png(api: Api, seeded: Seeded) -> None:
    chart = _get(api, f"/v1/series/{TREATED}/chart", history_weeks=52)
    assert chart["run_id"] == seeded.run_id and chart["region_name"] == "呼和浩特市"
    assert 50 <= len(chart["history"]) <= 53
    fc = chart["forecast"]
    assert isinstance(fc, list) and len(fc) == 2
    assert fc[0]["lower_80"] == pytest.approx(np.quantile(SAMPLES[0], 0.1))
    assert {c["status"] for c in chart["campaigns"]} == {"sent", "draft"}
    client, keys = api
    r = client.get(f"/v1/series/{TREATED}/forecast.png", headers={"X-API-Key": keys["read"]},
                   params={"width": 8, "height": 5})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", r.content[16:24])
    assert (width, height) == (800, 500)
    r = client.get("/v1/series/complaints|fireworks|150000/forecast.png",
                   headers={"X-API-Key": keys["read"]})
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM_JSON


def test_endpoints_need_a_read_key(api: Api, seeded: Seeded) -> None:
    client, keys = api
    for path in (f"/v1/campaigns/{seeded.sent_id}/effect", "/v1/evaluation",
                 f"/v1/series/{TREATED}/chart", f"/v1/series/{TREATED}/forecast.png",
                 "/v1/dashboard/whoami", "/v1/dashboard/reference"):
        r = client.get(path)
        assert r.status_code == 401 and r.headers["content-type"] == PROBLEM_JSON, path
        r = client.get(path, headers={"X-API-Key": keys["import"]})
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM_JSON, path
        r = client.get(path, headers={"X-API-Key": keys["read"]})
        # the effect and the scorecard: 202 until the evaluation worker has computed them
        ok = (200, 202) if path.endswith(("/effect", "/evaluation")) else (200,)
        assert r.status_code in ok, path
    me = client.get("/v1/dashboard/whoami", headers={"X-API-Key": keys["read"]}).json()
    assert me["scopes"] == ["read"] and me["name"] == "read"
