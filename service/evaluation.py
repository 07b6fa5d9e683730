"""Campaign evaluation from stored data: effects, department scorecards, chart data.

- :func:`campaign_effect_report` — the effect of one campaign (DESIGN.md "Campaign effect"):
  actual weekly counts of its series over the window (from the records) against the
  counterfactual frozen at approval (``ForecastWeek.samples`` of ``approved_run_id``), with
  :func:`models.effect.campaign_effect`; plus :func:`models.effect.did_effect` against the
  same signal and category in regions without a campaign in (or just before) the window.
- :func:`scorecard` — per category, region or department (the category's ``sector``):
  campaigns sent, actual spike windows and those reminded of in advance, median lead time,
  estimated counts avoided with intervals, deliveries failed.
- :func:`series_chart` — what the dashboard and ``forecast.png`` draw for one series.
- :func:`mask_sent_campaigns` — blanks the windows of campaigns already sent in a training
  frame, so a refit does not learn a campaign-induced dip as seasonality.

Weeks are ISO weeks labelled by their Monday; only complete weeks of records are counted (a
week after the last record day of the signal is "not observed yet", not zero).
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
    campaign_effect,
    counterfactual_frame,
    did_effect,
    mask_campaign_windows,
    window_weeks,
)
from models.peaks import actual_spike_windows
from models.series import to_weekly
from service.campaigns.tables import Campaign
from service.config import Settings
from service.dispatch.tables import Outbox
from service.errors import NotFound, UnprocessableContent
from service.forecasting import latest_run, list_peaks
from service.store.series import SIGNALS, daily_frame, parse_series_id, signal_range
from service.store.tables import (
    Category,
    Complaint,
    EnforcementAction,
    ForecastRun,
    ForecastWeek,
    Region,
)

__all__ = [
    "SENT_STATUSES",
    "COMMITTED_STATUSES",
    "GroupBy",
    "EvaluationState",
    "weekly_panel",
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
_CONTROL_GAP_DAYS = 28  # a control region's campaign this close before the window disqualifies it
_SCORE_DRAWS = 2000


# --------------------------------------------------------------------------- data access
def _daily(session: Session, signal: str, *, category: str | None = None,
           region: str | None = None, until: dt.date | None = None) -> pd.DataFrame:
    """Zero-filled daily counts ``unique_id, ds, y`` of the signal's series, filtered in SQL
    (same days as :func:`service.store.series.daily_frame`: the signal's first to last day)."""
    if category is None and region is None:
        return daily_frame(session=session, signal=signal, until=until)
    rng = signal_range(session, signal)
    table: Any = Complaint if signal == "complaints" else EnforcementAction
    if rng is None:
        return daily_frame(session=session, signal=signal, until=until)
    first, last = rng
    if until is not None:
        last = min(last, until)
    stmt = select(table.category, table.region, table.day, func.count()).where(
        table.day <= last).group_by(table.category, table.region, table.day)
    if signal != "complaints":
        stmt = stmt.where(EnforcementAction.violation_found.is_(True))
    if category is not None:
        stmt = stmt.where(table.category == category)
    if region is not None:
        stmt = stmt.where(table.region == region)
    raw = pd.DataFrame(session.execute(stmt).all(), columns=["category", "region", "ds", "y"])
    days = pd.date_range(pd.Timestamp(first), pd.Timestamp(last), freq="D")
    if raw.empty:
        return pd.DataFrame({"unique_id": pd.Series(dtype=str),
                             "ds": pd.Series(dtype="datetime64[ns]"),
                             "y": pd.Series(dtype=float)})
    raw["unique_id"] = signal + "|" + raw["category"] + "|" + raw["region"]
    raw["ds"] = pd.to_datetime(raw["ds"])
    wide = raw.pivot_table(index="ds", columns="unique_id", values="y", aggfunc="sum")
    wide = wide.reindex(days, fill_value=0).fillna(0)
    long = wide.melt(ignore_index=False, var_name="unique_id", value_name="y").reset_index(
        names="ds")
    long["y"] = long["y"].astype(float)
    return long[["unique_id", "ds", "y"]].sort_values(["unique_id", "ds"]).reset_index(
        drop=True)


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
) -> dict[str, Any]:
    """Effect of one campaign on its series over the window, by both methods.

    Parameters
    ----------
    campaign_id : the campaign.
    signal : which series to evaluate (default: the signal the window was predicted for,
        else ``complaints``).
    panel : weekly panel of the signal (:func:`weekly_panel`), to share across campaigns.
    with_did : also compute the difference-in-differences estimate.

    Returns
    -------
    dict with ``campaign_id, campaign_status, series_id, signal, category, region,
    window_start, window_end, approved_run_id, evaluation`` (``complete`` — every window
    week observed; ``interim`` — some; ``pending`` — none yet; ``unavailable`` — no frozen
    counterfactual, see ``reason``), ``weeks_observed``, ``weeks`` (per window week:
    ``week, actual, counterfactual, lower_80, upper_80``), ``counterfactual`` (the
    :class:`models.effect.EffectEstimate` fields, or None) and ``did`` (the
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
        "weeks_in_window": len(weeks), "weeks": [], "counterfactual": None, "did": None,
    }
    if panel is None:
        panel = weekly_panel(session=session, signal=sig, category=c.category)
    treated = panel[panel["unique_id"] == sid]
    actual = pd.Series(treated["y"].to_numpy(dtype=float),
                       index=pd.DatetimeIndex(treated["week"]))
    observed = _observed_weeks(actual, weeks)
    out["weeks_observed"] = len(observed)
    paths: pd.DataFrame | None = None
    if c.approved_run_id is None:
        out["reason"] = ("the campaign was never approved, so no forecast was frozen to serve "
                         "as its counterfactual")
    else:
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
        win = paths.loc[weeks]
        values = win.to_numpy(dtype=float)
        q = np.quantile(values, [0.1, 0.9], axis=1)
        got = actual.reindex(weeks).to_numpy(dtype=float)
        out["weeks"] = [
            {"week": w.date(), "actual": _num(float(got[i])),
             "counterfactual": float(values[i].mean()), "lower_80": float(q[0][i]),
             "upper_80": float(q[1][i])}
            for i, w in enumerate(weeks)]
        if len(observed) == 0:
            out["evaluation"] = "pending"
            out["reason"] = "no window week has been fully observed yet"
        else:
            est = campaign_effect(actual, paths, window_start=c.window_start,
                                  window_end=c.window_end, allow_partial=True)
            out["counterfactual"] = _clean(est.to_dict())
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
@dataclass
class _Group:
    key: str
    label: str
    campaigns: int = 0
    campaigns_sent: int = 0
    spike_windows: int = 0
    spike_windows_caught: int = 0
    campaigns_evaluated: int = 0
    deliveries: int = 0
    deliveries_failed: int = 0

    def __post_init__(self) -> None:
        self.leads: list[int] = []
        self.avoided_draws: list[np.ndarray[Any, np.dtype[np.float64]]] = []
        self.avoided_point = 0.0


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
        "avoided": None, "avoided_lower_80": None, "avoided_upper_80": None,
        "avoided_lower_95": None, "avoided_upper_95": None,
        "deliveries": g.deliveries, "deliveries_failed": g.deliveries_failed,
    }
    if g.avoided_draws:
        total = np.sum(g.avoided_draws, axis=0)
        q = np.quantile(total, [0.1, 0.9, 0.025, 0.975])
        out.update(avoided=round(g.avoided_point, 3),
                   avoided_lower_80=float(q[0]), avoided_upper_80=float(q[1]),
                   avoided_lower_95=float(q[2]), avoided_upper_95=float(q[3]))
    return out


def _avoided_draws(paths: pd.DataFrame, weeks: pd.DatetimeIndex, actual: float,
                   rng: np.random.Generator) -> np.ndarray[Any, np.dtype[np.float64]]:
    totals = paths.loc[weeks].to_numpy(dtype=float).sum(axis=0)
    draws: np.ndarray[Any, np.dtype[np.float64]] = rng.choice(totals, size=_SCORE_DRAWS) - actual
    return draws


def scorecard(
    *,
    session: Session,
    settings: Settings,
    group_by: GroupBy = "category",
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    signal: str | None = None,
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

    Returns
    -------
    dict ``group_by, signal, from, to, groups, total``; each group (and ``total``) holds
    ``key, label, campaigns`` (approved or later, not withdrawn), ``campaigns_sent``,
    ``spike_windows`` (actual spike windows, DESIGN.md thresholds, history only),
    ``spike_windows_caught`` (a sent campaign of the same category and region whose window
    overlaps the spike ±1 week was sent before the spike began), ``catch_rate``,
    ``median_lead_days`` (spike start − send date of the latest such campaign),
    ``campaigns_evaluated`` (sent campaigns with a complete window and a frozen
    counterfactual), ``avoided`` (sum of counterfactual − actual over those, counts of the
    signal) with ``avoided_lower_80 … avoided_upper_95`` (quantiles of the summed path
    distributions, campaigns treated as independent), ``deliveries`` and
    ``deliveries_failed`` (outbox rows dead-lettered).
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
    rng = np.random.default_rng(20201118)
    for c in campaigns:
        g = group(c.category, c.region)
        g.campaigns += 1
        d = deliveries.get(c.id, {})
        g.deliveries += sum(d.values())
        g.deliveries_failed += d.get("dead", 0)
        if c.status not in SENT_STATUSES:
            continue
        g.campaigns_sent += 1
        _score_effect(session, c, sig, panel, g, rng)
    _score_spikes(panel, sent_all, settings, date_from, date_to, group)
    rows = sorted(groups.values(), key=lambda g: g.key)
    total = _Group("total", "合计")
    for g in rows:
        for name in ("campaigns", "campaigns_sent", "spike_windows", "spike_windows_caught",
                     "campaigns_evaluated", "deliveries", "deliveries_failed"):
            setattr(total, name, getattr(total, name) + getattr(g, name))
        total.leads += g.leads
        total.avoided_draws += g.avoided_draws
        total.avoided_point += g.avoided_point
    return {"group_by": group_by, "signal": sig, "from": date_from, "to": date_to,
            "groups": [_summary(g) for g in rows], "total": _summary(total)}


def _score_effect(session: Session, c: Campaign, sig: str, panel: pd.DataFrame, g: _Group,
                  rng: np.random.Generator) -> None:
    if c.approved_run_id is None:
        return
    sid = _series_id(sig, c.category, c.region)
    weeks = window_weeks(c.window_start, c.window_end)
    treated = panel[panel["unique_id"] == sid]
    actual = pd.Series(treated["y"].to_numpy(dtype=float),
                       index=pd.DatetimeIndex(treated["week"])).reindex(weeks)
    if actual.isna().any():
        return  # window not complete yet
    samples = _load_samples(session, c.approved_run_id, sid)
    if samples.empty:
        return
    paths = counterfactual_frame(samples)
    if len(weeks.difference(pd.DatetimeIndex(paths.index))):
        return
    total = float(actual.sum())
    g.campaigns_evaluated += 1
    g.avoided_point += float(paths.loc[weeks].to_numpy().sum(axis=0).mean()) - total
    g.avoided_draws.append(_avoided_draws(paths, weeks, total, rng))


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
                 run_id: str | None = None) -> dict[str, Any]:
    """Everything a chart of one series shows.

    Returns
    -------
    dict ``series_id, signal, category, region, category_name, region_name, run_id,
    train_until, history`` (``week, count``: complete weeks, the last ``history_weeks``),
    ``forecast`` (``week, expected, lower_80, upper_80, p_spike, threshold``: the run's
    weekly forecast, bands from the sample paths), ``threshold``, ``peaks`` (``start, end,
    peak_week, max_probability, expected_count``) and ``campaigns`` (``id, status, title,
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
        "run_id": None, "train_until": None, "history": [], "forecast": [],
        "threshold": None, "peaks": [], "campaigns": [],
    }
    run = (session.get(ForecastRun, run_id) if run_id
           else latest_run(session=session, series_id=series_id))
    if run_id and run is None:
        raise NotFound(f"forecast run {run_id} does not exist")
    rng = signal_range(session, sid.signal)
    if rng is not None:
        end = rng[1]
        start = max(rng[0], end - dt.timedelta(days=7 * history_weeks + 6))
        daily = _daily(session, sid.signal, category=sid.category, region=sid.region)
        daily = daily[(daily["ds"] >= pd.Timestamp(start)) & (daily["ds"] <= pd.Timestamp(end))]
        if len(daily):
            weekly = to_weekly(daily)
            out["history"] = [{"week": w.date(), "count": int(y)} for w, y in
                              zip(weekly["week"], weekly["y"], strict=True)]
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
        out["peaks"] = [{"start": p.start, "end": p.end, "peak_week": p.peak_week,
                         "max_probability": p.max_probability,
                         "expected_count": p.expected_count}
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
    cap = last - pd.Timedelta(days=1)
    ends = pd.to_datetime(windows["end"])
    windows = windows.assign(end=ends.where(ends <= cap, cap),
                             start=pd.to_datetime(windows["start"]))
    windows = windows[windows["end"] >= windows["start"]]
    if windows.empty:
        return frame
    return mask_campaign_windows(frame, windows)
