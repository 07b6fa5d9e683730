"""Campaign evaluation from stored data: effects, department scorecards, chart data.

- :func:`campaign_effect_report` — the effect of one campaign (DESIGN.md "Campaign effect"):
  actual weekly counts of its series over the window (from the records) against the
  counterfactual frozen at approval (``ForecastWeek.samples`` of ``approved_run_id``), with
  :func:`models.effect.campaign_effect`, **calibrated on placebo windows**; plus
  :func:`models.effect.did_effect` against the same signal and category in regions without
  a campaign in (or just before) the window.
- :func:`placebo_windows` — the placebo windows: predicted peak windows of stored runs,
  complete in the data, with their actual totals and the frozen paths' totals.
- :func:`scorecard` — per category, region or department (the category's ``sector``):
  campaigns sent, actual spike windows and those reminded of in advance, median lead time,
  estimated counts avoided with intervals (only from calibrated counterfactual or DiD ``ok``
  estimates), deliveries failed.

Why calibrate: campaigns are planned exactly where the forecast runs high, so the frozen
forecast of a campaign window is selected for being high (regression to the mean), and the
paths are too narrow at peaks. On the sample data, where no campaign happened, the raw
counterfactual reported a median "effect" of −16 % and called 7 of 43 null windows
significant. Predicted peak windows that got no campaign went through the same selection:
their actual totals against their frozen paths estimate a multiplicative bias and a
dispersion factor (:func:`models.effect.placebo_calibration`), which are applied to the
campaign's paths. With fewer than ``min_placebos`` such windows the counterfactual estimate
is shown as ``uncalibrated`` and the scorecard does not count it. Measured by
``bench/effect_service.py`` (18 rolling runs 2023–2025, 245 approved campaigns, 10 random
"sent" subsets, true effect 0): significant at 95 % — raw 14.9 %, calibrated 6.4 % (10.5 %
before the conformal bounds of issue 14), DiD 5.2 %, what the scorecard counts 5.9 %; see
docs/benchmarks.md. Pooled effects: :mod:`service.effect_pooling`.
- :func:`series_chart` — what the dashboard and ``forecast.png`` draw for one series.
- :func:`mask_sent_campaigns` — blanks the windows of campaigns already sent in a training
  frame, so a refit does not learn a campaign-induced dip as seasonality.

Weeks are ISO weeks labelled by their Monday; only complete weeks of records are counted (a
week after the last day the series' own sources cover is "not observed yet", not zero).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.effect import (
    Calibration,
    campaign_effect,
    counterfactual_frame,
    did_effect,
    mask_campaign_windows,
    placebo_calibration,
    window_weeks,
)
from models.peaks import actual_spike_windows
from models.series import to_weekly
from service.campaigns.tables import Campaign
from service.config import Settings
from service.decisions import public_decision
from service.dispatch.tables import Outbox
from service.effect_pooling import PoolBy, pooled_scorecard
from service.errors import NotFound, UnprocessableContent
from service.forecasting import latest_run, list_peaks
from service.store.series import SIGNALS, daily_frame, parse_series_id
from service.store.tables import (
    Category,
    ForecastRun,
    ForecastWeek,
    Peak,
    Region,
)

__all__ = [
    "SENT_STATUSES",
    "COMMITTED_STATUSES",
    "GroupBy",
    "EvaluationState",
    "MIN_PLACEBOS",
    "PLACEBO_LOOKBACK_DAYS",
    "ScoreMethod",
    "INTERVAL_METHOD",
    "weekly_panel",
    "placebo_windows",
    "campaign_calibration",
    "campaign_effect_report",
    "scorecard",
    "series_chart",
    "mask_sent_campaigns",
    "sent_campaign_windows",
]

#: Campaigns whose reminders went out (or are going out).
SENT_STATUSES = frozenset({"dispatching", "sent", "partially_failed"})
#: Campaigns a department committed to (approved or later, not withdrawn).
COMMITTED_STATUSES = frozenset({"approved", "scheduled", "needs_review", *SENT_STATUSES})
GroupBy = Literal["category", "region", "department"]
EvaluationState = Literal["complete", "interim", "pending", "unavailable"]
_NO_DEPARTMENT = "未指定"
ScoreMethod = Literal["counterfactual", "did", "none"]
_CONTROL_GAP_DAYS = 28  # a control region's campaign this close before the window disqualifies it
#: Placebo windows needed before a counterfactual estimate is ``calibrated``.
MIN_PLACEBOS = 8
#: Placebo windows must start at most this many days before the evaluated window.
PLACEBO_LOOKBACK_DAYS = 3 * 365
_PLACEBO_MARGIN_DAYS = 7  # a placebo window this close to a committed campaign's is not one


# --------------------------------------------------------------------------- data access
def _daily(session: Session, signal: str, *, category: str | None = None,
           region: str | None = None, until: dt.date | None = None) -> pd.DataFrame:
    """Daily counts ``unique_id, ds, y`` of the signal's series, filtered in SQL, each over
    the days its own sources cover (:func:`service.store.series.daily_frame`)."""
    return daily_frame(session=session, signal=signal, until=until, category=category,
                       region=region)


def weekly_panel(*, session: Session, signal: str, category: str | None = None,
                 region: str | None = None, until: dt.date | None = None) -> pd.DataFrame:
    """Complete-week counts of every series of ``signal`` (optionally one category / region).

    Returns
    -------
    DataFrame ``unique_id, week, y`` (``week`` = Monday, tz-naive), sorted.
    """
    daily = _daily(session, signal, category=category, region=region, until=until)
    if daily.empty:
        return pd.DataFrame({"unique_id": pd.Series(dtype=str),
                             "week": pd.Series(dtype="datetime64[ns]"),
                             "y": pd.Series(dtype=float)})
    return to_weekly(daily)


def _series_id(signal: str, category: str, region: str) -> str:
    return f"{signal}|{category}|{region}"


def _campaign_signal(c: Campaign, signal: str | None) -> str:
    sig = signal or c.signal or "complaints"
    if sig not in SIGNALS:
        raise UnprocessableContent(f"signal must be one of {', '.join(SIGNALS)}")
    return sig


def _load_samples(session: Session, run_id: str, series_id: str) -> pd.DataFrame:
    rows = session.execute(select(ForecastWeek.week, ForecastWeek.samples).where(
        ForecastWeek.run_id == run_id, ForecastWeek.series_id == series_id)
        .order_by(ForecastWeek.week)).all()
    rows = [r for r in rows if r.samples]
    return pd.DataFrame({"week": pd.to_datetime([r.week for r in rows]),
                         "samples": [r.samples for r in rows]})


def _num(x: Any) -> Any:
    """JSON-safe scalar: NaN/inf -> None, timestamps -> dates, numpy -> Python."""
    if isinstance(x, pd.Timestamp):
        return x.date()
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _clean(d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, list | tuple):
            out[k] = [_num(i) for i in v]
        elif isinstance(v, dict):
            out[k] = {str(kk): _num(vv) for kk, vv in v.items()}
        else:
            out[k] = _num(v)
    return out


# --------------------------------------------------------------------------- placebos
_PLACEBO_FRAME: dict[str, Any] = {"run_id": str, "series_id": str, "category": str, "region": str,
                  "start": "datetime64[ns]", "end": "datetime64[ns]",
                  "train_until": "datetime64[ns]", "lead_days": int, "actual": float,
                  "counterfactual": float, "counterfactual_sd": float}


def _empty_placebos() -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series(dtype=v) for k, v in _PLACEBO_FRAME.items()})


def placebo_windows(
    *,
    session: Session,
    signal: str,
    panel: pd.DataFrame | None = None,
    before: dt.date | None = None,
    since: dt.date | None = None,
    min_probability: float = 0.0,
) -> pd.DataFrame:
    """Predicted peak windows of stored runs that are complete in the data: placebo candidates.

    Every peak window of a finished run (``Peak`` rows of the signal with ``max_probability >=
    min_probability``, the planner's filter) whose weeks are all observed, with its actual
    total and the frozen forecast's window totals. Which of them had no campaign is decided
    per evaluated campaign (:func:`campaign_calibration`), so one frame serves many campaigns.

    Parameters
    ----------
    panel : weekly panel of the signal (:func:`weekly_panel`), to share.
    before : only windows ending before this day (the evaluated window's start).
    since : only windows starting on or after this day.

    Returns
    -------
    DataFrame ``run_id, series_id, category, region, start, end`` (Monday of the first,
    Sunday of the last window week), ``train_until`` (the run's data cut-off), ``lead_days``
    (``start - train_until``), ``actual`` (observed window total), ``counterfactual`` and
    ``counterfactual_sd`` (mean and sd of the run's sample paths' window totals).
    """
    stmt = (select(Peak.run_id, Peak.series_id, Peak.category, Peak.region, Peak.start,
                   Peak.end, ForecastRun.train_until)
            .join(ForecastRun, ForecastRun.id == Peak.run_id)
            .where(Peak.signal == signal, ForecastRun.status.in_(("succeeded", "partial")),
                   Peak.max_probability >= min_probability))
    if before is not None:
        stmt = stmt.where(Peak.end < before)
    if since is not None:
        stmt = stmt.where(Peak.start >= since)
    peaks = session.execute(stmt).all()
    if not peaks:
        return _empty_placebos()
    if panel is None:
        panel = weekly_panel(session=session, signal=signal)
    counts = {(u, pd.Timestamp(w)): float(y) for u, w, y in
              panel[["unique_id", "week", "y"]].itertuples(index=False, name=None)}
    todo: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    rows: list[dict[str, Any]] = []
    for p in peaks:
        if p.train_until is None:
            continue
        weeks = window_weeks(p.start, p.end)
        got = [counts.get((p.series_id, pd.Timestamp(w))) for w in weeks]
        if any(g is None for g in got):
            continue  # not complete in the data
        todo.setdefault((p.run_id, p.series_id), []).append(
            (p, weeks, float(sum(g for g in got if g is not None))))
    for (run_id, series_id), items in todo.items():
        lo = min(w[0] for _, w, _ in items).date()
        hi = max(w[-1] for _, w, _ in items).date()
        samples = {pd.Timestamp(r.week): np.asarray(r.samples, dtype=float)
                   for r in session.execute(select(ForecastWeek.week, ForecastWeek.samples).where(
                       ForecastWeek.run_id == run_id, ForecastWeek.series_id == series_id,
                       ForecastWeek.week >= lo, ForecastWeek.week <= hi))
                   if r.samples}
        for p, weeks, actual in items:
            paths = [samples.get(pd.Timestamp(w)) for w in weeks]
            if any(x is None for x in paths) or len({len(x) for x in paths if x is not None}) > 1:
                continue
            totals = np.sum([x for x in paths if x is not None], axis=0)
            start = pd.Timestamp(weeks[0])
            rows.append({
                "run_id": run_id, "series_id": series_id, "category": p.category,
                "region": p.region, "start": start,
                "end": pd.Timestamp(weeks[-1]) + pd.Timedelta(days=6),
                "train_until": pd.Timestamp(p.train_until),
                "lead_days": int((start - pd.Timestamp(p.train_until)).days),
                "actual": actual, "counterfactual": float(totals.mean()),
                "counterfactual_sd": float(totals.std())})
    if not rows:
        return _empty_placebos()
    return pd.DataFrame(rows).astype(_PLACEBO_FRAME).sort_values(
        ["series_id", "start", "run_id"]).reset_index(drop=True)


def _committed_windows(session: Session) -> pd.DataFrame:
    rows = session.execute(select(Campaign.category, Campaign.region, Campaign.window_start,
                                  Campaign.window_end).where(
        Campaign.status.in_(COMMITTED_STATUSES))).all()
    return pd.DataFrame([(c, r, pd.Timestamp(s), pd.Timestamp(e)) for c, r, s, e in rows],
                        columns=["category", "region", "c_start", "c_end"])


def _select_placebos(candidates: pd.DataFrame, committed: pd.DataFrame, *,
                     window_start: pd.Timestamp, lead_days: int | None,
                     lookback_days: int) -> pd.DataFrame:
    """Candidates without a campaign, before the window, one per real window (the forecast
    whose lead time is closest to the campaign's)."""
    f = candidates[(candidates["end"] < window_start)
                   & (candidates["start"] >= window_start - pd.Timedelta(days=lookback_days))]
    if f.empty:
        return f
    if len(committed):
        margin = pd.Timedelta(days=_PLACEBO_MARGIN_DAYS)
        m = f.reset_index().merge(committed, on=["category", "region"])
        hit = m[(m["start"] <= m["c_end"] + margin) & (m["end"] >= m["c_start"] - margin)]
        f = f[~f.index.isin(hit["index"])]
    if f.empty:
        return f
    # one placebo per real window: cluster overlapping windows of a series across runs
    f = f.sort_values(["series_id", "start", "end"])
    prev_end = f.groupby("series_id")["end"].transform(lambda e: e.cummax().shift())
    new = prev_end.isna() | (f["start"] > prev_end)
    f = f.assign(cluster=new.astype(int).cumsum())
    target = lead_days if lead_days is not None else int(f["lead_days"].median())
    f = f.assign(_dist=(f["lead_days"] - target).abs())
    best = f.sort_values(["cluster", "_dist", "train_until"], ascending=[True, True, False])
    return best.drop_duplicates("cluster").drop(columns=["cluster", "_dist"])


def campaign_calibration(
    *,
    candidates: pd.DataFrame,
    committed: pd.DataFrame,
    category: str,
    window_start: Any,
    lead_days: int | None,
    min_placebos: int = MIN_PLACEBOS,
    lookback_days: int = PLACEBO_LOOKBACK_DAYS,
) -> tuple[Calibration, str | None, pd.DataFrame]:
    """Placebo calibration for one campaign window.

    Placebos are the ``candidates`` (:func:`placebo_windows`) that end before
    ``window_start``, start within ``lookback_days`` of it, and overlap (±7 days) no
    committed campaign of their category and region (``committed``: ``category, region,
    c_start, c_end``); one per real window (runs predicting overlapping windows of a series
    are one cluster; the forecast whose lead time is closest to ``lead_days`` represents it).
    The campaign's category is used when it has at least ``min_placebos``; otherwise every
    category and region of the signal is pooled.

    Returns
    -------
    (Calibration, pooled_over, placebos) — ``pooled_over`` is ``"category"``, ``"signal"``
    (all categories and regions) or None (no placebo at all); ``placebos`` the rows used.
    """
    start = pd.Timestamp(window_start)
    chosen = _select_placebos(candidates, committed, window_start=start, lead_days=lead_days,
                              lookback_days=lookback_days)
    same = chosen[chosen["category"] == category]
    pooled: str | None
    if len(same) >= min_placebos:
        used, pooled = same, "category"
    else:
        used, pooled = chosen, ("signal" if len(chosen) else None)
    return placebo_calibration(used, min_placebos=min_placebos), pooled, used


# --------------------------------------------------------------------------- one campaign
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
    paths: pd.DataFrame | None = None
    run: ForecastRun | None = None
    if c.approved_run_id is None:
        out["reason"] = ("the campaign was never approved, so no forecast was frozen to serve "
                         "as its counterfactual")
    else:
        run = session.get(ForecastRun, c.approved_run_id)
        samples = _load_samples(session, c.approved_run_id, sid)
        if samples.empty:
            out["reason"] = (f"forecast run {c.approved_run_id} (frozen at approval) holds no "
                             f"sample paths for series {sid}")
        else:
            paths = counterfactual_frame(samples)
            missing = weeks.difference(pd.DatetimeIndex(paths.index))
            if len(missing):
                out["reason"] = (f"forecast run {c.approved_run_id} lacks window weeks "
                                 f"{', '.join(str(w.date()) for w in missing)}")
                paths = None
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
        bias, disp = cal.bias_ratio, cal.dispersion
        win = paths.loc[weeks].to_numpy(dtype=float)
        mean = win.mean(axis=1, keepdims=True)
        win = np.maximum(bias * (mean + disp * (win - mean)), 0.0)
        q = np.quantile(win, [0.1, 0.9], axis=1)
        got = actual.reindex(weeks).to_numpy(dtype=float)
        out["weeks"] = [
            {"week": w.date(), "actual": _num(float(got[i])),
             "counterfactual": float(bias * mean[i, 0]), "lower_80": float(q[0][i]),
             "upper_80": float(q[1][i])}
            for i, w in enumerate(weeks)]
        if len(observed) == 0:
            out["evaluation"] = "pending"
            out["reason"] = "no window week has been fully observed yet"
        else:
            raw = campaign_effect(actual, paths, window_start=c.window_start,
                                  window_end=c.window_end, allow_partial=True)
            if cal.calibrated:
                est = campaign_effect(actual, paths, window_start=c.window_start,
                                      window_end=c.window_end, allow_partial=True,
                                      bias_ratio=bias, dispersion=disp,
                                      dispersion_high=cal.dispersion_high)
                out["counterfactual"] = {**_clean(est.to_dict()), "calibrated": True}
                out["counterfactual_raw"] = {**_clean(raw.to_dict()), "calibrated": False}
            else:
                out["counterfactual"] = {**_clean(raw.to_dict()), "calibrated": False}
            out["evaluation"] = "complete" if len(observed) == len(weeks) else "interim"
    if with_did and len(observed):
        out["did"] = _did(session, c, sid, panel, observed)
    return out


def _did(session: Session, c: Campaign, sid: str, panel: pd.DataFrame,
         observed: pd.DatetimeIndex) -> dict[str, Any]:
    excluded, own_windows = _control_regions(session, c)
    candidates = sorted({u for u in panel["unique_id"].unique()
                         if u != sid and u.split("|")[2] not in excluded})
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


# --------------------------------------------------------------------------- scorecards
#: How the scorecard sums the intervals of the counted campaigns.
INTERVAL_METHOD = (
    "sum of the per-campaign bounds (the interval of the total if the campaigns' errors were "
    "perfectly correlated, as a shared forecaster or calibration makes them; wider than an "
    "independence sum, so conservative)")
_AVOIDED_KEYS = ("avoided_lower_80", "avoided_upper_80", "avoided_lower_95",
                 "avoided_upper_95")


@dataclass
class _Group:
    key: str
    label: str
    campaigns: int = 0
    campaigns_sent: int = 0
    spike_windows: int = 0
    spike_windows_caught: int = 0
    campaigns_evaluated: int = 0
    counted_counterfactual: int = 0
    counted_did: int = 0
    not_counted: int = 0
    deliveries: int = 0
    deliveries_failed: int = 0

    def __post_init__(self) -> None:
        self.leads: list[int] = []
        self.avoided_point = 0.0
        self.avoided_bounds = dict.fromkeys(_AVOIDED_KEYS, 0.0)

    def add(self, scored: Mapping[str, Any]) -> None:
        method = scored["method"]
        if method == "none":
            self.not_counted += 1
            return
        self.campaigns_evaluated += 1
        if method == "counterfactual":
            self.counted_counterfactual += 1
        else:
            self.counted_did += 1
        self.avoided_point += float(scored["avoided"])
        for k in _AVOIDED_KEYS:
            self.avoided_bounds[k] += float(scored[k])


def _period(date: dt.date, lo: dt.date | None, hi: dt.date | None) -> bool:
    return (lo is None or date >= lo) and (hi is None or date <= hi)


def _summary(g: _Group) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": g.key, "label": g.label, "campaigns": g.campaigns,
        "campaigns_sent": g.campaigns_sent, "spike_windows": g.spike_windows,
        "spike_windows_caught": g.spike_windows_caught,
        "catch_rate": (g.spike_windows_caught / g.spike_windows) if g.spike_windows else None,
        "median_lead_days": float(np.median(g.leads)) if g.leads else None,
        "campaigns_evaluated": g.campaigns_evaluated,
        "counted_counterfactual": g.counted_counterfactual, "counted_did": g.counted_did,
        "not_counted": g.not_counted,
        "avoided": None, "avoided_lower_80": None, "avoided_upper_80": None,
        "avoided_lower_95": None, "avoided_upper_95": None,
        "deliveries": g.deliveries, "deliveries_failed": g.deliveries_failed,
    }
    if g.campaigns_evaluated:
        out.update(avoided=round(g.avoided_point, 3),
                   **{k: round(v, 3) for k, v in g.avoided_bounds.items()})
    return out


def _scored(report: Mapping[str, Any]) -> dict[str, Any]:
    """Which estimate of a sent campaign the scorecard counts, as counts avoided."""
    base: dict[str, Any] = {
        "campaign_id": report["campaign_id"], "category": report["category"],
        "region": report["region"], "window_start": report["window_start"],
        "window_end": report["window_end"], "evaluation": report["evaluation"],
        "method": "none", "avoided": None, **dict.fromkeys(_AVOIDED_KEYS), "reason": None}
    if report["evaluation"] != "complete":
        base["reason"] = (f"evaluation {report['evaluation']}"
                          + (f": {report['reason']}" if report.get("reason") else ""))
        return base
    cf, cal, did = report.get("counterfactual"), report.get("calibration"), report.get("did")
    est: Mapping[str, Any] | None = None
    if cf and cf.get("calibrated"):
        base["method"], est = "counterfactual", cf
    elif did and did.get("status") == "ok":
        base["method"], est = "did", did
    if est is None:
        why = [f"counterfactual uncalibrated ({cal['reason']})" if cal else
               "no counterfactual", f"DiD {did['status']}" + (
                   f" ({did.get('reason')})" if did.get("reason") else "")
               if did else "no DiD"]
        base["reason"] = "; ".join(why)
        return base
    base.update(avoided=-float(est["effect"]),
                avoided_lower_80=-float(est["effect_upper_80"]),
                avoided_upper_80=-float(est["effect_lower_80"]),
                avoided_lower_95=-float(est["effect_upper_95"]),
                avoided_upper_95=-float(est["effect_lower_95"]))
    return base


def scorecard(
    *,
    session: Session,
    settings: Settings,
    group_by: GroupBy = "category",
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    signal: str | None = None,
    min_placebos: int = MIN_PLACEBOS,
    pooled_by: PoolBy = "category",
) -> dict[str, Any]:
    """Guidance-work scorecard per category, region or department.

    Parameters
    ----------
    group_by : ``category``, ``region`` or ``department`` (the category's ``sector``; a
        category without one counts under 未指定).
    date_from, date_to : the period (inclusive). A campaign belongs to it by its send date,
        an actual spike window by its first day.
    signal : series the spikes and effects are measured on (default: the first planning
        signal, ``settings.campaigns.signals[0]``).
    min_placebos : placebo windows a counterfactual estimate needs to be counted.
    pooled_by : grouping of the top-level ``pooled`` block (category, region, department,
        region_level, year); see :func:`service.effect_pooling.pooled_scorecard`.

    Returns
    -------
    dict ``group_by, signal, from, to, interval_method, groups, total, campaigns, pooled``
    (pooled effects: ``groups[*].pooled``, ``total.pooled``, ``campaigns[*].contribution``
    and the top-level ``pooled`` block, :mod:`service.effect_pooling`); each
    group (and ``total``) holds ``key, label, campaigns`` (approved or later, not
    withdrawn), ``campaigns_sent``, ``spike_windows`` (actual spike windows, DESIGN.md
    thresholds, history only), ``spike_windows_caught`` (a sent campaign of the same category
    and region whose window overlaps the spike ±1 week was sent before the spike began),
    ``catch_rate``, ``median_lead_days`` (spike start − send date of the latest such
    campaign), ``campaigns_evaluated`` (sent campaigns with a complete window and an estimate
    the scorecard trusts: a **calibrated** counterfactual, else a DiD with status ``ok``),
    ``counted_counterfactual`` / ``counted_did`` (which of the two), ``not_counted`` (sent
    campaigns without such an estimate: window incomplete, counterfactual uncalibrated and
    no DiD ``ok``), ``avoided`` (sum of counterfactual − actual over the counted campaigns,
    counts of the signal) with ``avoided_lower_80 … avoided_upper_95`` (the sum of the
    campaigns' bounds, see ``interval_method``), ``deliveries`` and ``deliveries_failed``
    (outbox rows dead-lettered). ``campaigns`` lists every sent campaign of the period with
    ``campaign_id, category, region, window_start, window_end, evaluation, method``
    (``counterfactual`` | ``did`` | ``none``), ``avoided`` and its bounds, and ``reason``
    when not counted.
    """
    if group_by not in ("category", "region", "department"):
        raise UnprocessableContent("group_by must be category, region or department")
    if date_from and date_to and date_from > date_to:
        raise UnprocessableContent("'from' is after 'to'")
    sig = signal or (settings.campaigns.signals[0] if settings.campaigns.signals
                     else "complaints")
    if sig not in SIGNALS:
        raise UnprocessableContent(f"signal must be one of {', '.join(SIGNALS)}")
    cats = {c.code: c for c in session.scalars(select(Category))}
    regs = {r.code: r for r in session.scalars(select(Region))}

    def key_of(category: str, region: str) -> tuple[str, str]:
        if group_by == "category":
            cat = cats.get(category)
            return category, cat.name_zh if cat else category
        if group_by == "region":
            reg = regs.get(region)
            return region, reg.name_zh if reg else region
        cat = cats.get(category)
        dept = (cat.sector if cat and cat.sector else None) or _NO_DEPARTMENT
        return dept, dept

    groups: dict[str, _Group] = {}

    def group(category: str, region: str) -> _Group:
        k, label = key_of(category, region)
        return groups.setdefault(k, _Group(k, label))

    campaigns = [c for c in session.scalars(select(Campaign).where(
        Campaign.status.in_(COMMITTED_STATUSES)).order_by(Campaign.send_date, Campaign.id))
        if _period(c.send_date, date_from, date_to)]
    sent_all = list(session.scalars(select(Campaign).where(
        Campaign.status.in_(SENT_STATUSES))))
    deliveries: dict[str, dict[str, int]] = {}
    ids = [c.id for c in campaigns]
    for i in range(0, len(ids), 500):
        for cid, status, n in session.execute(
                select(Outbox.campaign_id, Outbox.status, func.count())
                .where(Outbox.campaign_id.in_(ids[i:i + 500]))
                .group_by(Outbox.campaign_id, Outbox.status)):
            deliveries.setdefault(cid, {})[status] = int(n)
    panel = weekly_panel(session=session, signal=sig)
    sent = [c for c in campaigns if c.status in SENT_STATUSES]
    placebos = _empty_placebos()
    if sent:
        placebos = placebo_windows(
            session=session, signal=sig, panel=panel,
            before=max(c.window_start for c in sent),
            since=min(c.window_start for c in sent) - dt.timedelta(
                days=PLACEBO_LOOKBACK_DAYS),
            min_probability=settings.campaigns.min_probability)
    by_category: dict[str, pd.DataFrame] = {}
    scored: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []  # issue 14: pooled effects (service.effect_pooling)
    for c in campaigns:
        g = group(c.category, c.region)
        g.campaigns += 1
        d = deliveries.get(c.id, {})
        g.deliveries += sum(d.values())
        g.deliveries_failed += d.get("dead", 0)
        if c.status not in SENT_STATUSES:
            continue
        g.campaigns_sent += 1
        if c.category not in by_category:
            by_category[c.category] = panel[
                panel["unique_id"].str.split("|").str[1] == c.category]
        report = campaign_effect_report(session=session, campaign_id=c.id, signal=sig,
                                        panel=by_category[c.category], placebos=placebos,
                                        min_placebos=min_placebos)
        reports.append(report)
        row = _scored(report)
        g.add(row)
        scored.append(row)
    _score_spikes(panel, sent_all, settings, date_from, date_to, group)
    rows = sorted(groups.values(), key=lambda g: g.key)
    total = _Group("total", "合计")
    for g in rows:
        for name in ("campaigns", "campaigns_sent", "spike_windows", "spike_windows_caught",
                     "campaigns_evaluated", "counted_counterfactual", "counted_did",
                     "not_counted", "deliveries", "deliveries_failed"):
            setattr(total, name, getattr(total, name) + getattr(g, name))
        total.leads += g.leads
        total.avoided_point += g.avoided_point
        for k in _AVOIDED_KEYS:
            total.avoided_bounds[k] += g.avoided_bounds[k]
    result = {"group_by": group_by, "signal": sig, "from": date_from, "to": date_to,
              "interval_method": INTERVAL_METHOD,
              "groups": [_summary(g) for g in rows], "total": _summary(total),
              "campaigns": scored}
    return pooled_scorecard(result, reports=reports, sent=sent, panel=panel,
                            placebos=placebos, signal=sig, cats=cats, regs=regs,
                            group_by=group_by, pooled_by=pooled_by)


def _score_spikes(panel: pd.DataFrame, sent: Sequence[Campaign], settings: Settings,
                  lo: dt.date | None, hi: dt.date | None, group: Any) -> None:
    if panel.empty:
        return
    spikes = actual_spike_windows(panel, min_spike_count=settings.forecast.min_spike_count)
    by_series: dict[tuple[str, str], list[Campaign]] = {}
    for c in sent:
        by_series.setdefault((c.category, c.region), []).append(c)
    margin = dt.timedelta(days=7)
    for uid, start, end in spikes[["unique_id", "start", "end"]].itertuples(index=False):
        s, e = pd.Timestamp(start).date(), pd.Timestamp(end).date()
        if not _period(s, lo, hi):
            continue
        _, category, region = str(uid).split("|")
        g = group(category, region)
        g.spike_windows += 1
        sends = [c.send_date for c in by_series.get((category, region), [])
                 if c.window_start <= e + margin and c.window_end >= s - margin
                 and c.send_date < s]
        if sends:
            g.spike_windows_caught += 1
            g.leads.append((s - max(sends)).days)


# --------------------------------------------------------------------------- chart data
def series_chart(*, session: Session, series_id: str, history_weeks: int = 104,
                 run_id: str | None = None, language: str = "zh") -> dict[str, Any]:
    """Everything a chart of one series shows.

    Returns
    -------
    dict ``series_id, signal, category, region, category_name, region_name, run_id,
    train_until, data_from, data_to`` (the days the series' own sources cover, first and
    last), ``history`` (``week, count``: complete weeks of the series' own data, the last
    ``history_weeks`` up to ``data_to``; ``count`` None for a week its sources do not cover
    completely),
    ``forecast`` (``week, expected, lower_80, upper_80, p_spike, threshold``: the run's
    weekly forecast, bands from the sample paths), ``threshold``, ``peaks`` (``start, end,
    peak_week, max_probability, expected_count, onset, p_min``), ``decision`` (the run's
    decision threshold for the category with its evidence and explanation in ``language``,
    service.decisions; None for runs without one) and ``campaigns`` (``id, status, title,
    window_start, window_end, send_date``) of the series' category and region.

    Raises
    ------
    NotFound
        Neither records nor a forecast exist for the series.
    """
    sid = parse_series_id(series_id)
    cat = session.get(Category, sid.category)
    reg = session.get(Region, sid.region)
    out: dict[str, Any] = {
        "series_id": series_id, "signal": sid.signal, "category": sid.category,
        "region": sid.region, "category_name": cat.name_zh if cat else sid.category,
        "region_name": reg.name_zh if reg else sid.region,
        "category_name_en": cat.name_en if cat else sid.category,
        "region_name_en": reg.name_en if reg else sid.region,
        "run_id": None, "train_until": None, "data_from": None, "data_to": None,
        "history": [], "forecast": [],
        "threshold": None, "peaks": [], "campaigns": [], "decision": None,
    }
    run = (session.get(ForecastRun, run_id) if run_id
           else latest_run(session=session, series_id=series_id))
    if run_id and run is None:
        raise NotFound(f"forecast run {run_id} does not exist")
    daily = daily_frame(session=session, signal=sid.signal, series_ids=[series_id])
    if len(daily):  # the series' own data window, not the signal's
        first, end = daily["ds"].iloc[0], daily["ds"].iloc[-1]
        out["data_from"], out["data_to"] = first.date(), end.date()
        start = max(first, end - pd.Timedelta(days=7 * history_weeks + 6))
        weekly = to_weekly(daily[daily["ds"] >= start])
        if len(weekly):  # a week its sources do not cover completely is a gap (None)
            weeks = pd.date_range(weekly["week"].iloc[0], weekly["week"].iloc[-1], freq="7D")
            counts = weekly.set_index("week")["y"].reindex(weeks)
            out["history"] = [{"week": w.date(), "count": None if np.isnan(y) else int(y)}
                              for w, y in zip(weeks, counts.to_numpy(dtype=float),
                                              strict=True)]
    if run is not None:
        rows = session.scalars(select(ForecastWeek).where(
            ForecastWeek.run_id == run.id, ForecastWeek.series_id == series_id)
            .order_by(ForecastWeek.week)).all()
        out["run_id"], out["train_until"] = run.id, run.train_until
        for r in rows:
            lo, hi = (np.quantile(np.asarray(r.samples, dtype=float), [0.1, 0.9])
                      if r.samples else (r.expected, r.expected))
            out["forecast"].append({"week": r.week, "expected": float(r.expected),
                                    "lower_80": float(lo), "upper_80": float(hi),
                                    "p_spike": float(r.p_spike), "threshold": float(r.threshold)})
        if rows:
            out["threshold"] = float(rows[0].threshold)
        out["decision"] = public_decision(run.decisions, sid.category, language=language)
        out["peaks"] = [{"start": p.start, "end": p.end, "peak_week": p.peak_week,
                         "max_probability": p.max_probability,
                         "expected_count": p.expected_count, "onset": p.onset,
                         "p_min": p.p_min}
                        for p in list_peaks(session=session, run_id=run.id,
                                            category=sid.category, region=sid.region,
                                            signal=sid.signal)]
    if not out["history"] and not out["forecast"]:
        raise NotFound(f"series '{series_id}' has neither records nor a forecast")
    out["campaigns"] = [
        {"id": c.id, "status": c.status, "title": c.title, "window_start": c.window_start,
         "window_end": c.window_end, "send_date": c.send_date}
        for c in session.scalars(select(Campaign).where(
            Campaign.category == sid.category, Campaign.region == sid.region,
            Campaign.status != "superseded").order_by(Campaign.window_start))]
    return out


# --------------------------------------------------------------------------- refits
def sent_campaign_windows(*, session: Session, until: dt.date | None = None) -> pd.DataFrame:
    """Windows of campaigns whose reminders went out, one row per series they touch.

    Returns
    -------
    DataFrame ``unique_id, start, end`` (both signals of the campaign's category and region;
    windows starting after ``until`` left out).
    """
    stmt = select(Campaign.category, Campaign.region, Campaign.window_start,
                  Campaign.window_end).where(Campaign.status.in_(SENT_STATUSES))
    if until is not None:
        stmt = stmt.where(Campaign.window_start <= until)
    rows = [(_series_id(sig, cat, reg), s, e) for cat, reg, s, e in session.execute(stmt)
            for sig in SIGNALS]
    return pd.DataFrame(rows, columns=["unique_id", "start", "end"])


def mask_sent_campaigns(*, session_factory: sessionmaker[Session],
                        frame: pd.DataFrame) -> pd.DataFrame:
    """The training frame with the days of sent campaigns' windows unobserved (``y`` NaN).

    Only past days are masked, and never a series' last day: the forecast origin stays where
    it was (see :func:`models.effect.mask_campaign_windows`). Thresholds and spike scoring
    should keep using the unmasked frame.

    Parameters
    ----------
    frame : long daily frame ``unique_id, ds, y``.

    Returns
    -------
    ``frame`` itself when no sent campaign touches it, else a masked copy.
    """
    if frame.empty:
        return frame
    last = pd.Timestamp(frame["ds"].max()).normalize()
    with session_factory() as s:
        windows = sent_campaign_windows(session=s, until=last.date())
    windows = windows[windows["unique_id"].isin(set(frame["unique_id"].unique()))]
    if windows.empty:
        return frame
    # never a series' own last day: each series' forecast starts where its data ends
    cap = pd.to_datetime(windows["unique_id"].map(frame.groupby("unique_id")["ds"].max())
                         ) - pd.Timedelta(days=1)
    ends = pd.to_datetime(windows["end"])
    windows = windows.assign(end=ends.where(ends <= cap, cap),
                             start=pd.to_datetime(windows["start"]))
    windows = windows[windows["end"] >= windows["start"]]
    if windows.empty:
        return frame
    return mask_campaign_windows(frame, windows)
