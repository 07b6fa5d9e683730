"""Pooled campaign effects for scorecards and the effect route (issue 14).

Functions that take **campaign-level estimates** (the reports of
:func:`service.evaluation.campaign_effect_report`, one per sent campaign) and return pooled
results; they do not care whether the reports were computed on request or read from
materialised tables.

- :func:`estimate_frame` — one row per campaign with a complete window: its group keys
  (category, region, department, region level, year, season) and the estimates the pooling
  uses (the **calibrated** counterfactual; the DiD with status ``ok``).
- :func:`placebo_correlation` — the within-season correlation of the counterfactual's errors,
  from placebo windows (:func:`service.evaluation.placebo_windows`).
- :func:`calibration_variance` — per category, the variance of the calibration's bias
  correction, which every calibrated campaign of the category shares (seasons as clusters).
- :func:`design_frame` — the stepped-wedge design estimates of randomised waves whose members
  were sent (:mod:`service.campaigns.randomised`).
- :func:`pooled_groups` — per group, the pooled counterfactual, DiD and randomised
  (design) effects (:func:`models.pooling.pool`: random effects, tau², I², MDE, campaigns
  needed for −20 %) and each campaign's contribution (weight).
- :func:`attach_pooled` — adds them to a scorecard dict (``groups[*].pooled``,
  ``total.pooled``, ``campaigns[*].contribution``, top-level ``pooled``).
- :func:`annotate_effect` — the single-campaign report plus its MDE, campaigns needed, the
  dates it becomes measurable and a Chinese reason.

The headline of a group is the randomised (design) estimate when there is one — chance alone
chose who was reminded first, so it is the most credible figure — else the DiD, else the
calibrated counterfactual.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from models.pooling import campaigns_needed, effect_rows, minimum_detectable_effect, pool
from models.pooling_correlation import (
    clustered_mean_variance,
    did_correlation,
    error_correlation,
    group_correlation,
    season_labels,
    shared_covariance,
)
from models.series import SeriesId, monday_of
from models.stepped_wedge import design_effect

__all__ = ["PoolBy", "POOL_BY", "estimate_frame", "placebo_correlation",
           "calibration_variance", "design_frame", "pooled_groups", "attach_pooled",
           "annotate_effect", "pooled_scorecard"]

PoolBy = Literal["category", "region", "department", "region_level", "year"]
POOL_BY = ("category", "region", "department", "region_level", "year")
_NO_DEPARTMENT = "未指定"
_LEVEL_ZH = {"province": "省级", "league": "盟市级", "city": "盟市级", "county": "旗县级"}


def _quantile(p: float, df: float) -> float:
    """Student t quantile on ``df`` degrees of freedom; the normal one when ``df`` is not
    finite (counterfactual estimates; DiD reports stored before the DiD had a ``df``)."""
    return float(stats.t.ppf(p, df) if np.isfinite(df) else stats.norm.ppf(p))


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return v


def estimate_frame(reports: Sequence[Mapping[str, Any]], *,
                   departments: Mapping[str, str | None],
                   region_levels: Mapping[str, str]) -> pd.DataFrame:
    """Campaign-level estimates of complete windows, one row per campaign.

    Parameters
    ----------
    reports : :func:`service.evaluation.campaign_effect_report` outputs (sent campaigns).
    departments : category code -> sector (department); None -> 未指定.
    region_levels : region code -> level.

    Returns
    -------
    DataFrame ``campaign_id, category, region, department, region_level, year, season,
    window_start, window_end`` and ``cf_*`` (calibrated counterfactual: ``actual,
    counterfactual, counterfactual_median, effect_lower_95, effect_upper_95``; NaN when not
    calibrated) and ``did_*`` (``log_effect, placebo_rmse, df, controls``; NaN / empty when
    the DiD is not ``ok``; ``df`` NaN also for reports stored before the DiD had one).
    """
    rows = []
    for r in reports:
        if r.get("evaluation") != "complete":
            continue
        cf = r.get("counterfactual") or {}
        did = r.get("did") or {}
        cal = bool(cf.get("calibrated"))
        ok = did.get("status") == "ok"
        start = pd.Timestamp(r["window_start"])
        rows.append({
            "campaign_id": r["campaign_id"], "category": r["category"], "region": r["region"],
            "department": departments.get(r["category"]) or _NO_DEPARTMENT,
            "region_level": region_levels.get(r["region"], "unknown"),
            "year": int(start.year), "window_start": start,
            "window_end": pd.Timestamp(r["window_end"]),
            **{f"cf_{k}": _num(cf.get(k)) if cal else float("nan")
               for k in ("actual", "counterfactual", "counterfactual_median",
                         "effect_lower_95", "effect_upper_95")},
            "did_log_effect": _num(did.get("log_effect")) if ok else float("nan"),
            "did_placebo_rmse": _num(did.get("placebo_rmse")) if ok else float("nan"),
            "did_df": _num(did.get("df")) if ok else float("nan"),
            "did_controls": list(did.get("controls") or []) if ok else [],
        })
    cols = ["campaign_id", "category", "region", "department", "region_level", "year",
            "window_start", "window_end"]
    f = pd.DataFrame(rows, columns=[*cols, "cf_actual", "cf_counterfactual",
                                    "cf_counterfactual_median", "cf_effect_lower_95",
                                    "cf_effect_upper_95", "did_log_effect",
                                    "did_placebo_rmse", "did_df", "did_controls"])
    f["season"] = season_labels(f["category"], f["window_start"]) if len(f) else []
    return f


def placebo_correlation(placebos: pd.DataFrame) -> float:
    """Within-season correlation of counterfactual errors from placebo windows.

    ``z = log((actual + 0.5) / (counterfactual + 0.5)) / (sd / (counterfactual + 0.5))`` per
    placebo window (a window without a campaign: true effect 0), centred on its category's
    mean (the placebo calibration corrects each category's average bias), grouped by category
    and season (:func:`models.pooling.season_labels`); :func:`models.pooling.error_correlation`.
    """
    need = {"category", "start", "actual", "counterfactual", "counterfactual_sd"}
    if placebos.empty or need - set(placebos.columns):
        return 0.0
    p = placebos[(placebos["counterfactual_sd"] > 0) & (placebos["counterfactual"] > 0)]
    if p.empty:
        return 0.0
    p = _one_per_window(p)
    cf = p["counterfactual"].to_numpy(dtype=float) + 0.5
    z = pd.Series(np.log((p["actual"].to_numpy(dtype=float) + 0.5) / cf) / (
        p["counterfactual_sd"].to_numpy(dtype=float) / cf), index=p.index)
    # the calibration removes each category's average bias: measure the seasons' shared
    # error around it, not the differences between categories
    z = z - z.groupby(p["category"]).transform("mean")
    return error_correlation(z.to_numpy(), season_labels(p["category"], p["start"]))


def calibration_variance(placebos: pd.DataFrame) -> dict[str, float]:
    """Per category, the variance (log scale) of its placebo bias estimate.

    The calibrated counterfactual of every campaign of a category is corrected by the bias
    ratio of the category's placebo windows (:func:`models.effect.placebo_calibration`), so
    all of them share that ratio's error: a pooled estimate cannot average it away, and
    seasons in which the forecast missed in the same direction make it larger than the
    windows' number suggests. Per placebo window (one per real window) ``r = log((actual +
    0.5) / (counterfactual + 0.5))``; the variance of the category's mean ``r`` with the
    windows of one season as a cluster (:func:`models.pooling.clustered_mean_variance`,
    seasons by :func:`models.pooling.season_labels`). Categories with fewer than two seasons
    are left out (no estimate; the pooled interval then relies on the campaigns' own
    errors).
    """
    need = {"category", "start", "actual", "counterfactual"}
    if placebos.empty or need - set(placebos.columns):
        return {}
    p = _one_per_window(placebos[placebos["counterfactual"] > 0])
    if p.empty:
        return {}
    r = np.log((p["actual"].to_numpy(dtype=float) + 0.5)
               / (p["counterfactual"].to_numpy(dtype=float) + 0.5))
    seasons = np.asarray(season_labels(p["category"], p["start"]), dtype=object)
    cats = p["category"].astype(str).to_numpy()
    out: dict[str, float] = {}
    for cat in np.unique(cats):
        mask = cats == cat
        v = clustered_mean_variance(r[mask], seasons[mask])
        if np.isfinite(v):
            out[str(cat)] = v
    return out


def _one_per_window(p: pd.DataFrame) -> pd.DataFrame:
    """One placebo per real window: overlapping windows of a series (several runs predicting
    the same surge share its actual count) collapse to the latest forecast."""
    if "series_id" not in p.columns or "end" not in p.columns:
        return p
    f = p.sort_values(["series_id", "start"])
    prev_end = f.groupby("series_id")["end"].transform(lambda e: e.cummax().shift())
    cluster = (prev_end.isna() | (f["start"] > prev_end)).astype(int).cumsum()
    order = f.assign(_c=cluster.to_numpy())
    if "train_until" in order.columns:
        order = order.sort_values(["_c", "train_until"], ascending=[True, False])
    return order.drop_duplicates("_c").drop(columns="_c")


def design_frame(panel: pd.DataFrame, campaigns: Sequence[Any], *, signal: str,
                 departments: Mapping[str, str | None],
                 region_levels: Mapping[str, str]) -> pd.DataFrame:
    """Design estimates of randomised waves (one row per wave with a usable estimate).

    Parameters
    ----------
    panel : weekly panel of the signal (``unique_id, week, y``).
    campaigns : sent campaigns (objects with ``id, category, region, send_date,
        window_start, timing``); only those with a drawn arm count.

    Returns
    -------
    DataFrame ``wave, category, department, region_level, year, log_effect, se, df,
    n_early, n_delayed, campaign_ids`` (status ``ok`` only).
    """
    waves: dict[str, list[Any]] = {}
    for c in campaigns:
        t = c.timing or {}
        if t.get("design") == "stepped_wedge" and t.get("arm") in ("early", "delayed") \
                and not t.get("excluded"):
            waves.setdefault(str(t.get("wave")), []).append(c)
    rows = []
    for wave, members in waves.items():
        early = [c for c in members if c.timing["arm"] == "early"]
        late = [c for c in members if c.timing["arm"] == "delayed"]
        if not early or not late:
            continue
        e_send, l_send = max(c.send_date for c in early), min(c.send_date for c in late)
        if l_send <= e_send:
            continue
        ids = {str(SeriesId(signal, c.category, c.region)): c for c in members}
        assignment = pd.DataFrame({"unit": list(ids),
                                   "arm": [c.timing["arm"] for c in ids.values()]})
        est = design_effect(panel[panel["unique_id"].isin(list(ids))], assignment,
                            early_send=e_send, delayed_send=l_send)
        if est.status != "ok":
            continue
        first = members[0]
        rows.append({"wave": wave, "category": first.category,
                     "department": departments.get(first.category) or _NO_DEPARTMENT,
                     "region_level": region_levels.get(first.region, "unknown"),
                     "year": int(first.window_start.year), "log_effect": est.log_effect,
                     "se": est.se, "df": est.df, "n_early": est.n_early,
                     "n_delayed": est.n_delayed,
                     "campaign_ids": [c.id for c in members]})
    return pd.DataFrame(rows, columns=["wave", "category", "department", "region_level",
                                       "year", "log_effect", "se", "df", "n_early",
                                       "n_delayed", "campaign_ids"])


def _pooled_dict(rows: pd.DataFrame, corr: np.ndarray[Any, Any] | None,
                 shared: np.ndarray[Any, Any] | None = None) -> dict[str, Any]:
    df = rows["df"].to_numpy(dtype=float) if "df" in rows.columns else None
    p = pool(rows["log_effect"].to_numpy(dtype=float), rows["se"].to_numpy(dtype=float), df,
             correlation=corr, shared=shared)
    d = p.to_dict()
    d.pop("weights")
    d.pop("log_effect")
    d.pop("se")
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
            for k, v in d.items()}


def _key(frame: pd.DataFrame, by: str) -> pd.Series:
    return frame[by].astype(str)


def pooled_groups(frame: pd.DataFrame, by: PoolBy | Literal["total"], *, rho: float = 0.0,
                  design: pd.DataFrame | None = None,
                  bias_variance: Mapping[str, float] | None = None) -> tuple[
                      dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Pooled effects per group and each campaign's contribution.

    Parameters
    ----------
    frame : :func:`estimate_frame`; ``by`` one of its group columns (or ``"total"``).
    rho : within-season error correlation of the counterfactual (:func:`placebo_correlation`).
    design : :func:`design_frame` (randomised waves), pooled separately.
    bias_variance : per category, the variance of the calibration's bias correction
        (:func:`calibration_variance`), shared by the counterfactual estimates of the
        category's campaigns; None: not accounted for.

    Returns
    -------
    (groups, contributions) — ``groups[key] = {counterfactual, did, randomised, headline}``
    (each a pooled estimate dict or None; ``headline`` the method shown first);
    ``contributions[campaign_id] = {method: {weight, relative_effect, relative_lower_95,
    relative_upper_95, mde}}``.
    """
    cf_rows = pd.DataFrame()
    did_rows = pd.DataFrame()
    if len(frame):
        cf_in = frame.rename(columns=lambda c: c[3:] if c.startswith("cf_") else c)
        cf_in = cf_in.drop(columns=[c for c in cf_in.columns if c.startswith("did_")])
        cf_rows = effect_rows(cf_in.dropna(subset=["actual"]), method="counterfactual")
        did_in = frame[frame["did_log_effect"].notna()].rename(columns={
            "did_log_effect": "log_effect", "did_placebo_rmse": "placebo_rmse",
            "did_df": "df"})
        did_rows = effect_rows(did_in, method="did")
    keys: set[str] = set()
    for f in (cf_rows, did_rows, design if design is not None else pd.DataFrame()):
        if len(f) and (by == "total" or by in f.columns):
            keys.update(_key(f, by) if by != "total" else ["total"])
    groups: dict[str, dict[str, Any]] = {}
    contributions: dict[str, dict[str, Any]] = {}
    for key in sorted(keys):
        out: dict[str, Any] = {"counterfactual": None, "did": None, "randomised": None}
        for method, rows in (("counterfactual", cf_rows), ("did", did_rows)):
            g = rows if by == "total" or rows.empty else rows[_key(rows, by) == key]
            if g.empty:
                continue
            shared = None
            if method == "counterfactual":
                corr = group_correlation(g["season"], rho)
                if bias_variance:
                    shared = shared_covariance(g["category"], [
                        bias_variance.get(str(c), 0.0) for c in g["category"]])
            else:
                corr = did_correlation(g["did_controls"].tolist(), list(zip(
                    g["window_start"], g["window_end"], strict=True)))
            out[method] = _pooled_dict(g, corr, shared)
            weights = pool(g["log_effect"].to_numpy(dtype=float),
                           g["se"].to_numpy(dtype=float), correlation=corr,
                           shared=shared).weights
            for (cid, y, s, m, d), w in zip(g[["campaign_id", "log_effect", "se", "mde", "df"]]
                                            .itertuples(index=False), weights, strict=True):
                h = _quantile(0.975, d) * s  # the estimate's own interval (DiD: t on df)
                contributions.setdefault(str(cid), {})[method] = {
                    "weight": float(w), "relative_effect": float(np.expm1(y)),
                    "relative_lower_95": float(np.expm1(y - h)),
                    "relative_upper_95": float(np.expm1(y + h)),
                    "mde": float(m), "campaigns_needed": campaigns_needed(float(s * s))}
        if design is not None and len(design) and (by == "total" or by in design.columns):
            g = design if by == "total" else design[_key(design, by) == key]
            if len(g):
                out["randomised"] = {**_pooled_dict(g, None), "waves": int(len(g))}
        out["headline"] = next((m for m in ("randomised", "did", "counterfactual")
                                if out[m] is not None), None)
        groups[key] = out
    return groups, contributions


