"""Decision thresholds learned from history (DESIGN.md "Decision threshold").

A forecast run does not warn at one constant ``p_min``: for every category it learns the
weekly ``P(spike)`` at which a week belongs to a warning window from rolling-origin backtests
on data before the run's cut-off only (:func:`decision_origins`), as early-warning systems
choose each district's alarm threshold on a run-in period:

- by default the value of :data:`DEFAULT_GRID` that maximises the campaign-level F-beta
  (:func:`models.scoring.event_scores`; β per category, default 1) of the backtest windows,
  on a lightly smoothed curve (the mean of each grid point and its neighbours), ties to the
  higher threshold (fewer campaigns for the same score);
- where a category sets ``reminder_cost`` and ``miss_cost``, the cost/loss rule: act when
  ``P >= reminder_cost / miss_cost`` (FIELD-NOTES), reported with its backtest scores;
- a category with fewer than ``min_windows`` eligible actual windows in the backtest uses the
  threshold learned over all categories together (``basis = "pooled"``), and says so;
- with no backtest evidence at all, ``fallback`` (``basis = "default"``);
- with the thresholds, one *open factor* for the run (:mod:`models.hysteresis`): a window
  opens only where P reaches a higher level than the threshold it continues at, the factor
  from :data:`~models.hysteresis.DEFAULT_OPEN_FACTORS` whose learned thresholds give the best
  campaign-level F1 on the same backtests (1, no hysteresis, unless another is better).

The result is one row per category with the evidence (origins, windows, campaigns, recall,
precision, F-beta, in time) that the service stores on the run and shows with every peak and
campaign (:func:`describe`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.hysteresis import (
    DEFAULT_OPEN_FACTOR,
    DEFAULT_OPEN_FACTORS,
    open_probability,
    opened_windows,
)
from models.peaks import DEFAULT_MAX_CAMPAIGN_WEEKS, DEFAULT_P_MIN
from models.scoring import campaign_windows, event_scores, event_scores_by, f_beta
from models.series import sunday_on_or_before

__all__ = [
    "DEFAULT_GRID",
    "DEFAULT_MIN_WINDOWS",
    "ANCHOR_EPOCH",
    "DECISION_COLUMNS",
    "CategoryRule",
    "decision_origins",
    "learn_thresholds",
    "pinned_thresholds",
    "series_thresholds",
    "series_open_factors",
    "describe",
]

DEFAULT_GRID: tuple[float, ...] = (0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25,
                                   0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7)
DEFAULT_MIN_WINDOWS = 8
DECISION_COLUMNS = ["category", "threshold", "objective", "basis", "beta", "cost_loss",
                    "n_series", "n_windows", "n_campaigns", "recall", "precision", "f1",
                    "f_beta", "in_time", "origins", "open_factor"]


@dataclass(frozen=True)
class CategoryRule:
    """How a category's warnings are judged (from ``categories.yaml``).

    ``beta`` weighs recall against precision in F-beta (2 = a missed spike costs as much as
    four idle campaigns); ``reminder_cost`` and ``miss_cost`` (any unit, both set) switch the
    objective to the cost/loss rule; ``max_campaign_weeks`` caps a campaign window.
    """

    beta: float = 1.0
    reminder_cost: float | None = None
    miss_cost: float | None = None
    max_campaign_weeks: int = DEFAULT_MAX_CAMPAIGN_WEEKS

    @property
    def cost_loss(self) -> float | None:
        if self.reminder_cost is None or self.miss_cost is None or self.miss_cost <= 0:
            return None
        return float(min(max(self.reminder_cost / self.miss_cost, 0.0), 1.0))


#: Sunday from which anchored origins are counted (:func:`decision_origins`).
ANCHOR_EPOCH = pd.Timestamp("1970-01-04")


def decision_origins(cutoff: pd.Timestamp, first_day: pd.Timestamp, *, horizon_weeks: int,
                     span_weeks: int = 104, min_history_weeks: int = 52,
                     max_origins: int = 2, anchor_weeks: int = 0) -> list[pd.Timestamp]:
    """Backtest origins for learning a run's thresholds: Sundays ``horizon_weeks`` apart over
    the last ``span_weeks`` before ``cutoff``, newest last, each with a full horizon of
    complete weeks before ``cutoff`` and at least ``min_history_weeks`` of history (so that
    its spike thresholds exist). At most ``max_origins``; may be empty.

    ``anchor_weeks > 0`` puts the newest origin on a fixed grid of Sundays that many weeks
    apart (counted from :data:`ANCHOR_EPOCH`), so that runs whose cut-offs differ by less
    than that share their origins (and can reuse their backtests)."""
    cutoff = pd.Timestamp(cutoff).normalize()
    last = sunday_on_or_before(cutoff - pd.Timedelta(weeks=horizon_weeks))
    if anchor_weeks > 0:
        weeks = (last - ANCHOR_EPOCH).days // 7
        last -= pd.Timedelta(weeks=weeks % int(anchor_weeks))
    earliest = max(cutoff - pd.Timedelta(weeks=span_weeks, days=6),
                   pd.Timestamp(first_day).normalize() + pd.Timedelta(weeks=min_history_weeks))
    out: list[pd.Timestamp] = []
    o = last
    while o >= earliest and len(out) < max_origins:
        out.append(o)
        o -= pd.Timedelta(weeks=horizon_weeks)
    return sorted(out)


def _rules(categories: Iterable[str], rules: Mapping[str, CategoryRule]) -> dict[str, CategoryRule]:
    return {c: rules.get(c, CategoryRule()) for c in categories}


def _smoothed_argmax(grid: Sequence[float], values: Sequence[float]) -> int | None:
    v = np.asarray(values, dtype=float)
    if not np.isfinite(v).any():
        return None
    filled = np.where(np.isfinite(v), v, 0.0)
    padded = np.r_[filled[0], filled, filled[-1]]
    smooth = (padded[:-2] + padded[1:-1] + padded[2:]) / 3.0
    best = smooth.max()
    return int(np.flatnonzero(np.isclose(smooth, best))[-1])  # ties: the higher threshold


def learn_thresholds(
    weekly: pd.DataFrame,
    actual: pd.DataFrame,
    *,
    categories: Mapping[str, str],
    rules: Mapping[str, CategoryRule] | None = None,
    grid: Sequence[float] = DEFAULT_GRID,
    min_windows: int = DEFAULT_MIN_WINDOWS,
    lead_days: int = 14,
    tolerance_days: int = 7,
    fallback: float = DEFAULT_P_MIN,
    score: str = "p_spike",
    open_factors: Sequence[float] = DEFAULT_OPEN_FACTORS,
) -> pd.DataFrame:
    """Learn one decision threshold per category, and the run's open factor, from a backtest
    before the cut-off.

    Parameters
    ----------
    weekly : the backtest's weekly frame ``cutoff, unique_id, week, expected, threshold, y,
        spike`` and the ``score`` column (:attr:`models.backtest.BacktestResult.weekly` of one
        model); every week must be complete before the run's cut-off.
    actual : the backtest's actual windows ``cutoff, unique_id, start, end, eligible``.
    categories : ``unique_id -> category`` for every series to decide for (also those
        without backtest rows: they get their category's or the pooled threshold).
    rules : per-category :class:`CategoryRule` (β, cost/loss, campaign length).
    grid : candidate thresholds.
    min_windows : fewest eligible actual windows for a category's own threshold.
    fallback : threshold when there is no backtest evidence at all.
    open_factors : candidate open factors (:mod:`models.hysteresis`; ``(1.0,)`` = none). For
        each, the thresholds are learned as above; the factor kept is the one whose
        thresholds give the best campaign-level F1 over all learned categories together
        (ties: the smaller factor). Cost/loss, default and pinned categories keep factor 1.

    Returns
    -------
    DataFrame with :data:`DECISION_COLUMNS`, one row per category: ``objective`` is
    ``"f_beta"`` or ``"cost_loss"``; ``basis`` ``"category"``, ``"pooled"``, ``"cost_loss"``
    or ``"default"``; scores are those of the backtest at the chosen threshold and factor
    (pooled over all categories for ``basis = "pooled"``); ``origins`` lists the backtest
    cut-offs; ``open_factor`` the factor the windows open with.
    """
    uid_cat = pd.Series(categories, dtype=object)
    weekly = weekly[weekly["unique_id"].isin(uid_cat.index)]
    actual = actual[actual["unique_id"].isin(uid_cat.index)]
    rule = _rules(sorted(set(categories.values())), rules or {})
    max_weeks = uid_cat.map(lambda c: rule[c].max_campaign_weeks)
    # the windows of every threshold once; each factor keeps those that open
    at_p = {p: campaign_windows(weekly, p_min=p, max_weeks=max_weeks, score=score)
            for p in grid}
    best: tuple[float, float, pd.DataFrame] | None = None
    candidates = sorted({float(f) for f in open_factors} or {DEFAULT_OPEN_FACTOR})
    for k in candidates:  # ascending: a tie keeps the smaller factor
        opened = {p: opened_windows(w, k) for p, w in at_p.items()}
        table = _learn_at(weekly, actual, opened, uid_cat=uid_cat, rule=rule, grid=grid,
                          max_weeks=max_weeks, min_windows=min_windows, lead_days=lead_days,
                          tolerance_days=tolerance_days, fallback=fallback, score=score)
        if table.empty:
            return pd.DataFrame(columns=DECISION_COLUMNS)
        mask = (table["objective"] == "f_beta") & (table["basis"] != "default")
        learned = table[mask].set_index("category")["threshold"]
        if len(candidates) > 1 and not learned.empty:
            # each series' windows at its category's learned threshold (a grid value)
            mine = uid_cat[uid_cat.isin(learned.index)]
            pred = pd.concat([w[w["unique_id"].map(uid_cat) == c]
                              for c, w in ((c, opened[float(p)]) for c, p in learned.items())],
                             ignore_index=True)
            f1 = event_scores(pred, actual[actual["unique_id"].isin(mine.index)],
                              lead_days=lead_days, tolerance_days=tolerance_days)["f1"]
        else:
            f1 = 0.0
        f1 = f1 if np.isfinite(f1) else 0.0
        if best is None or f1 > best[0] + 1e-9:
            best = (f1, k, table)
    assert best is not None
    _, k, out = best
    out["open_factor"] = np.where(out["objective"] == "f_beta", k, DEFAULT_OPEN_FACTOR)
    out.loc[out["basis"] == "default", "open_factor"] = DEFAULT_OPEN_FACTOR
    return out.reindex(columns=DECISION_COLUMNS).reset_index(drop=True)


def _learn_at(weekly: pd.DataFrame, actual: pd.DataFrame, windows: Mapping[float, pd.DataFrame],
              *, uid_cat: pd.Series, rule: Mapping[str, CategoryRule], grid: Sequence[float],
              max_weeks: pd.Series, min_windows: int, lead_days: int, tolerance_days: int,
              fallback: float, score: str) -> pd.DataFrame:
    """The per-category rows of :func:`learn_thresholds` for one open factor, whose campaign
    windows at each threshold of ``grid`` are ``windows[p]``."""
    cats = sorted(rule)
    origins = [pd.Timestamp(c).date().isoformat() for c in sorted(set(weekly["cutoff"]))]
    n_series = uid_cat.groupby(uid_cat).size()
    act_cat = actual["unique_id"].map(uid_cat)

    # counts per (threshold, category) once; F-beta for any beta follows from the counts
    table: dict[tuple[float, str | None], dict[str, float]] = {}
    for p in grid:
        by = event_scores_by(windows[p], actual, groups=uid_cat, lead_days=lead_days,
                             tolerance_days=tolerance_days)  # windows matched once
        table[(p, None)] = by[None]
        for c in cats:
            table[(p, c)] = by[c]

    def best(c: str | None, beta: float) -> tuple[float, dict[str, float]] | None:
        curve = [f_beta(table[(p, c)]["recall"], table[(p, c)]["precision"], beta)
                 for p in grid]
        i = _smoothed_argmax(grid, curve)
        if i is None:
            return None
        chosen = dict(table[(grid[i], c)])
        chosen["f_beta"] = f_beta(chosen["recall"], chosen["precision"], beta)
        return float(grid[i]), chosen

    rows: list[dict[str, Any]] = []
    for c in cats:
        r = rule[c]
        base: dict[str, Any] = {"category": c, "beta": float(r.beta), "cost_loss": r.cost_loss,
                                "n_series": int(n_series.get(c, 0)), "origins": origins}
        own_windows = float(table[(grid[0], c)]["n_actual"]) if grid else 0.0
        if r.cost_loss is not None:
            s = event_scores(campaign_windows(weekly[weekly["unique_id"].map(uid_cat) == c],
                                              p_min=r.cost_loss, max_weeks=max_weeks,
                                              score=score),
                             actual[act_cat == c], lead_days=lead_days,
                             tolerance_days=tolerance_days, beta=r.beta)
            rows.append({**base, "threshold": r.cost_loss, "objective": "cost_loss",
                         "basis": "cost_loss", **s})
            continue
        found = best(c, r.beta) if own_windows >= min_windows else None
        basis = "category"
        if found is None:
            found, basis = best(None, r.beta), "pooled"
        if found is None:
            rows.append({**base, "threshold": float(fallback), "objective": "f_beta",
                         "basis": "default", "n_actual": own_windows})
            continue
        p, s = found
        rows.append({**base, "threshold": p, "objective": "f_beta", "basis": basis, **s})
    return pd.DataFrame(rows).rename(columns={"n_actual": "n_windows",
                                              "n_predicted": "n_campaigns"})


def pinned_thresholds(categories: Iterable[str], p_min: float,
                      rules: Mapping[str, CategoryRule] | None = None) -> pd.DataFrame:
    """The decision frame of a deployment that pins one threshold (``FOREWARN_FORECAST__P_MIN``):
    no backtest evidence, ``basis = "pinned"``."""
    rule = _rules(sorted(set(categories)), rules or {})
    return pd.DataFrame([{"category": c, "threshold": float(p_min), "objective": "pinned",
                          "basis": "pinned", "beta": r.beta, "cost_loss": r.cost_loss,
                          "origins": [], "open_factor": DEFAULT_OPEN_FACTOR}
                         for c, r in rule.items()],
                        columns=DECISION_COLUMNS)


def series_thresholds(decisions: pd.DataFrame, categories: Mapping[str, str]) -> pd.Series:
    """``unique_id -> threshold`` from a decision frame (one row per category)."""
    by_cat = decisions.set_index("category")["threshold"]
    return pd.Series({u: float(by_cat[c]) for u, c in categories.items() if c in by_cat},
                     dtype=float)


def series_open_factors(decisions: pd.DataFrame, categories: Mapping[str, str]) -> pd.Series:
    """``unique_id -> open factor`` from a decision frame (1 where it has none)."""
    col = (decisions["open_factor"] if "open_factor" in decisions
           else pd.Series(DEFAULT_OPEN_FACTOR, index=decisions.index))
    by_cat = pd.Series(col.to_numpy(dtype=float), index=decisions["category"]).fillna(
        DEFAULT_OPEN_FACTOR)
    return pd.Series({u: float(by_cat[c]) for u, c in categories.items() if c in by_cat},
                     dtype=float)


def _pct(v: Any) -> str:
    return "n/a" if v is None or not np.isfinite(float(v)) else f"{100 * float(v):.0f} %"


def describe(row: Mapping[Any, Any], *, language: str = "en") -> str:
    """The decision of one category in plain words (English or Chinese)."""
    p = float(row["threshold"])
    basis = row.get("basis")
    origins = list(row.get("origins") or [])
    span = (f"{origins[0]}" if len(origins) == 1 else f"{origins[0]} … {origins[-1]}"
            ) if origins else ""
    raw_k = row.get("open_factor")
    k = DEFAULT_OPEN_FACTOR if raw_k is None or pd.isna(raw_k) else float(raw_k)
    q = float(open_probability(p, k))
    if language.startswith("zh"):
        if basis == "pinned":
            return f"当 P(高发) ≥ {p:.2f} 时预警（部署固定的阈值，未经回测学习）。"
        if basis == "default":
            return f"当 P(高发) ≥ {p:.2f} 时预警（历史不足，无法回测，使用默认值）。"
        head = f"当 P(高发) ≥ {p:.2f} 时预警"
        why = ("（成本/损失规则：提醒成本 ÷ 漏报损失）" if basis == "cost_loss" else
               "（按全部类别合并学习：本类别回测窗口不足）" if basis == "pooled" else
               f"（使 F{row.get('beta', 1):g} 最大的阈值）")
        opens = (f"预警窗口须有一周 P(高发) 达到 {q:.2f} 才开启（开启系数 {k:g}，同样由回测"
                 f"学习），开启后 P ≥ {p:.2f} 的各周都在窗口内。" if k > 1 else "")
        return (f"{head}{why}：在截止日前 {len(origins)} 次回测（{span}）中，覆盖了 "
                f"{_pct(row.get('recall'))} 的高发窗口，{_pct(row.get('precision'))} 的宣传活动"
                f"对应真实高发。{opens}")
    if basis == "pinned":
        return f"Warns when P(spike) ≥ {p:.2f} (a threshold pinned by the deployment, not learned)."
    if basis == "default":
        return (f"Warns when P(spike) ≥ {p:.2f} (the default: too little history for a "
                f"backtest).")
    why = ("the cost/loss rule: reminder cost ÷ cost of a missed spike" if basis == "cost_loss"
           else "learned over all categories: too few backtest windows in this one"
           if basis == "pooled" else f"the threshold that maximised F{row.get('beta', 1):g}")
    opens = (f" A window opens only where P reaches {q:.2f} (open factor {k:g}, learned on the "
             f"same backtests) and then holds every week with P ≥ {p:.2f}." if k > 1 else "")
    return (f"Warns when P(spike) ≥ {p:.2f} ({why}). On {len(origins)} backtest(s) before the "
            f"cut-off ({span}) it caught {_pct(row.get('recall'))} of the spike windows and "
            f"{_pct(row.get('precision'))} of its campaigns met a real spike.{opens}")
