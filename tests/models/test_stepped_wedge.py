"""Randomised reminder timing: the seeded assignment and the design estimator (coverage on
simulated stepped-wedge panels; ``bench/effect.py --design`` runs more replications)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.effect_sim import simulate_stepped_wedge
from models.stepped_wedge import assign_arms, design_effect


def test_assignment_is_reproducible_from_its_seed_and_order_free() -> None:
    units = [f"r{i}" for i in range(7)]
    a = assign_arms(units, seed=42)
    b = assign_arms(list(reversed(units)), seed=42)
    pd.testing.assert_frame_equal(a, b)
    assert list(a["unit"]) == sorted(units)
    assert (a["arm"] == "delayed").sum() == 4 and (a["arm"] == "early").sum() == 3  # round(3.5)
    seen = {tuple(assign_arms(units, seed=s)["arm"]) for s in range(30)}
    assert len(seen) > 5  # the seed matters
    two = assign_arms(["x", "y"], seed=1, delayed_share=0.9)
    assert sorted(two["arm"]) == ["delayed", "early"]  # one in each arm at least
    with pytest.raises(ValueError, match="at least 2"):
        assign_arms(["x"], seed=1)
    with pytest.raises(ValueError, match="repeat"):
        assign_arms(["x", "x"], seed=1)


def _panel(values: dict[str, list[float]], start: str = "2025-01-06") -> pd.DataFrame:
    weeks = pd.date_range(start, periods=len(next(iter(values.values()))), freq="7D")
    return pd.DataFrame([{"unique_id": u, "week": w, "y": y}
                         for u, ys in values.items() for w, y in zip(weeks, ys, strict=True)])


def test_design_effect_matches_hand_computation() -> None:
    # weeks: 2025-01-06, -13, -20 (pre), -27, 02-03 (step), 02-10 (after the delayed send)
    vals = {"a": [10, 10, 6, 8, 9], "b": [20, 20, 14, 12, 5], "c": [10, 10, 12, 10, 3],
            "d": [30, 30, 29, 33, 7]}
    assignment = pd.DataFrame({"unit": ["a", "b", "c", "d"],
                               "arm": ["early", "early", "delayed", "delayed"]})
    # early send Wednesday 2025-01-22: the week of 01-20 is neither pre nor step
    est = design_effect(_panel({k: [*v[:2], 99.0, *v[2:]] for k, v in vals.items()}),
                        assignment, early_send="2025-01-22", delayed_send="2025-02-10",
                        pre_weeks=2)
    assert est.status == "ok"
    assert [w.date().isoformat() for w in est.step_weeks] == ["2025-01-27", "2025-02-03"]
    assert [w.date().isoformat() for w in est.pre_weeks] == ["2025-01-06", "2025-01-13"]

    def d(pre: list[float], step: list[float]) -> float:
        return float(np.log(np.mean(step) + 0.5) - np.log(np.mean(pre) + 0.5))

    de = [d([10, 10], [6, 8]), d([20, 20], [14, 12])]
    dd = [d([10, 10], [12, 10]), d([30, 30], [29, 33])]
    assert est.log_effect == pytest.approx(np.mean(de) - np.mean(dd))
    ve, vd = np.var(de, ddof=1) / 2, np.var(dd, ddof=1) / 2
    assert est.se == pytest.approx(np.sqrt(ve + vd))
    df = (ve + vd) ** 2 / (ve**2 + vd**2)
    assert est.df == pytest.approx(df)
    h = stats.t.ppf(0.975, df) * est.se
    assert est.relative_upper_95 == pytest.approx(np.expm1(est.log_effect + h))
    assert est.unit_changes is not None and est.unit_changes["a"] == pytest.approx(de[0])
    assert est.relative_effect < 0 and est.mde < 0


def test_design_effect_states() -> None:
    vals = {"a": [10.0] * 5, "b": [10.0] * 5, "c": [10.0, 10, 10, 10, 10]}
    one_each = pd.DataFrame({"unit": ["a", "b"], "arm": ["early", "delayed"]})
    est = design_effect(_panel(vals), one_each, early_send="2025-01-20",
                        delayed_send="2025-02-03", pre_weeks=2)
    assert est.status == "no_interval" and "2 regions in each arm" in str(est.reason)
    assert est.relative_effect == pytest.approx(0.0)
    none = design_effect(_panel(vals), one_each, early_send="2025-01-22",
                         delayed_send="2025-01-27", pre_weeks=2)
    assert none.status == "unavailable" and "no whole week" in str(none.reason)
    with pytest.raises(ValueError, match="after early_send"):
        design_effect(_panel(vals), one_each, early_send="2025-01-20",
                      delayed_send="2025-01-20")
    with pytest.raises(ValueError, match="unknown arm"):
        design_effect(_panel(vals), one_each.assign(arm="late"), early_send="2025-01-20",
                      delayed_send="2025-02-03")


@pytest.mark.parametrize("effect", [0.0, -0.3])
def test_design_interval_covers_the_planted_effect(effect: float) -> None:
    reps = 80
    covered = significant = 0
    for seed in range(reps):
        sim = simulate_stepped_wedge(seed=500 + seed, effect=effect)
        est = design_effect(sim.weekly(), sim.assignment, early_send=sim.early_send,
                            delayed_send=sim.delayed_send)
        assert est.status == "ok" and est.n_early == 4 and est.n_delayed == 4
        covered += est.relative_lower_95 <= effect <= est.relative_upper_95
        significant += est.significant
    assert covered / reps >= 0.88  # nominal 0.95 (bench: 0.93-0.97 over 1,000 reps)
    if effect == 0:
        assert significant / reps <= 0.12
    else:
        assert significant / reps >= 0.3
