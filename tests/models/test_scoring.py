"""The one scorer: campaign-capped event scores, in time, threshold-free skill."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from models.scoring import (
    campaign_windows,
    event_scores,
    event_scores_by,
    f_beta,
    ranking_scores,
    score_warnings,
    seasonal_naive_score,
)

T = pd.Timestamp
CUT = T("2024-01-07")


def _win(uid: str, start: str, weeks: int, onset: str | None = None) -> dict[str, object]:
    s = T(start)
    return {"unique_id": uid, "start": s, "end": s + pd.Timedelta(weeks=weeks, days=-1),
            "onset": T(onset) if onset else s, "available_at": CUT, "cutoff": CUT}


def test_event_scores_recall_precision_in_time() -> None:
    actual = pd.DataFrame([
        {**_win("a", "2024-02-05", 2), "eligible": True},   # caught, onset before: in time
        {**_win("a", "2024-05-06", 1), "eligible": True},   # caught, onset late: not in time
        {**_win("b", "2024-03-04", 3), "eligible": True},   # missed
        {**_win("b", "2024-01-08", 1), "eligible": False},  # too soon: not in recall
    ])
    predicted = pd.DataFrame([
        _win("a", "2024-02-12", 2, onset="2024-02-05"),
        _win("a", "2024-05-13", 2),          # overlaps ±1 week, onset after the start
        _win("b", "2024-01-08", 1),          # true positive (matches the ineligible window)
        _win("b", "2024-07-01", 2),          # false alarm
    ])
    s = event_scores(predicted, actual.drop(columns=["onset", "available_at"]), lead_days=14)
    assert s["n_actual"] == 3 and s["n_caught"] == 2 and s["n_in_time"] == 1
    assert s["recall"] == pytest.approx(2 / 3) and s["in_time"] == pytest.approx(1 / 3)
    assert s["n_predicted"] == 4 and s["precision"] == pytest.approx(3 / 4)
    assert s["f1"] == pytest.approx(f_beta(2 / 3, 3 / 4))
    assert f_beta(0.5, 1.0, beta=2) == pytest.approx(5 * 0.5 / (4 * 1.0 + 0.5))
    assert f_beta(0.0, 0.0) == 0.0 and np.isnan(f_beta(float("nan"), 1.0))


def _weekly(p: list[float], y: list[float], thr: float = 10.0, uid: str = "a") -> pd.DataFrame:
    weeks = pd.date_range("2024-01-08", periods=len(p), freq="7D")
    return pd.DataFrame({"cutoff": CUT, "unique_id": uid, "week": weeks, "expected": y,
                         "p_spike": p, "threshold": thr, "y": y,
                         "spike": np.asarray(y) > thr})


def test_flagging_every_week_is_not_free() -> None:
    """One spike week in 24: flagging all 24 weeks is four campaigns, one of them right."""
    y = [0.0] * 24
    y[10] = 50.0
    weekly = _weekly([1.0] * 24, y)
    actual = pd.DataFrame([{"cutoff": CUT, "unique_id": "a", "start": T("2024-03-18"),
                            "end": T("2024-03-24"), "eligible": True}])
    s = score_warnings(weekly, actual, p_min=0.5, max_weeks=6)
    assert s["n_predicted"] == 4 and s["precision"] == pytest.approx(0.25)
    assert s["recall"] == 1.0
    whole = score_warnings(weekly, actual, p_min=0.5, max_weeks=0)
    assert whole["n_predicted"] == 1 and whole["precision"] == 1.0
    wins = campaign_windows(weekly, p_min=0.5)
    assert wins["parts"].tolist() == [4] * 4 and (wins["available_at"] == CUT).all()


def test_ranking_scores_match_sklearn_and_skip_unknown_weeks() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(size=60)
    y = np.where(rng.uniform(size=60) < p, 20.0, 1.0)
    weekly = _weekly(p.tolist(), y.tolist())
    weekly["spike"] = weekly["spike"].astype(object)
    weekly.loc[5, ["y", "spike"]] = np.nan  # an incomplete week is not scored
    r = ranking_scores(weekly)
    done = weekly.drop(index=5)
    assert r["n_weeks"] == 59
    assert r["average_precision"] == pytest.approx(
        average_precision_score(done["spike"].astype(bool), done["p_spike"]))
    assert r["auc"] == pytest.approx(roc_auc_score(done["spike"].astype(bool), done["p_spike"]))
    assert r["brier"] == pytest.approx(np.mean((done["p_spike"] - done["spike"]) ** 2))
    graded = ranking_scores(done.assign(p_spike=done["p_spike"] * 3), score="p_spike")
    assert np.isnan(graded["brier"])  # not a probability


def test_seasonal_naive_score_is_last_years_count_over_threshold() -> None:
    hist = pd.DataFrame({"unique_id": "a", "week": pd.date_range("2023-01-09", periods=60,
                                                                 freq="7D"),
                         "y": np.arange(60, dtype=float)})
    weekly = pd.DataFrame({"unique_id": ["a", "a", "b"],
                           "week": [T("2024-01-08"), T("2025-06-02"), T("2024-01-08")],
                           "threshold": [4.0, 4.0, 4.0]})
    got = seasonal_naive_score(weekly, hist)
    assert got[0] == pytest.approx(0.0 / 4.0 + 0.0)  # 2023-01-09 is row 0: count 0
    assert np.isnan(got[1]) and np.isnan(got[2])
    weekly.loc[0, "week"] = T("2024-02-05")  # 52 weeks after 2023-02-06 (row 4)
    assert seasonal_naive_score(weekly, hist)[0] == pytest.approx(4.0 / 4.0)


def test_event_scores_by_group_equal_the_scores_of_each_group() -> None:
    rng = np.random.default_rng(3)
    uids = [f"s{i}" for i in range(9)]
    groups = {u: ["fire", "gas", "food"][i % 3] for i, u in enumerate(uids)}
    cutoffs = [CUT, CUT + pd.Timedelta(weeks=13)]

    def windows(n: int, actual: bool) -> pd.DataFrame:
        rows = []
        for _ in range(n):
            cut = cutoffs[int(rng.integers(2))]
            start = cut + pd.Timedelta(weeks=int(rng.integers(0, 20)), days=1)
            row = {"unique_id": uids[int(rng.integers(len(uids)))], "cutoff": cut,
                   "start": start, "end": start + pd.Timedelta(weeks=int(rng.integers(1, 4)),
                                                               days=-1),
                   "available_at": cut}
            if actual:
                row["eligible"] = bool(rng.random() > 0.2)
            else:
                row["onset"] = start - pd.Timedelta(weeks=int(rng.integers(0, 2)))
            rows.append(row)
        return pd.DataFrame(rows)

    pred, act = windows(60, False), windows(50, True)
    by = event_scores_by(pred, act, groups=groups, beta=2.0)
    assert set(by) == {None, "fire", "gas", "food"}
    pd.testing.assert_series_equal(pd.Series(by[None]), pd.Series(event_scores(pred, act,
                                                                               beta=2.0)))
    for g in ("fire", "gas", "food"):
        own = [u for u, c in groups.items() if c == g]
        alone = event_scores(pred[pred["unique_id"].isin(own)], act[act["unique_id"].isin(own)],
                             beta=2.0)
        pd.testing.assert_series_equal(pd.Series(by[g]), pd.Series(alone))
        assert by[g]["n_actual"] > 0
