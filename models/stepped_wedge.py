"""Randomised reminder timing (a two-step stepped-wedge design) and its design estimator.

Among the regions of one predicted window that a department lets the planner randomise, a
seeded draw (:func:`assign_arms`) decides which get the reminder at the planned lead
(``early``) and which a fixed number of weeks later (``delayed``). Every region is reminded;
nobody is denied guidance. For the weeks between the two send dates the early regions have
had the reminder and the delayed ones not yet: chance alone decided which, so comparing them is
free of the selection that burdens every observational estimate (a window is planned where the
forecast runs high).

:func:`design_effect` is the design's own estimator, a cluster-level analysis of a
cluster-randomised comparison (Hayes & Moulton, *Cluster Randomised Trials*, ch. 9): per
region ``d = log(mean weekly count in the step weeks + 0.5) - log(mean weekly count in the pre
weeks + 0.5)``; the effect is ``mean(d | early) - mean(d | delayed)`` (a log rate ratio), with
a Welch t interval. Shocks shared by the regions (weather, news, the season's ramp) cancel; a
region's own level cancels in ``d``.

Estimand: the effect of having been reminded on the weekly count in the weeks right after the
reminder, before the predicted window — not the effect inside the window, where both groups
have been reminded. It is the one contrast the design randomises; the counterfactual and DiD
estimates of the window's own effect rest on assumptions this one does not need.

Weeks are ISO weeks labelled by their Monday. *Step weeks* are the weeks that start on or after
the early send date and end before the delayed send date; *pre weeks* the ``pre_weeks`` weeks
that end before the early send date.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from models._estimate import IntervalEstimate
from models._weeks import week_index
from models.pooling import minimum_detectable_effect
from models.series import monday_of
from models.types import require_columns

__all__ = ["ARMS", "DesignEstimate", "DesignStatus", "assign_arms", "design_effect"]

ARMS = ("early", "delayed")
DesignStatus = Literal["ok", "no_interval", "unavailable"]
_OFFSET = 0.5


def assign_arms(units: Sequence[str], *, seed: int, delayed_share: float = 0.5) -> pd.DataFrame:
    """Randomise ``units`` (regions) to the ``early`` or the ``delayed`` arm.

    Parameters
    ----------
    units : the eligible regions of one window (order does not matter: they are sorted first,
        so the same seed and units always give the same assignment).
    seed : the seed recorded with the assignment (``numpy.random.default_rng(seed)``).
    delayed_share : share of units delayed (rounded; at least one in each arm).

    Returns
    -------
    DataFrame ``unit, arm`` sorted by unit.

    Raises
    ------
    ValueError
        Fewer than 2 distinct units, duplicated units, or a share outside (0, 1).
    """
    names = sorted(str(u) for u in units)
    if len(set(names)) != len(names):
        raise ValueError("units repeat")
    if len(names) < 2:
        raise ValueError("randomising needs at least 2 units")
    if not 0 < delayed_share < 1:
        raise ValueError("delayed_share must be in (0, 1)")
    n_delayed = int(min(max(round(len(names) * delayed_share), 1), len(names) - 1))
    rng = np.random.default_rng(int(seed))
    delayed = set(rng.permutation(len(names))[:n_delayed].tolist())
    return pd.DataFrame({"unit": names,
                         "arm": ["delayed" if i in delayed else "early"
                                 for i in range(len(names))]})


@dataclass(frozen=True)
class DesignEstimate(IntervalEstimate):
    """Stepped-wedge design estimate for one randomised window.

    Attributes
    ----------
    status : ``ok``; ``no_interval`` (fewer than 2 regions in an arm: a point estimate only);
        ``unavailable`` (no step week or no pre week observed: see ``reason``).
    reason : why the status is not ``ok``.
    n_early, n_delayed : regions in each arm with data.
    step_weeks, pre_weeks : the weeks used (Mondays).
    log_effect, se, df : the log rate ratio, its Welch standard error and degrees of freedom.
    relative_effect, relative_lower_95, ..., relative_upper_80 : ``exp(.) - 1``.
    p_value : two-sided Welch t-test of no effect.
    mde : :func:`models.pooling.minimum_detectable_effect` of this estimate.
    unit_changes : ``{unit: d}`` (log change step vs pre) per region.
    """

    status: DesignStatus
    reason: str | None
    n_early: int = 0
    n_delayed: int = 0
    step_weeks: tuple[pd.Timestamp, ...] = ()
    pre_weeks: tuple[pd.Timestamp, ...] = ()
    log_effect: float = float("nan")
    se: float = float("nan")
    df: float = float("nan")
    relative_effect: float = float("nan")
    relative_lower_95: float = float("nan")
    relative_upper_95: float = float("nan")
    relative_lower_80: float = float("nan")
    relative_upper_80: float = float("nan")
    p_value: float = float("nan")
    mde: float = float("nan")
    unit_changes: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (weeks as lists, ``unit_changes`` a dict even when absent) plus
        ``significant``."""
        d = super().to_dict()
        d["unit_changes"] = dict(self.unit_changes or {})
        return d


