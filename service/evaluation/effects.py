"""The effect of one campaign: frozen counterfactual (calibrated on placebos) and DiD."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.effect import campaign_effect, counterfactual_frame, did_effect, window_weeks
from models.placebo import Calibration
from models.series import SeriesId
from service.campaigns.tables import Campaign
from service.errors import NotFound
from service.evaluation.common import (
    _CONTROL_GAP_DAYS,
    COMMITTED_STATUSES,
    MIN_PLACEBOS,
    PLACEBO_LOOKBACK_DAYS,
    SENT_STATUSES,
    _campaign_signal,
    _clean,
    _load_samples,
    _num,
    _series_id,
    weekly_panel,
)
from service.evaluation.placebos import _committed_windows, campaign_calibration, placebo_windows
from service.store.tables import ForecastRun, Region


def _observed_weeks(actual: pd.Series, weeks: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return weeks[actual.reindex(weeks).notna().to_numpy()]


def _control_regions(session: Session, c: Campaign) -> tuple[set[str], list[tuple[Any, Any]]]:
    """Regions disqualified as controls and the treated region's other campaign windows."""
    region = session.get(Region, c.region)
    related = {c.region}
    if region is not None and region.parent:
        related.add(region.parent)
    related.update(session.scalars(select(Region.code).where(Region.parent == c.region)))
    lo = c.window_start - dt.timedelta(days=_CONTROL_GAP_DAYS)
    busy = session.scalars(select(Campaign.region).where(
        Campaign.category == c.category, Campaign.id != c.id,
        Campaign.status.in_(COMMITTED_STATUSES),
        Campaign.window_start <= c.window_end, Campaign.window_end >= lo)).all()
    own = session.execute(select(Campaign.window_start, Campaign.window_end).where(
        Campaign.category == c.category, Campaign.region == c.region, Campaign.id != c.id,
        Campaign.status.in_(SENT_STATUSES))).all()
    return related | set(busy), [(a, b) for a, b in own]


def campaign_effect_report(
    *,
    session: Session,
    campaign_id: str,
    signal: str | None = None,
    panel: pd.DataFrame | None = None,
    with_did: bool = True,
    placebos: pd.DataFrame | None = None,
    min_placebos: int = MIN_PLACEBOS,
    min_probability: float = 0.0,
) -> dict[str, Any]:
    """Effect of one campaign on its series over the window, by both methods.

    Parameters
    ----------
    campaign_id : the campaign.
    signal : which series to evaluate (default: the signal the window was predicted for,
        else ``complaints``).
    panel : weekly panel of the signal's series of the campaign's category
        (:func:`weekly_panel`), to share across campaigns; also the DiD's candidates.
    with_did : also compute the difference-in-differences estimate.
    placebos : placebo candidates of the signal (:func:`placebo_windows`), to share across
        campaigns; default: read them for this campaign.
    min_placebos : placebo windows needed for a ``calibrated`` counterfactual.
    min_probability : the planner's peak filter (``settings.campaigns.min_probability``),
        applied to placebo candidates when they are read here.

    Returns
    -------
    dict with ``campaign_id, campaign_status, series_id, signal, category, region,
    window_start, window_end, approved_run_id, evaluation`` (``complete`` — every window
    week observed; ``interim`` — some; ``pending`` — none yet; ``unavailable`` — no frozen
    counterfactual, see ``reason``), ``weeks_observed``, ``weeks`` (per window week:
    ``week, actual, counterfactual, lower_80, upper_80``, after calibration),
    ``calibration`` (``status`` calibrated | uncalibrated, ``n_placebos, bias_ratio,
    dispersion, raw_ratio, ratio_se, shrinkage, min_placebos, pooled_over`` (category |
    signal | None), ``lead_days`` of the frozen forecast, ``reason``; None without a frozen
    counterfactual), ``counterfactual`` (the :class:`models.effect.EffectEstimate` fields
    plus ``calibrated``: the calibrated estimate, or the raw one labelled
    ``calibrated: false``; None when there is none), ``counterfactual_raw`` (the estimate
    against the paths as stored, when a calibrated one is shown) and ``did`` (the
    :class:`models.effect.DidEstimate` fields plus ``status`` ``unavailable`` with a reason
    when it cannot be computed, or None).

    Raises
    ------
    NotFound
        No such campaign.
    """
    c = session.get(Campaign, campaign_id)
    if c is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    sig = _campaign_signal(c, signal)
    sid = _series_id(sig, c.category, c.region)
    weeks = window_weeks(c.window_start, c.window_end)
    out: dict[str, Any] = {
        "campaign_id": c.id, "campaign_status": c.status, "series_id": sid, "signal": sig,
        "category": c.category, "region": c.region, "window_start": c.window_start,
        "window_end": c.window_end, "approved_run_id": c.approved_run_id,
        "evaluation": "unavailable", "reason": None, "weeks_observed": 0,
        "weeks_in_window": len(weeks), "weeks": [], "calibration": None,
        "counterfactual": None, "counterfactual_raw": None, "did": None,
    }
    if panel is None:
        panel = weekly_panel(session=session, signal=sig, category=c.category)
    treated = panel[panel["unique_id"] == sid]
    actual = pd.Series(treated["y"].to_numpy(dtype=float),
                       index=pd.DatetimeIndex(treated["week"]))
    observed = _observed_weeks(actual, weeks)
    out["weeks_observed"] = len(observed)
    paths, run, out["reason"] = _frozen_paths(session, c, sid, weeks)
    if paths is not None:
        lead = ((c.window_start - run.train_until).days
                if run is not None and run.train_until is not None else None)
        if placebos is None:
            placebos = placebo_windows(
                session=session, signal=sig, before=c.window_start,
                since=c.window_start - dt.timedelta(days=PLACEBO_LOOKBACK_DAYS),
                min_probability=min_probability)
        cal, pooled, _ = campaign_calibration(
            candidates=placebos, committed=_committed_windows(session), category=c.category,
            window_start=c.window_start, lead_days=lead, min_placebos=min_placebos)
        out["calibration"] = _clean({**cal.to_dict(), "pooled_over": pooled,
                                     "lead_days": lead})
        out["weeks"] = _window_weeks(actual, paths, weeks, cal)
        if len(observed) == 0:
            out["evaluation"] = "pending"
            out["reason"] = "no window week has been fully observed yet"
        else:
            out.update(_estimates(actual, paths, c, cal))
            out["evaluation"] = "complete" if len(observed) == len(weeks) else "interim"
    if with_did and len(observed):
        out["did"] = _did(session, c, sid, panel, observed)
    return out


