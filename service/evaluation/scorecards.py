"""Guidance-work scorecards per category, region or department."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.peaks import actual_spike_windows
from models.series import SeriesId
from service.campaigns.tables import Campaign
from service.config import Settings
from service.dispatch.tables import Outbox
from service.errors import UnprocessableContent
from service.evaluation.common import (
    _NO_DEPARTMENT,
    COMMITTED_STATUSES,
    MIN_PLACEBOS,
    PLACEBO_LOOKBACK_DAYS,
    SENT_STATUSES,
    GroupBy,
    weekly_panel,
)
from service.evaluation.effects import campaign_effect_report
from service.evaluation.placebos import _empty_placebos, placebo_windows
from service.evaluation.pooling import PoolBy, pooled_scorecard
from service.store.series import SIGNALS
from service.store.tables import Category, Region

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
        region_level, year); see :func:`service.evaluation.pooling.pooled_scorecard`.

    Returns
    -------
    dict ``group_by, signal, from, to, interval_method, groups, total, campaigns, pooled``
    (pooled effects: ``groups[*].pooled``, ``total.pooled``, ``campaigns[*].contribution``
    and the top-level ``pooled`` block, :mod:`service.evaluation.pooling`); each
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
    sig = _checked_signal(settings, group_by, date_from, date_to, signal)
    cats = {c.code: c for c in session.scalars(select(Category))}
    regs = {r.code: r for r in session.scalars(select(Region))}
    group = _Groups(group_by, cats, regs)
    campaigns = [c for c in session.scalars(select(Campaign).where(
        Campaign.status.in_(COMMITTED_STATUSES)).order_by(Campaign.send_date, Campaign.id))
        if _period(c.send_date, date_from, date_to)]
    sent_all = list(session.scalars(select(Campaign).where(
        Campaign.status.in_(SENT_STATUSES))))
    deliveries = _deliveries(session, [c.id for c in campaigns])
    panel = weekly_panel(session=session, signal=sig)
    sent = [c for c in campaigns if c.status in SENT_STATUSES]
    placebos = _placebos(session, settings, sig, panel, sent)
    by_category: dict[str, pd.DataFrame] = {}
    scored: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []  # issue 14: pooled effects (service.evaluation.pooling)
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
                SeriesId.part(panel["unique_id"], "category") == c.category]
        report = campaign_effect_report(session=session, campaign_id=c.id, signal=sig,
                                        panel=by_category[c.category], placebos=placebos,
                                        min_placebos=min_placebos)
        reports.append(report)
        row = _scored(report)
        g.add(row)
        scored.append(row)
    _score_spikes(panel, sent_all, settings, date_from, date_to, group)
    rows = group.rows()
    result = {"group_by": group_by, "signal": sig, "from": date_from, "to": date_to,
              "interval_method": INTERVAL_METHOD,
              "groups": [_summary(g) for g in rows], "total": _summary(_total(rows)),
              "campaigns": scored}
    return pooled_scorecard(result, reports=reports, sent=sent, panel=panel,
                            placebos=placebos, signal=sig, cats=cats, regs=regs,
                            group_by=group_by, pooled_by=pooled_by)


def _checked_signal(settings: Settings, group_by: str, date_from: dt.date | None,
                    date_to: dt.date | None, signal: str | None) -> str:
    """The scorecard's signal (default: the first planning signal), after checking the
    grouping and the period (422 problems naming what is wrong)."""
    if group_by not in ("category", "region", "department"):
        raise UnprocessableContent("group_by must be category, region or department")
    if date_from and date_to and date_from > date_to:
        raise UnprocessableContent("'from' is after 'to'")
    sig = signal or (settings.campaigns.signals[0] if settings.campaigns.signals
                     else "complaints")
    if sig not in SIGNALS:
        raise UnprocessableContent(f"signal must be one of {', '.join(SIGNALS)}")
    return sig


def _placebos(session: Session, settings: Settings, signal: str, panel: pd.DataFrame,
              sent: Sequence[Campaign]) -> pd.DataFrame:
    """The placebo windows the sent campaigns' effects are calibrated on: those before the
    latest sent window, back to ``PLACEBO_LOOKBACK_DAYS`` before the earliest (none when
    nothing was sent)."""
    if not sent:
        return _empty_placebos()
    return placebo_windows(
        session=session, signal=signal, panel=panel,
        before=max(c.window_start for c in sent),
        since=min(c.window_start for c in sent) - dt.timedelta(days=PLACEBO_LOOKBACK_DAYS),
        min_probability=settings.campaigns.min_probability)


class _Groups:
    """The scorecard's groups, each made on first use: by category (its Chinese name), by
    region (its Chinese name) or by department (the category's sector, else 未指定)."""

    def __init__(self, group_by: str, cats: Mapping[str, Category],
                 regs: Mapping[str, Region]) -> None:
        self.group_by, self.cats, self.regs = group_by, cats, regs
        self.groups: dict[str, _Group] = {}

    def key_of(self, category: str, region: str) -> tuple[str, str]:
        """The key and label of the group a (category, region) series counts under."""
        if self.group_by == "category":
            cat = self.cats.get(category)
            return category, cat.name_zh if cat else category
        if self.group_by == "region":
            reg = self.regs.get(region)
            return region, reg.name_zh if reg else region
        cat = self.cats.get(category)
        dept = (cat.sector if cat and cat.sector else None) or _NO_DEPARTMENT
        return dept, dept

    def __call__(self, category: str, region: str) -> _Group:
        k, label = self.key_of(category, region)
        return self.groups.setdefault(k, _Group(k, label))

    def rows(self) -> list[_Group]:
        """The groups in key order."""
        return sorted(self.groups.values(), key=lambda g: g.key)


def _deliveries(session: Session, ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Outbox rows per campaign and status (500 campaigns a query)."""
    out: dict[str, dict[str, int]] = {}
    for i in range(0, len(ids), 500):
        for cid, status, n in session.execute(
                select(Outbox.campaign_id, Outbox.status, func.count())
                .where(Outbox.campaign_id.in_(ids[i:i + 500]))
                .group_by(Outbox.campaign_id, Outbox.status)):
            out.setdefault(cid, {})[status] = int(n)
    return out


def _total(rows: Sequence[_Group]) -> _Group:
    """The ``total`` group: every count, lead and avoided figure of ``rows`` summed."""
    total = _Group("total", "合计")
    for g in rows:
        for f in fields(_Group):
            if f.name not in ("key", "label"):  # the counts
                setattr(total, f.name, getattr(total, f.name) + getattr(g, f.name))
        total.leads += g.leads
        total.avoided_point += g.avoided_point
        for k in _AVOIDED_KEYS:
            total.avoided_bounds[k] += g.avoided_bounds[k]
    return total


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
        sid = SeriesId.parse(str(uid))
        category, region = sid.category, sid.region
        g = group(category, region)
        g.spike_windows += 1
        sends = [c.send_date for c in by_series.get((category, region), [])
                 if c.window_start <= e + margin and c.window_end >= s - margin
                 and c.send_date < s]
        if sends:
            g.spike_windows_caught += 1
            g.leads.append((s - max(sends)).days)

