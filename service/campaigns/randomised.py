"""Randomised reminder timing, opt-in per category (a stepped-wedge design).

A department that opts a category in (``randomised_timing: {enabled: true, delay_weeks: 2,
min_regions: 4}`` in ``categories.yaml``) lets the planner randomise, among the eligible regions
of one predicted window, which get the reminder at the planned lead and which ``delay_weeks``
later. Chance alone then decides who is reminded first, so the weeks between the two send dates
give an estimate of the reminders' effect that no forecast error or selection can bias
(:func:`models.stepped_wedge.design_effect`).

The principles hold (内司发〔2020〕46号): **every region is reminded**, nobody is denied guidance;
a region is delayed only while its reminder still arrives at least ``min_notice_days`` before
its own predicted onset (a region whose lead is too short is not randomised and is sent at the
planned lead); the plan says so in each campaign's ``constraint_notes``.

Two steps:

1. :func:`propose_randomised_timing` — at the end of a planning pass: the drafts of an opted-in
   category planned from the run are grouped into **waves** (windows that start within a week
   of each other); a wave with at least ``min_regions`` eligible drafts is proposed for
   randomisation (``timing.status = "proposed"``, a note on each draft).
2. :func:`randomise_on_approval` — when the first campaign of a proposed wave is approved, the
   arms of every member are drawn with a fresh seed (:func:`models.stepped_wedge.assign_arms`),
   recorded on each member (``timing.arm``, ``timing.seed``) and in the append-only audit log
   (``campaign.randomised``); a member in the delayed arm has its send date moved by the
   delay (capped before its onset) as it is approved.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit import record
from service.campaigns.constraints import resolve_blackout
from service.campaigns.planning import fmt_date
from service.campaigns.status import UNASSIGNED_TIMING
from service.campaigns.tables import Campaign
from service.config import Settings
from service.store.reference import parse_timing_setting
from service.store.tables import Category, utcnow

__all__ = ["parse_timing_setting", "propose_randomised_timing", "randomise_on_approval",
           "NOTE"]

#: The ``constraint`` name of the notes this module writes.
NOTE = "randomised_timing"
_WAVE_GAP_DAYS = 7


def _setting(cat: Category | None) -> dict[str, Any]:
    try:
        s = parse_timing_setting(cat.randomised_timing if cat is not None else None)
    except ValueError:
        return {}
    return s if s.get("enabled") else {}


def _delayed_date(send: dt.date, window_start: dt.date, delay_days: int,
                  settings: Settings) -> dt.date | None:
    """The delayed send date: ``delay_days`` after ``send``, no later than ``min_notice_days``
    before the region's own onset, moved earlier off blackout days; None when that leaves
    less than a whole week's delay (the forecast does not allow it)."""
    latest = window_start - dt.timedelta(days=settings.campaigns.min_notice_days)
    late = min(send + dt.timedelta(days=delay_days), latest)
    blocked = resolve_blackout(settings.campaigns, send, late) if late > send else {}
    while late in blocked:
        late -= dt.timedelta(days=1)
    return late if (late - send).days >= 7 else None


def _waves(drafts: list[Campaign]) -> list[list[Campaign]]:
    out: list[list[Campaign]] = []
    for c in sorted(drafts, key=lambda c: (c.window_start, c.region)):
        if out and (c.window_start - out[-1][0].window_start).days <= _WAVE_GAP_DAYS:
            out[-1].append(c)
        else:
            out.append([c])
    return out


def _note(action: str, reason: str, frm: dt.date | None = None,
          to: dt.date | None = None) -> dict[str, Any]:
    return {"constraint": NOTE, "action": action, "reason": reason,
            "from": frm.isoformat() if frm else None, "to": to.isoformat() if to else None}


def _without_notes(c: Campaign) -> list[dict[str, Any]]:
    return [n for n in (c.constraint_notes or []) if n.get("constraint") != NOTE]