def _frozen_paths(session: Session, c: Campaign, sid: str, weeks: pd.DatetimeIndex
                  ) -> tuple[pd.DataFrame | None, ForecastRun | None, str | None]:
    """The counterfactual paths of the window weeks from the run frozen at approval, that
    run, and why there are no paths (never approved, no paths for the series, weeks
    missing) when there are none."""
    if c.approved_run_id is None:
        return None, None, ("the campaign was never approved, so no forecast was frozen to "
                            "serve as its counterfactual")
    run = session.get(ForecastRun, c.approved_run_id)
    samples = _load_samples(session, c.approved_run_id, sid)
    if samples.empty:
        return None, run, (f"forecast run {c.approved_run_id} (frozen at approval) holds no "
                           f"sample paths for series {sid}")
    paths = counterfactual_frame(samples)
    missing = weeks.difference(pd.DatetimeIndex(paths.index))
    if len(missing):
        return None, run, (f"forecast run {c.approved_run_id} lacks window weeks "
                           f"{', '.join(str(w.date()) for w in missing)}")
    return paths, run, None


def _window_weeks(actual: pd.Series, paths: pd.DataFrame, weeks: pd.DatetimeIndex,
                  cal: Calibration) -> list[dict[str, Any]]:
    """Per window week: the actual count and the calibrated counterfactual with its 80 %
    band (paths scaled by the bias ratio, spread by the dispersion about their mean)."""
    bias, disp = cal.bias_ratio, cal.dispersion
    win = paths.loc[weeks].to_numpy(dtype=float)
    mean = win.mean(axis=1, keepdims=True)
    win = np.maximum(bias * (mean + disp * (win - mean)), 0.0)
    q = np.quantile(win, [0.1, 0.9], axis=1)
    got = actual.reindex(weeks).to_numpy(dtype=float)
    return [
        {"week": w.date(), "actual": _num(float(got[i])),
         "counterfactual": float(bias * mean[i, 0]), "lower_80": float(q[0][i]),
         "upper_80": float(q[1][i])}
        for i, w in enumerate(weeks)]


def _estimates(actual: pd.Series, paths: pd.DataFrame, c: Campaign, cal: Calibration
               ) -> dict[str, Any]:
    """``counterfactual`` (calibrated when the calibration is, labelled either way) and, when
    calibrated, ``counterfactual_raw`` against the paths as stored."""
    raw = campaign_effect(actual, paths, window_start=c.window_start,
                          window_end=c.window_end, allow_partial=True)
    if not cal.calibrated:
        return {"counterfactual": {**_clean(raw.to_dict()), "calibrated": False}}
    est = campaign_effect(actual, paths, window_start=c.window_start,
                          window_end=c.window_end, allow_partial=True,
                          bias_ratio=cal.bias_ratio, dispersion=cal.dispersion,
                          dispersion_high=cal.dispersion_high)
    return {"counterfactual": {**_clean(est.to_dict()), "calibrated": True},
            "counterfactual_raw": {**_clean(raw.to_dict()), "calibrated": False}}


def _did(session: Session, c: Campaign, sid: str, panel: pd.DataFrame,
         observed: pd.DatetimeIndex) -> dict[str, Any]:
    excluded, own_windows = _control_regions(session, c)
    candidates = sorted({u for u in panel["unique_id"].unique()
                         if u != sid and SeriesId.parse(u).region not in excluded})
    window = (observed[0], observed[-1] + pd.Timedelta(days=6))
    try:
        est = did_effect(panel, sid, window, controls=candidates,
                         exclude_windows=own_windows)
    except ValueError as exc:
        return {"status": "unavailable", "reason": str(exc)}
    d = _clean(est.to_dict())
    if not candidates:
        d["reason"] = ("no region of this category is free of a campaign in or just before "
                       "the window")
    return d