def design_effect(
    panel: pd.DataFrame,
    assignment: pd.DataFrame,
    *,
    early_send: Any,
    delayed_send: Any,
    pre_weeks: int = 8,
) -> DesignEstimate:
    """The design estimator of one randomised window (see the module notes).

    Parameters
    ----------
    panel : weekly counts ``unique_id, week, y`` (week = Monday) of the window's regions.
    assignment : ``unit, arm`` (:func:`assign_arms`; ``unit`` is the panel's ``unique_id``).
    early_send, delayed_send : the two send dates (the delayed one later).
    pre_weeks : weeks before the early send that form the baseline.

    Returns
    -------
    DesignEstimate

    Raises
    ------
    ValueError
        Missing columns, an unknown arm, or ``delayed_send`` not after ``early_send``.
    """
    require_columns(panel, ("unique_id", "week", "y"), "panel")
    require_columns(assignment, ("unit", "arm"), "assignment")
    bad = sorted(set(assignment["arm"]) - set(ARMS))
    if bad:
        raise ValueError(f"unknown arm(s) {bad}; arms are {ARMS}")
    early, late = pd.Timestamp(early_send).normalize(), pd.Timestamp(delayed_send).normalize()
    if late <= early:
        raise ValueError("delayed_send must be after early_send")
    if pre_weeks < 1:
        raise ValueError("pre_weeks must be >= 1")
    first_step = monday_of(early) + pd.Timedelta(weeks=int(early.day_of_week != 0))
    step = pd.date_range(first_step, late - pd.Timedelta(days=7), freq="7D", unit="ns")
    pre = pd.date_range(monday_of(early) - pd.Timedelta(weeks=pre_weeks), periods=pre_weeks,
                        freq="7D", unit="ns")
    base: dict[str, Any] = {"step_weeks": tuple(step), "pre_weeks": tuple(pre)}
    if len(step) == 0:
        return DesignEstimate(status="unavailable", reason=(
            f"no whole week lies between the send dates {early.date()} and {late.date()}"),
            **base)
    arms: dict[str, str] = dict(zip(assignment["unit"].astype(str), assignment["arm"],
                                    strict=True))
    changes = _unit_changes(panel, arms, step, pre)
    d_e = np.array([v for u, v in changes.items() if arms[u] == "early"])
    d_d = np.array([v for u, v in changes.items() if arms[u] == "delayed"])
    base.update(n_early=int(d_e.size), n_delayed=int(d_d.size), unit_changes=changes)
    if d_e.size == 0 or d_d.size == 0:
        return DesignEstimate(status="unavailable", reason=(
            f"an arm has no region with every step and pre week observed (early {d_e.size}, "
            f"delayed {d_d.size})"), **base)
    est = float(d_e.mean() - d_d.mean())
    rel = float(np.expm1(est))
    if d_e.size < 2 or d_d.size < 2:
        return DesignEstimate(status="no_interval", reason=(
            f"an interval needs 2 regions in each arm (early {d_e.size}, delayed "
            f"{d_d.size})"), log_effect=est, relative_effect=rel, **base)
    se, df = _welch(d_e, d_d)
    if se == 0:
        return DesignEstimate(status="no_interval", reason="no variation between regions",
                              log_effect=est, relative_effect=rel, **base)
    bounds: dict[str, Any] = {}
    for level in (0.95, 0.8):
        h = float(stats.t.ppf(0.5 + level / 2, df)) * se
        tag = int(level * 100)
        bounds[f"relative_lower_{tag}"] = float(np.expm1(est - h))
        bounds[f"relative_upper_{tag}"] = float(np.expm1(est + h))
    return DesignEstimate(status="ok", reason=None, log_effect=est, se=se, df=df,
                          relative_effect=rel, **bounds,
                          p_value=float(2 * stats.t.sf(abs(est) / se, df)),
                          mde=minimum_detectable_effect(se, df=df), **base)


def _unit_changes(panel: pd.DataFrame, arms: dict[str, str], step: pd.DatetimeIndex,
                  pre: pd.DatetimeIndex) -> dict[str, float]:
    """Each assigned unit's log change, step weeks' mean against pre weeks' mean (offset by
    ``_OFFSET``); units missing from the panel or missing any of those weeks are left out."""
    wide = pd.DataFrame({"unit": panel["unique_id"].astype(str).to_numpy(),
                         "week": week_index(pd.Index(panel["week"])),
                         "y": pd.to_numeric(panel["y"], errors="coerce").to_numpy(dtype=float)}
                        ).pivot_table(index="week", columns="unit", values="y", aggfunc="sum")
    changes: dict[str, float] = {}
    for unit in arms:
        if unit not in wide.columns:
            continue
        s, p = wide[unit].reindex(step), wide[unit].reindex(pre)
        if s.isna().any() or p.isna().any():
            continue
        changes[unit] = float(np.log(s.mean() + _OFFSET) - np.log(p.mean() + _OFFSET))
    return changes


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Standard error of ``mean(a) - mean(b)`` with unequal variances, and its
    Welch-Satterthwaite degrees of freedom (NaN when the error is 0); 2+ values each."""
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = float(np.sqrt(va + vb))
    if se == 0:
        return 0.0, float("nan")
    return se, float((va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)))
