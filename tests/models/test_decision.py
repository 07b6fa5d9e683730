"""Decision thresholds learned from backtests before the cut-off."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.decision import (
    DECISION_COLUMNS,
    CategoryRule,
    decision_origins,
    describe,
    learn_thresholds,
    pinned_thresholds,
    series_thresholds,
)

T = pd.Timestamp
CUT = T("2023-12-31")


def _backtest(uids: list[str], n_spikes: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """52 weeks per series; spikes get P around 0.3, quiet weeks around 0.05 (and a few
    false alarms at 0.2)."""
    rng = np.random.default_rng(seed)
    weekly: list[pd.DataFrame] = []
    actual: list[dict[str, object]] = []
    weeks = pd.date_range("2024-01-01", periods=52, freq="7D")
    for uid in uids:
        spike = np.zeros(52, dtype=bool)
        spike[rng.choice(np.arange(4, 50, 3), size=n_spikes, replace=False)] = True
        p = np.where(spike, 0.3, 0.05)
        p[rng.choice(np.flatnonzero(~spike), size=3, replace=False)] = 0.2
        y = np.where(spike, 30.0, 2.0)
        weekly.append(pd.DataFrame({"cutoff": CUT, "unique_id": uid, "week": weeks,
                                    "expected": y / 2, "p_spike": p, "threshold": 10.0,
                                    "y": y, "spike": spike}))
        actual.extend({"cutoff": CUT, "unique_id": uid, "start": w,
                       "end": w + pd.Timedelta(days=6), "eligible": True}
                      for w in weeks[spike])
    return pd.concat(weekly, ignore_index=True), pd.DataFrame(actual)


def test_learns_the_threshold_that_separates_spikes() -> None:
    weekly, actual = _backtest(["s|fire|1", "s|fire|2"], n_spikes=6)
    cats = {"s|fire|1": "fire", "s|fire|2": "fire"}
    out = learn_thresholds(weekly, actual, categories=cats)
    assert list(out.columns) == DECISION_COLUMNS
    row = out.iloc[0]
    assert row["basis"] == "category" and row["objective"] == "f_beta"
    assert 0.2 < row["threshold"] <= 0.3  # above the false alarms, at or below the spikes
    assert row["recall"] == 1.0 and row["precision"] == 1.0 and row["n_windows"] == 12
    assert row["origins"] == ["2023-12-31"]
    # beta 3 values recall so much that the false alarms (P 0.2) are worth it
    # only if they cost nothing; here they add campaigns without catching more: same choice
    wide = learn_thresholds(weekly, actual, categories=cats,
                            rules={"fire": CategoryRule(beta=3.0)})
    assert wide.iloc[0]["threshold"] <= row["threshold"]
    assert series_thresholds(out, cats).to_dict() == dict.fromkeys(cats, row["threshold"])


def test_too_few_windows_use_the_pooled_threshold_and_say_so() -> None:
    weekly, actual = _backtest(["s|fire|1", "s|fire|2", "s|gas|1"], n_spikes=6)
    # the gas series keeps only one spike window in its backtest
    gas = actual["unique_id"] == "s|gas|1"
    actual = pd.concat([actual[~gas], actual[gas].head(1)])
    cats = {"s|fire|1": "fire", "s|fire|2": "fire", "s|gas|1": "gas", "s|new|1": "new"}
    out = learn_thresholds(weekly, actual, categories=cats, min_windows=5).set_index("category")
    assert out.loc["fire", "basis"] == "category"
    assert out.loc["gas", "basis"] == "pooled" and out.loc["new", "basis"] == "pooled"
    assert out.loc["new", "n_series"] == 1
    text = describe(out.loc["gas"].to_dict() | {"category": "gas"})
    assert "learned over all categories" in text


def test_cost_loss_rule_and_pinned_and_default() -> None:
    weekly, actual = _backtest(["s|fire|1"], n_spikes=6)
    out = learn_thresholds(weekly, actual, categories={"s|fire|1": "fire"},
                           rules={"fire": CategoryRule(reminder_cost=1, miss_cost=5)})
    row = out.iloc[0]
    assert row["objective"] == "cost_loss" and row["threshold"] == pytest.approx(0.2)
    assert row["precision"] < 1.0  # the false alarms at P 0.2 are warned of, and counted
    pinned = pinned_thresholds(["fire"], 0.35)
    assert pinned.iloc[0]["basis"] == "pinned" and pinned.iloc[0]["threshold"] == 0.35
    assert "pinned" in describe(pinned.iloc[0].to_dict())
    empty = learn_thresholds(weekly.head(0), actual.head(0), categories={"s|fire|1": "fire"},
                             fallback=0.4)
    assert empty.iloc[0]["basis"] == "default" and empty.iloc[0]["threshold"] == 0.4
    assert "预警" in describe(row.to_dict(), language="zh")


def test_decision_origins_cover_the_last_two_years_before_the_cutoff() -> None:
    got = decision_origins(T("2024-12-31"), T("2020-01-01"), horizon_weeks=52)
    assert got == [T("2023-01-01"), T("2023-12-31")]
    assert all(o.weekday() == 6 for o in got)
    # each horizon ends before the cut-off
    assert all(o + pd.Timedelta(weeks=52) <= T("2024-12-31") for o in got)
    # short history: only origins with a year of history before them
    assert decision_origins(T("2024-12-31"), T("2022-06-01"), horizon_weeks=52) == [
        T("2023-12-31")]
    assert decision_origins(T("2024-12-31"), T("2024-01-01"), horizon_weeks=52) == []
    assert len(decision_origins(T("2024-12-31"), T("2015-01-01"), horizon_weeks=26,
                                max_origins=4)) == 4


def test_anchored_origins_are_shared_by_consecutive_weekly_runs() -> None:
    cutoffs = [T("2024-06-30") + pd.Timedelta(weeks=k) for k in range(27)]
    sets = [decision_origins(c, T("2019-01-01"), horizon_weeks=26, anchor_weeks=13)
            for c in cutoffs]
    for c, origins in zip(cutoffs, sets, strict=True):
        assert len(origins) == 2 and all(o.weekday() == 6 for o in origins)
        assert origins[1] - origins[0] == pd.Timedelta(weeks=26)
        assert origins[-1] + pd.Timedelta(weeks=26) <= c  # a full horizon before the cut-off
        assert ((origins[-1] - T("1970-01-04")).days // 7) % 13 == 0  # on the grid
        # never more than one grid step older than the unanchored origin
        free = decision_origins(c, T("2019-01-01"), horizon_weeks=26)
        assert pd.Timedelta(0) <= free[-1] - origins[-1] < pd.Timedelta(weeks=13)
    # 27 weekly runs see at most 3 distinct origin sets: the set changes once per 13 weeks
    distinct = {tuple(s) for s in sets}
    assert 2 <= len(distinct) <= 3
    changes = sum(a != b for a, b in zip(sets, sets[1:], strict=False))
    assert changes == len(distinct) - 1


def test_no_backtest_at_all_mixes_default_and_cost_loss_rows() -> None:
    weekly, actual = _backtest(["s|fire|1", "s|gas|1"], n_spikes=6)
    out = learn_thresholds(weekly.head(0), actual.head(0),
                           categories={"s|fire|1": "fire", "s|gas|1": "gas"},
                           rules={"gas": CategoryRule(reminder_cost=1, miss_cost=4)})
    assert list(out.columns) == DECISION_COLUMNS
    rows = out.set_index("category")
    assert rows.loc["fire", "basis"] == "default" and rows.loc["fire", "n_windows"] == 0
    assert rows.loc["gas", "basis"] == "cost_loss" and rows.loc["gas", "threshold"] == 0.25