def attach_pooled(result: dict[str, Any], frame: pd.DataFrame, *, group_by: str,
                  pooled_by: PoolBy, rho: float, design: pd.DataFrame | None,
                  labels: Mapping[str, str],
                  bias_variance: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Add pooled effects to a scorecard dict (see :func:`service.evaluation.scorecard`).

    ``groups[*].pooled`` (by the scorecard's ``group_by``), ``total.pooled`` (all sent
    campaigns of the period), ``campaigns[*].contribution`` and a top-level ``pooled`` =
    ``{by, rho, groups: [{key, label, counterfactual, did, randomised, headline}]}`` grouped by
    ``pooled_by``. ``labels`` maps a ``pooled_by`` key to its Chinese label.
    """
    gb: PoolBy = {"region": "region", "department": "department"}.get(  # type: ignore[assignment]
        group_by, "category")
    kw: dict[str, Any] = {"rho": rho, "design": design, "bias_variance": bias_variance}
    by_group, contrib = pooled_groups(frame, gb, **kw)
    for g in result.get("groups", []):
        g["pooled"] = by_group.get(str(g["key"]))
    total, _ = pooled_groups(frame, "total", **kw)
    result["total"]["pooled"] = total.get("total")
    for c in result.get("campaigns", []):
        c["contribution"] = contrib.get(str(c["campaign_id"]))
    pooled, _ = pooled_groups(frame, pooled_by, **kw)
    result["pooled"] = {"by": pooled_by, "season_correlation": rho, "groups": [
        {"key": k, "label": labels.get(k, _LEVEL_ZH.get(k, k)), **v}
        for k, v in pooled.items()]}
    return result


# --------------------------------------------------------------------------- one campaign
_REASONS_ZH: tuple[tuple[str, str], ...] = (
    (r"never approved", "该活动未经批准，没有在批准时冻结的预测可作为反事实，无法评估"),
    (r"holds no sample paths",
     "批准时冻结的预测没有该序列的样本路径（可能按另一信号预测），无法评估"),
    (r"lacks window weeks", "批准时冻结的预测未覆盖整个多发期窗口，无法评估"),
    (r"no window week has been fully observed", "窗口内尚无完整一周的数据"),
)


def _reason_zh(report: Mapping[str, Any]) -> str | None:
    reason = str(report.get("reason") or "")
    for pattern, zh in _REASONS_ZH:
        if re.search(pattern, reason):
            return zh
    return None


def annotate_effect(report: dict[str, Any]) -> dict[str, Any]:
    """The single-campaign report with what the dashboard needs besides the numbers.

    Adds ``measurable_from`` (the day after the first window week ends: an interim estimate
    is possible), ``complete_on`` (the day after the window ends), ``reason_zh`` and, to the
    counterfactual and DiD estimates, ``mde`` (smallest reduction detectable at 80 % power)
    and ``campaigns_needed`` (campaigns like this one a pooled estimate needs to detect
    −20 %).
    """
    start = pd.Timestamp(report["window_start"])
    report["measurable_from"] = (monday_of(start) + pd.Timedelta(days=7)).date()
    end = pd.Timestamp(report["window_end"])
    report["complete_on"] = (monday_of(end) + pd.Timedelta(days=7)).date()
    report["reason_zh"] = _reason_zh(report)
    cf = report.get("counterfactual")
    if isinstance(cf, dict):
        rows = effect_rows(pd.DataFrame([cf]), method="counterfactual")
        se = float(rows["se"].iloc[0]) if len(rows) else float("nan")
        cf["mde"] = _finite(minimum_detectable_effect(se))
        cf["campaigns_needed"] = campaigns_needed(se * se) if np.isfinite(se) else None
    did = report.get("did")
    if isinstance(did, dict):
        se = _num(did.get("placebo_rmse")) if did.get("status") == "ok" else float("nan")
        d = _num(did.get("df"))
        did["mde"] = _finite(minimum_detectable_effect(se, df=d if np.isfinite(d) else None))
        did["campaigns_needed"] = campaigns_needed(se * se) if np.isfinite(se) else None
    return report


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def pooled_scorecard(result: dict[str, Any], *, reports: Sequence[Mapping[str, Any]],
                     sent: Sequence[Any], panel: pd.DataFrame, placebos: pd.DataFrame,
                     signal: str, cats: Mapping[str, Any], regs: Mapping[str, Any],
                     group_by: str, pooled_by: PoolBy) -> dict[str, Any]:
    """The one call :func:`service.evaluation.scorecard` makes: estimates of the scorecard's
    sent campaigns (``reports``), placebo correlation, design estimates of randomised waves,
    and the calibration's bias variance, then :func:`attach_pooled`. ``cats`` / ``regs``:
    code -> Category / Region rows."""
    departments = {code: getattr(c, "sector", None) for code, c in cats.items()}
    levels = {code: str(getattr(r, "level", "unknown")) for code, r in regs.items()}
    frame = estimate_frame(reports, departments=departments, region_levels=levels)
    design = design_frame(panel, sent, signal=signal, departments=departments,
                          region_levels=levels)
    labels: dict[str, str] = {}
    if pooled_by == "category":
        labels = {k: c.name_zh for k, c in cats.items()}
    elif pooled_by == "region":
        labels = {k: r.name_zh for k, r in regs.items()}
    elif pooled_by == "year":
        labels = {str(y): f"{y}年" for y in frame["year"].unique()} if len(frame) else {}
    unused = _without(placebos, sent)
    return attach_pooled(result, frame, group_by=group_by, pooled_by=pooled_by,
                         rho=placebo_correlation(unused), design=design, labels=labels,
                         bias_variance=calibration_variance(unused))


def _without(placebos: pd.DataFrame, sent: Sequence[Any]) -> pd.DataFrame:
    """Placebo candidates that overlap (±7 days) no sent campaign of their series."""
    if placebos.empty or not sent:
        return placebos
    margin = pd.Timedelta(days=7)
    keep = np.ones(len(placebos), dtype=bool)
    starts = pd.to_datetime(placebos["start"])
    ends = pd.to_datetime(placebos["end"])
    for c in sent:
        hit = ((placebos["category"] == c.category) & (placebos["region"] == c.region)
               & (starts <= pd.Timestamp(c.window_end) + margin)
               & (ends >= pd.Timestamp(c.window_start) - margin))
        keep &= ~hit.to_numpy()
    return placebos[keep]