def propose_randomised_timing(*, session: Session, settings: Settings, run_id: str,
                              actor: str = "planner") -> list[str]:
    """Propose randomisation for the waves of opted-in categories planned from ``run_id``.

    Only drafts planned by the planner (not manual, send date not set by hand, no arm drawn
    yet) take part. Leaves the commit to the caller.

    Returns
    -------
    Ids of the campaigns proposed for randomisation.
    """
    cats = {c.code: c for c in session.scalars(select(Category))}
    opted = {code: s for code, c in cats.items() if (s := _setting(c))}
    if not opted:
        return []
    notice = settings.campaigns.min_notice_days
    drafts = [c for c in session.scalars(select(Campaign).where(
        Campaign.run_id == run_id, Campaign.status == "draft", Campaign.origin == "planned",
        Campaign.category.in_(opted)))
        if "send_date" not in (c.locked_fields or []) and not (c.timing or {}).get("arm")]
    by_cat: dict[str, list[Campaign]] = {}
    for c in drafts:
        by_cat.setdefault(c.category, []).append(c)
    proposed: list[str] = []
    for code, items in by_cat.items():
        s = opted[code]
        delay_days = 7 * int(s["delay_weeks"])
        for wave in _waves(items):
            wave_id = f"{run_id}:{code}:{wave[0].window_start.isoformat()}"
            eligible = [c for c in wave if _delayed_date(c.send_date, c.window_start,
                                                         delay_days, settings)]
            for c in wave:
                notes = _without_notes(c)
                if c not in eligible:
                    c.timing = {}
                    notes.append(_note("not_randomised", (
                        f"距预计多发期开始（{fmt_date(c.window_start)}）时间不足，推迟"
                        f"{s['delay_weeks']}周将晚于多发期开始前{notice}天（或落在禁发日），"
                        "本地区不参与随机化，按计划时间发送")))
                elif len(eligible) < s["min_regions"]:
                    c.timing = {}
                    notes.append(_note("not_randomised", (
                        f"本类别已开启随机化提醒时间，但本期多发期可参与随机化的地区仅"
                        f"{len(eligible)}个（至少需要{s['min_regions']}个），本期不进行随机化，"
                        "所有地区按计划时间发送")))
                else:
                    late = _delayed_date(c.send_date, c.window_start, delay_days, settings)
                    assert late is not None
                    c.timing = {"design": "stepped_wedge", "status": "proposed",
                                "wave": wave_id, "delay_days": delay_days,
                                "eligible": len(eligible)}
                    notes.append(_note("proposed", (
                        f"本类别已开启随机化提醒时间（阶梯设计）：本期多发期的{len(eligible)}个"
                        f"地区将在首个活动批准时随机分为两组，一组按计划于{fmt_date(c.send_date)}"
                        f"发送，另一组推迟至{fmt_date(late)}发送，仍在预计多发期开始"
                        f"（{fmt_date(c.window_start)}）前送达；所有地区都会收到提示，"
                        "不会有地区得不到指导"), c.send_date, late))
                    proposed.append(c.id)
                c.constraint_notes = notes
    if proposed:
        record(session=session, actor=actor, action="campaign.randomisation_proposed",
               entity_type="forecast_run", entity_id=run_id,
               detail={"campaigns": proposed})
    return proposed


def randomise_on_approval(*, session: Session, settings: Settings, campaign: Campaign,
                          actor: str) -> None:
    """Draw the wave's arms (first approval of a proposed wave) and move a delayed member's
    send date. Called by ``approve_campaign`` before the transition; no commit here.

    The seed comes from :func:`secrets.randbits` (not guessable beforehand) and is recorded
    with the arms, so the assignment can be re-derived and audited:
    ``assign_arms(members, seed=seed)``.
    """
    timing = dict(campaign.timing or {})
    if timing.get("design") != "stepped_wedge":
        return
    if not timing.get("arm"):
        wave = str(timing.get("wave"))
        members = [c for c in session.scalars(select(Campaign).where(
            Campaign.category == campaign.category,
            Campaign.status.in_(UNASSIGNED_TIMING)))
            if (c.timing or {}).get("wave") == wave and not (c.timing or {}).get("arm")]
        if campaign not in members:
            members.append(campaign)
        regions = {c.region: c for c in members}
        if len(regions) < 2:
            campaign.timing = {}
            return
        from models.stepped_wedge import assign_arms  # scipy + pandas: only when drawing

        seed = secrets.randbits(31)
        arms = dict(zip(*(assign_arms(list(regions), seed=seed)[k].tolist()
                          for k in ("unit", "arm")), strict=True))
        now = utcnow().isoformat()
        for region, c in regions.items():
            c.timing = {**(c.timing or {}), "status": "assigned", "arm": arms[region],
                        "seed": seed, "assigned_at": now, "assigned_by": actor,
                        "members": sorted(regions)}
        record(session=session, actor=actor, action="campaign.randomised",
               entity_type="campaign", entity_id=campaign.id,
               detail={"wave": wave, "seed": seed, "design": "stepped_wedge",
                       "delay_days": timing.get("delay_days"), "arms": arms,
                       "campaigns": {r: c.id for r, c in regions.items()}})
        timing = dict(campaign.timing)
    notes = _without_notes(campaign)
    if timing.get("arm") == "delayed":
        late = _delayed_date(campaign.send_date, campaign.window_start,
                             int(timing.get("delay_days") or 14), settings)
        if late is None:
            notes.append(_note("kept", (
                "随机分组为推迟组，但距预计多发期开始已不足以推迟，为不影响指导，"
                f"仍按{fmt_date(campaign.send_date)}发送（不计入随机化评估）")))
            campaign.timing = {**timing, "arm": "early", "arm_drawn": "delayed",
                               "excluded": "no room to delay before the onset"}
        else:
            notes.append(_note("moved", (
                f"随机分组为推迟组（随机种子{timing['seed']}）：发送日期由"
                f"{fmt_date(campaign.send_date)}推迟至{fmt_date(late)}，"
                f"仍在预计多发期开始（{fmt_date(campaign.window_start)}）前送达；"
                "同期另一组地区按计划时间发送，所有地区都会收到提示"),
                campaign.send_date, late))
            campaign.timing = {**timing, "planned_send_date": campaign.send_date.isoformat()}
            campaign.send_date = late
    else:
        notes.append(_note("kept", (
            f"随机分组为按时组（随机种子{timing['seed']}）：按计划于"
            f"{fmt_date(campaign.send_date)}发送；同期另一组地区推迟发送，"
            "所有地区都会收到提示")))
    campaign.constraint_notes = notes
