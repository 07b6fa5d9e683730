"""Campaign lifecycle: plan from forecasts, create, edit, approve, cancel, list, publish.

Lifecycle (:data:`ALLOWED_TRANSITIONS`)::

    draft ──► approved ──► scheduled ──► dispatching ──► sent
      │  ▲        │            │                    └──► partially_failed ─► dispatching | sent
      ▼  │        ├──► needs_review ◄──┘
    dropped       │        │  (window moved > a week or vanished; approve again or cancel)
                  ▼        ▼
      cancelled ◄── draft, dropped, approved, scheduled, needs_review
      superseded ◄── draft, dropped, needs_review   (the planner replaced it)

``dropped`` is the planner's draft that a constraint left without a send date; replanning may
revive it. Every change goes through :func:`transition`, which checks the table, stamps who
and when, and appends to the audit log. Functions named ``*_campaign`` commit their own unit of
work; :func:`transition` does not (callers such as the scheduler commit it together with their
own writes, e.g. outbox rows).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from service.audit import record
from service.campaigns.content import RenderedMessage, render_campaign, render_variants
from service.campaigns.planning import (
    Booking,
    Constraints,
    Planner,
    Window,
    fmt_date,
    ideal_send_date,
    merge_peaks,
    rank_windows,
    split_window,
)
from service.campaigns.randomised import propose_randomised_timing, randomise_on_approval
from service.campaigns.tables import Campaign, Recipient
from service.config import CampaignSettings, Settings
from service.errors import Conflict, NotFound, UnprocessableContent
from service.evaluation.storage import mark_stale
from service.store.tables import (
    Category,
    EnforcementAction,
    ForecastRun,
    ForecastWeek,
    Peak,
    Region,
    utcnow,
)

__all__ = [
    "STATUSES",
    "ALLOWED_TRANSITIONS",
    "EDITABLE",
    "OCCUPYING",
    "PUBLISHED",
    "PlanResult",
    "Audience",
    "local_today",
    "transition",
    "plan_campaigns",
    "create_campaign",
    "update_campaign",
    "approve_campaign",
    "cancel_campaign",
    "get_campaign",
    "list_campaigns",
    "campaign_peak",
    "render_message",
    "preview",
    "resolve_audience",
    "public_reminders",
    "create_recipient",
    "set_may_contact",
    "resolve_blackout",
    "encode_cursor",
    "decode_cursor",
]

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"approved", "cancelled", "superseded", "dropped"}),
    "dropped": frozenset({"draft", "cancelled", "superseded"}),
    "approved": frozenset({"scheduled", "cancelled", "needs_review"}),
    "scheduled": frozenset({"dispatching", "cancelled", "needs_review"}),
    "dispatching": frozenset({"sent", "partially_failed"}),
    "partially_failed": frozenset({"dispatching", "sent"}),
    "needs_review": frozenset({"approved", "cancelled", "superseded"}),
    "sent": frozenset(),
    "cancelled": frozenset(),
    "superseded": frozenset(),
}
STATUSES = tuple(ALLOWED_TRANSITIONS)
#: Statuses whose content may be edited (PATCH).
EDITABLE = frozenset({"draft", "dropped", "needs_review"})
#: Statuses whose send date is taken and fixed for the planner.
OCCUPYING = frozenset({"approved", "scheduled", "dispatching", "sent", "partially_failed",
                       "needs_review"})
#: Statuses of reminders that are published once their send date has come.
PUBLISHED = frozenset({"approved", "scheduled", "dispatching", "sent", "partially_failed"})
_REPLANNABLE = frozenset({"draft", "dropped"})
_FLAGGABLE = frozenset({"approved", "scheduled"})
_BLOCK_LABELS = {"spring_festival": "春节假期", "qingming": "清明节假期", "labor_day": "劳动节假期",
                 "dragon_boat": "端午节假期", "mid_autumn": "中秋节假期",
                 "national_day": "国庆节假期", "new_year": "元旦假期"}


# --------------------------------------------------------------------------- helpers


def local_today(settings: Settings) -> dt.date:
    """Today in the deployment's time zone."""
    return dt.datetime.now(ZoneInfo(settings.timezone)).date()


def _load(session: Session, campaign_id: str, *, lock: bool = False) -> Campaign:
    campaign = session.get(Campaign, campaign_id, with_for_update=lock or None)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    return campaign


def _category(session: Session, code: str) -> Category:
    cat = session.get(Category, code)
    if cat is None:
        raise UnprocessableContent(f"unknown category '{code}'", category=code)
    return cat


def _region(session: Session, code: str) -> Region:
    reg = session.get(Region, code)
    if reg is None:
        raise UnprocessableContent(f"unknown region '{code}'", region=code)
    return reg


def _legal_basis_error(cat: Category) -> str | None:
    items = [i for i in (cat.legal_basis or [])
             if (isinstance(i, dict) and str(i.get("title") or "").strip())
             or (isinstance(i, str) and i.strip())]
    if items:
        return None
    return (f"category '{cat.code}' ({cat.name_zh}) has no legal basis; a reminder must cite "
            "its legal basis, so it cannot be planned or approved — add legal_basis to the "
            "category configuration")


def _require_legal_basis(cat: Category) -> None:
    err = _legal_basis_error(cat)
    if err:
        raise UnprocessableContent(err, category=cat.code)


def _lead_days(cat: Category, cfg: CampaignSettings) -> int:
    return int(cat.lead_days) if cat.lead_days is not None else cfg.default_lead_days


def _audience_key(cat: Category, region: str) -> str:
    return f"{region}|{cat.sector or cat.code}"


def _title(cat: Category, reg: Region) -> str:
    return f"【执法事项提示】{reg.name_zh}·{cat.name_zh}"


def resolve_blackout(cfg: CampaignSettings, start: dt.date, end: dt.date) -> dict[dt.date, str]:
    """Blackout days between ``start`` and ``end`` with a label for explanations.

    Holiday blocks come from :func:`models.calendar.day_table` (official days off of the
    configured festival blocks, weekends inside the break included).
    """
    out: dict[dt.date, str] = {}
    if cfg.blackout_holiday_blocks and end >= start:
        from models.calendar import day_table

        table = day_table(start, end)
        wanted = set(cfg.blackout_holiday_blocks)
        for ds, block in zip(table["ds"], table["block"], strict=True):
            if isinstance(block, str) and block in wanted:
                out[ds.date()] = _BLOCK_LABELS.get(block, block)
    for d in cfg.blackout_dates:
        if start <= d <= end:
            out.setdefault(d, "配置的禁发日")
    return out


def _constraints(cfg: CampaignSettings, start: dt.date, end: dt.date) -> Constraints:
    return Constraints(min_spacing_days=cfg.min_spacing_days,
                       weekly_capacity=cfg.weekly_capacity_per_region,
                       blackout=resolve_blackout(cfg, start, end),
                       max_advance_days=cfg.max_advance_days,
                       min_notice_days=cfg.min_notice_days)


def _booking(c: Campaign, cats: dict[str, Category]) -> Booking:
    cat = cats.get(c.category)
    audience = _audience_key(cat, c.region) if cat else f"{c.region}|{c.category}"
    return Booking(c.send_date, c.region, audience, cat.name_zh if cat else c.category)


def transition(
    *,
    session: Session,
    campaign: Campaign,
    to: str,
    actor: str,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
    remote_addr: str | None = None,
) -> Campaign:
    """Move ``campaign`` to status ``to`` if :data:`ALLOWED_TRANSITIONS` allows it.

    Stamps ``approved_by/at`` or ``cancelled_by/at``, appends ``campaign.<to>`` to the audit
    log (with ``from``, ``to`` and ``reason``) and leaves the commit to the caller.
    Raises :class:`~service.errors.Conflict` (409) for an illegal transition.
    """
    if to not in ALLOWED_TRANSITIONS:
        raise UnprocessableContent(f"unknown campaign status '{to}'")
    frm = campaign.status
    allowed = ALLOWED_TRANSITIONS.get(frm, frozenset())
    if to not in allowed:
        raise Conflict(f"campaign {campaign.id} is {frm}; it cannot become {to}",
                       status_now=frm, allowed=sorted(allowed))
    now = utcnow()
    campaign.status = to
    campaign.status_changed_at = now
    mark_stale(session, f"campaign {to}")  # the evaluation reads campaign statuses
    campaign.updated_at = now
    if to == "approved":
        campaign.approved_by, campaign.approved_at = actor, now
    elif to == "cancelled":
        campaign.cancelled_by, campaign.cancelled_at = actor, now
        campaign.cancel_reason = reason
    record(session=session, actor=actor, action=f"campaign.{to}", entity_type="campaign",
           entity_id=campaign.id, remote_addr=remote_addr,
           detail={"from": frm, "to": to, "reason": reason, **(detail or {})})
    return campaign


# --------------------------------------------------------------------------- audience


@dataclass
class Audience:
    """Who a campaign reaches: the public, derived entities, and contactable recipients."""

    public: bool
    entity_ids: list[str]
    recipients: list[Recipient]

    def summary(self) -> dict[str, Any]:
        return {"public": self.public, "entities": len(self.entity_ids),
                "recipients": len(self.recipients)}


def _region_family(session: Session, code: str) -> tuple[set[str], set[str]]:
    """(the region and its descendants, the region and its ancestors)."""
    parents = dict(session.execute(select(Region.code, Region.parent)).all())
    down = {code}
    changed = True
    while changed:
        changed = False
        for child, parent in parents.items():
            if parent in down and child not in down:
                down.add(child)
                changed = True
    up = {code}
    cur: str | None = parents.get(code)
    while cur and cur not in up:
        up.add(cur)
        cur = parents.get(cur)
    return down, up


def _entities(session: Session, category: str, regions: set[str]) -> list[str]:
    rows = session.scalars(select(EnforcementAction.entity_id).distinct().where(
        EnforcementAction.category == category, EnforcementAction.region.in_(regions),
        EnforcementAction.entity_id.is_not(None)))
    return sorted(r for r in rows if r)


def resolve_audience(*, session: Session, campaign: Campaign) -> Audience:
    """The public (if the campaign is public), regulated entities in the region with past
    enforcement actions in the category, and active recipients that may be contacted whose
    region, category and sector filters match."""
    cat = _category(session, campaign.category)
    down, up = _region_family(session, campaign.region)
    entity_ids = _entities(session, campaign.category, down) if campaign.notify_entities else []
    recipients = []
    for r in session.scalars(select(Recipient).where(Recipient.active.is_(True),
                                                     Recipient.may_contact.is_(True))
                             .order_by(Recipient.id)):
        if r.region is not None and r.region not in down | up:
            continue
        if r.categories and campaign.category not in r.categories:
            continue
        if r.sectors and cat.sector not in r.sectors:
            continue
        if r.kind == "entity" and not campaign.notify_entities:
            continue
        recipients.append(r)
    return Audience(public=campaign.public, entity_ids=entity_ids, recipients=recipients)


def create_recipient(
    *,
    session: Session,
    actor: str,
    name: str,
    kind: str,
    region: str | None = None,
    categories: Sequence[str] = (),
    sectors: Sequence[str] = (),
    entity_id: str | None = None,
    may_contact: bool = False,
    webhook_url: str | None = None,
    email: str | None = None,
) -> Recipient:
    """Register a recipient. Contacts are refused (422) unless ``may_contact`` is true."""
    if kind not in ("department", "entity", "subscriber"):
        raise UnprocessableContent(f"recipient kind must be department, entity or subscriber, "
                                   f"not '{kind}'")
    if (webhook_url or email) and not may_contact:
        raise UnprocessableContent("contacts are stored only for recipients that may be "
                                   "contacted; set may_contact or leave the contacts out")
    if region is not None:
        _region(session, region)
    row = Recipient(name=name, kind=kind, region=region, categories=list(categories),
                    sectors=list(sectors), entity_id=entity_id, may_contact=may_contact,
                    webhook_url=webhook_url if may_contact else None,
                    email=email if may_contact else None)
    session.add(row)
    session.flush()
    record(session=session, actor=actor, action="recipient.created", entity_type="recipient",
           entity_id=row.id, detail={"kind": kind, "region": region,
                                     "may_contact": may_contact,
                                     "channels": [c for c, v in (("webhook", webhook_url),
                                                                 ("email", email)) if v]})
    session.commit()
    return row


def set_may_contact(*, session: Session, recipient_id: str, may_contact: bool,
                    actor: str) -> Recipient:
    """Grant or withdraw permission to contact; withdrawing erases the stored contacts."""
    row = session.get(Recipient, recipient_id)
    if row is None:
        raise NotFound(f"recipient {recipient_id} does not exist")
    row.may_contact = may_contact
    if not may_contact:
        row.webhook_url = None
        row.email = None
    row.updated_at = utcnow()
    record(session=session, actor=actor, action="recipient.may_contact",
           entity_type="recipient", entity_id=row.id, detail={"may_contact": may_contact})
    session.commit()
    return row


# --------------------------------------------------------------------------- planning


@dataclass
class PlanResult:
    """What a planning pass did."""

    run_id: str
    today: dt.date
    windows: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    untouched: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "today": self.today, "windows": self.windows,
                "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
                "flagged": self.flagged, "superseded": self.superseded,
                "dropped": self.dropped, "untouched": self.untouched, "errors": self.errors}


def _overlaps(c: Campaign, w: Window, days: int) -> bool:
    tol = dt.timedelta(days=days)
    return c.window_start <= w.end + tol and c.window_end >= w.start - tol


def _match(windows: Sequence[Window], campaigns: Sequence[Campaign],
           days: int) -> dict[tuple[str, str, dt.date], Campaign]:
    """Pair each window (highest rank first) with at most one existing campaign."""
    by_series: dict[tuple[str, str], list[Campaign]] = {}
    for c in campaigns:
        by_series.setdefault((c.category, c.region), []).append(c)
    used: set[str] = set()
    out: dict[tuple[str, str, dt.date], Campaign] = {}
    for w in windows:
        options = [c for c in by_series.get((w.category, w.region), [])
                   if c.id not in used and _overlaps(c, w, days)]
        if not options:
            continue
        best = min(options, key=lambda c: (abs((c.window_start - w.start).days)
                                           + abs((c.window_end - w.end).days),
                                           c.status not in _REPLANNABLE, c.created_at, c.id))
        used.add(best.id)
        out[w.key] = best
    return out


def _weeks_evidence(session: Session, run_id: str, w: Window) -> list[dict[str, Any]]:
    series = [str(p["series_id"]) for p in w.peaks]
    rows = session.execute(select(ForecastWeek.series_id, ForecastWeek.week,
                                  ForecastWeek.expected, ForecastWeek.p_spike).where(
        ForecastWeek.run_id == run_id, ForecastWeek.series_id.in_(series),
        ForecastWeek.week >= w.start, ForecastWeek.week <= w.end)
        .order_by(ForecastWeek.series_id, ForecastWeek.week)).all()
    return [{"series_id": s, "week": wk.isoformat(), "expected": round(float(e), 2),
             "p_spike": round(float(p), 3)} for s, wk, e, p in rows]


def _evidence(session: Session, run_id: str, w: Window) -> list[dict[str, Any]]:
    weeks = _weeks_evidence(session, run_id, w)
    return [{**dict(p), "weeks": [x for x in weeks if x["series_id"] == p["series_id"]]}
            for p in w.peaks]


def _apply_window(c: Campaign, w: Window, *, lead_days: int, run_id: str, rank: int,
                  evidence: list[dict[str, Any]]) -> None:
    c.window_start, c.window_end, c.peak_week = w.start, w.end, w.peak_week
    c.signal, c.lead_days, c.rank = w.signal, lead_days, rank
    c.expected_count, c.expected_excess = w.expected_count, w.expected_excess
    c.probability, c.threshold = w.probability, w.threshold
    c.onset, c.decision_threshold = w.expected_onset, w.decision_threshold
    c.part, c.parts = w.part, w.parts
    c.peak_id, c.run_id, c.last_run_id = w.peak_id, run_id, run_id
    c.evidence = evidence


def _proposal(w: Window, lead_days: int, today: dt.date, run_id: str) -> dict[str, Any]:
    return {"window_start": w.start.isoformat(), "window_end": w.end.isoformat(),
            "peak_week": w.peak_week.isoformat(),
            "send_date": max(ideal_send_date(w.expected_onset, lead_days), today).isoformat(),
            "onset": w.expected_onset.isoformat(), "decision_threshold": w.decision_threshold,
            "part": w.part, "parts": w.parts,
            "expected_count": w.expected_count, "expected_excess": w.expected_excess,
            "probability": w.probability, "threshold": w.threshold, "peak_id": w.peak_id,
            "signal": w.signal, "run_id": run_id}


def plan_campaigns(
    *,
    session: Session,
    settings: Settings,
    today: dt.date | None = None,
    run_id: str | None = None,
    categories: Sequence[str] | None = None,
    actor: str = "planner",
) -> PlanResult:
    """(Re)plan campaigns from the predicted peak windows of the latest (or a given) run.

    One campaign per (category, region, window): a window matches an existing campaign of the
    same category and region whose window overlaps it within ``window_match_days``. Drafts are
    updated in place; approved/scheduled campaigns whose window moved by more than
    ``review_shift_days`` — or vanished from a run that covers their window — become
    ``needs_review`` with the new proposal; drafts whose window vanished are ``superseded``;
    dispatching, sent, partially failed and cancelled campaigns are left as they are.

    A category without a legal basis is not planned: it is listed in ``errors`` and the other
    categories are planned. Asking explicitly (``categories``) for such a category raises 422.
    """
    from service.forecasting import get_run, latest_run, list_peaks  # pandas: only to plan

    cfg = settings.campaigns
    today = today or local_today(settings)
    run: ForecastRun | None = get_run(session=session, run_id=run_id) if run_id \
        else latest_run(session=session)
    if run is None:
        raise NotFound("there is no finished forecast run to plan from; run a forecast first")
    if run.status not in ("succeeded", "partial"):
        raise Conflict(f"forecast run {run.id} is {run.status}; plan from a finished run")
    cats = {c.code: c for c in session.scalars(select(Category))}
    regions = {r.code: r for r in session.scalars(select(Region))}
    wanted = set(categories) if categories else None
    if wanted:
        unknown = sorted(wanted - set(cats))
        if unknown:
            raise UnprocessableContent(f"unknown category {', '.join(unknown)}",
                                       categories=unknown)
        for code in sorted(wanted):
            _require_legal_basis(cats[code])
    result = PlanResult(run_id=run.id, today=today)
    peaks = [p for p in list_peaks(session=session, run_id=run.id)
             if p.signal in cfg.signals and p.max_probability >= cfg.min_probability
             and p.end >= today and (wanted is None or p.category in wanted)]
    # merged over signals, then split into campaign windows of the category's length
    windows = [part for w in merge_peaks(peaks, gap_days=7)
               for part in split_window(w, int(cats[w.category].max_campaign_weeks or 6)
                                        if w.category in cats else 6)]
    no_basis: set[str] = set()
    plannable: list[Window] = []
    for w in windows:
        cat = cats.get(w.category)
        err = _legal_basis_error(cat) if cat else f"unknown category '{w.category}'"
        if err or w.region not in regions:
            if err and w.category not in no_basis:
                no_basis.add(w.category)
                result.errors.append({"category": w.category, "detail": err})
            continue
        plannable.append(w)
    ranked = rank_windows(plannable)
    result.windows = len(ranked)

    scope = select(Campaign).where(Campaign.status != "superseded")
    if wanted:
        scope = scope.where(Campaign.category.in_(wanted))
    existing = list(session.scalars(scope.order_by(Campaign.created_at, Campaign.id)))
    others = [] if not wanted else list(session.scalars(select(Campaign).where(
        Campaign.status.in_(OCCUPYING | _REPLANNABLE), Campaign.category.not_in(wanted))))
    matches = _match(ranked, existing, cfg.window_match_days)
    matched_ids = {c.id for c in matches.values()}

    # campaigns whose window the run covers but no longer predicts
    covered_from = (run.train_until + dt.timedelta(days=1)) if run.train_until else today
    covered_to = covered_from + dt.timedelta(days=run.horizon_days - 1)
    for c in existing:
        if (c.id in matched_ids or c.origin != "planned" or c.category in no_basis
                or c.window_start < max(covered_from, today) or c.window_start > covered_to):
            continue
        if c.status in _REPLANNABLE:
            transition(session=session, campaign=c, to="superseded", actor=actor,
                       reason="window_vanished", detail={"run_id": run.id})
            result.superseded.append(c.id)
        elif c.status in _FLAGGABLE:
            c.review = {"reason": "window_vanished", "run_id": run.id, "proposal": None,
                        "detail": (f"最新预测（{run.id}）不再预计{fmt_date(c.window_start)}至"
                                   f"{fmt_date(c.window_end)}的多发期，请复核是否仍需发送")}
            transition(session=session, campaign=c, to="needs_review", actor=actor,
                       reason="window_vanished", detail={"run_id": run.id})
            result.flagged.append(c.id)

    def _fixed(c: Campaign) -> bool:
        """Send dates this pass must plan around (it does not move them)."""
        if c.status in OCCUPYING:
            return True
        if c.status != "draft" or c.send_date < today:
            return False
        return (c.id not in matched_ids or c.origin != "planned"
                or "send_date" in (c.locked_fields or []))

    horizon_end = max([w.end for w in ranked] + [today]) + dt.timedelta(days=90)
    planner = Planner(_constraints(cfg, today, horizon_end), today,
                      fixed=[_booking(c, cats) for c in existing + others if _fixed(c)])

    for rank, w in enumerate(ranked, start=1):
        cat, reg = cats[w.category], regions[w.region]
        lead = _lead_days(cat, cfg)
        camp = matches.get(w.key)
        if camp is not None and camp.origin != "planned":
            result.untouched.append(camp.id)  # a manual campaign: the planner leaves it alone
            continue
        if camp is not None and camp.status not in _REPLANNABLE:
            if camp.status in _FLAGGABLE:
                shift = max(abs((camp.window_start - w.start).days),
                            abs((camp.window_end - w.end).days))
                if shift > cfg.review_shift_days:
                    camp.review = {
                        "reason": "window_moved", "run_id": run.id,
                        "detail": (f"最新预测的多发期为{fmt_date(w.start)}至{fmt_date(w.end)}，"
                                   f"与已批准的{fmt_date(camp.window_start)}至"
                                   f"{fmt_date(camp.window_end)}相差{shift}天，请复核"),
                        "proposal": _proposal(w, lead, today, run.id)}
                    transition(session=session, campaign=camp, to="needs_review", actor=actor,
                               reason="window_moved", detail={"run_id": run.id,
                                                              "shift_days": shift})
                    result.flagged.append(camp.id)
                else:
                    camp.last_run_id = run.id
                    result.unchanged.append(camp.id)
            elif camp.status == "needs_review":
                camp.review = {**(camp.review or {}), "run_id": run.id,
                               "proposal": _proposal(w, lead, today, run.id)}
                result.unchanged.append(camp.id)
            else:
                result.untouched.append(camp.id)
            continue
        evidence = _evidence(session, run.id, w)
        audience_key = _audience_key(cat, w.region)
        if camp is None:
            placement = planner.place(window_start=w.start, window_end=w.end, lead_days=lead,
                                      region=w.region, audience=audience_key, label=cat.name_zh,
                                      onset=w.expected_onset)
            camp = Campaign(category=w.category, region=w.region, origin="planned",
                            status="dropped" if placement.dropped else "draft",
                            planned_send_date=placement.ideal,
                            send_date=placement.send_date or placement.ideal,
                            constraint_notes=placement.notes, title=_title(cat, reg),
                            public=True, notify_entities=True, created_by=actor)
            _apply_window(camp, w, lead_days=lead, run_id=run.id, rank=rank, evidence=evidence)
            camp.audience = _audience_summary(session, camp)
            session.add(camp)
            session.flush()
            record(session=session, actor=actor, action="campaign.created",
                   entity_type="campaign", entity_id=camp.id,
                   detail={"origin": "planned", "status": camp.status, "run_id": run.id,
                           "window_start": w.start, "window_end": w.end,
                           "send_date": camp.send_date, "rank": rank,
                           "constraints": [n["constraint"] for n in placement.notes]})
            result.created.append(camp.id)
            if placement.dropped:
                result.dropped.append(camp.id)
            continue
        before = (camp.window_start, camp.window_end, camp.send_date, camp.status,
                  camp.constraint_notes)
        _apply_window(camp, w, lead_days=lead, run_id=run.id, rank=rank, evidence=evidence)
        if "send_date" in (camp.locked_fields or []):
            new_status = camp.status
        else:
            placement = planner.place(window_start=w.start, window_end=w.end, lead_days=lead,
                                      region=w.region, audience=audience_key, label=cat.name_zh,
                                      onset=w.expected_onset)
            camp.planned_send_date = placement.ideal
            camp.send_date = placement.send_date or placement.ideal
            camp.constraint_notes = placement.notes
            new_status = "dropped" if placement.dropped else "draft"
        if "title" not in (camp.locked_fields or []):
            camp.title = _title(cat, reg)
        camp.audience = _audience_summary(session, camp)
        after = (camp.window_start, camp.window_end, camp.send_date, new_status,
                 camp.constraint_notes)
        if new_status != camp.status:
            transition(session=session, campaign=camp, to=new_status, actor=actor,
                       reason="replanned", detail={"run_id": run.id})
        if before != after:
            camp.updated_at = utcnow()
            record(session=session, actor=actor, action="campaign.replanned",
                   entity_type="campaign", entity_id=camp.id,
                   detail={"run_id": run.id, "window_start": [before[0], after[0]],
                           "window_end": [before[1], after[1]],
                           "send_date": [before[2], after[2]]})
            result.updated.append(camp.id)
        else:
            result.unchanged.append(camp.id)
        if new_status == "dropped":
            result.dropped.append(camp.id)

    propose_randomised_timing(session=session, settings=settings, run_id=run.id, actor=actor)
    session.commit()
    return result


def _audience_summary(session: Session, c: Campaign) -> dict[str, Any]:
    return resolve_audience(session=session, campaign=c).summary()


# --------------------------------------------------------------------------- CRUD


def _parse_date(value: Any, name: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise UnprocessableContent(f"{name} must be a date (YYYY-MM-DD)") from exc


def create_campaign(
    *,
    session: Session,
    settings: Settings,
    actor: str,
    category: str,
    region: str,
    window_start: dt.date,
    window_end: dt.date,
    send_date: dt.date | None = None,
    title: str | None = None,
    content_overrides: dict[str, str] | None = None,
    public: bool = True,
    notify_entities: bool = True,
    notes: str | None = None,
    today: dt.date | None = None,
) -> Campaign:
    """Create a manual draft. Without ``send_date`` the planner's rules choose it."""
    cfg = settings.campaigns
    today = today or local_today(settings)
    cat, reg = _category(session, category), _region(session, region)
    _require_legal_basis(cat)
    if window_end < window_start:
        raise UnprocessableContent("window_end is before window_start")
    if window_end < today:
        raise UnprocessableContent("the window is already over")
    lead = _lead_days(cat, cfg)
    audience_key = _audience_key(cat, region)
    others = list(session.scalars(select(Campaign).where(
        Campaign.status.in_(OCCUPYING | {"draft"}), Campaign.send_date >= today
        - dt.timedelta(days=cfg.min_spacing_days))))
    cats = {c.code: c for c in session.scalars(select(Category))}
    planner = Planner(_constraints(cfg, today, window_end + dt.timedelta(days=30)), today,
                      fixed=[_booking(c, cats) for c in others])
    locked: list[str] = []
    status = "draft"
    if send_date is None:
        placement = planner.place(window_start=window_start, window_end=window_end,
                                  lead_days=lead, region=region, audience=audience_key,
                                  book=False)
        planned, chosen, notes_ = placement.ideal, placement.send_date, placement.notes
        if chosen is None:
            status, chosen = "dropped", placement.ideal
    else:
        if send_date < today:
            raise UnprocessableContent("send_date is in the past")
        if send_date > window_end:
            raise UnprocessableContent("send_date is after the window ends")
        planned, chosen, notes_ = send_date, send_date, []
        hit = planner.blocked_by(send_date, region=region, audience=audience_key)
        if hit is not None:
            notes_.append({"constraint": hit[0], "action": "kept", "from": None,
                           "to": send_date.isoformat(),
                           "reason": f"{hit[1]}；发送日期由人工指定，予以保留"})
        locked.append("send_date")
    c = Campaign(origin="manual", status=status, category=category, region=region,
                 window_start=window_start, window_end=window_end, lead_days=lead,
                 planned_send_date=planned, send_date=chosen, constraint_notes=notes_,
                 title=title or _title(cat, reg), content_overrides=dict(content_overrides or {}),
                 public=public, notify_entities=notify_entities, notes=notes,
                 locked_fields=locked + (["title"] if title else []), created_by=actor)
    for channel in content_overrides or {}:
        render_campaign(campaign=c, category=cat, region=reg, channel=channel)
    c.audience = _audience_summary(session, c)
    session.add(c)
    session.flush()
    record(session=session, actor=actor, action="campaign.created", entity_type="campaign",
           entity_id=c.id, detail={"origin": "manual", "status": status, "category": category,
                                   "region": region, "window_start": window_start,
                                   "window_end": window_end, "send_date": chosen})
    session.commit()
    return c


_PATCHABLE = ("title", "content_overrides", "public", "notify_entities", "notes", "send_date")


def update_campaign(
    *,
    session: Session,
    settings: Settings,
    campaign_id: str,
    actor: str,
    changes: dict[str, Any],
    today: dt.date | None = None,
) -> Campaign:
    """Edit a campaign before approval (draft, dropped, needs_review); 409 otherwise.

    ``content_overrides`` maps a channel (or ``default``) to a Jinja2 template; a None value
    removes the override. Edited ``title`` / ``send_date`` are kept by later replanning.
    Setting ``send_date`` on a dropped campaign makes it a draft again (a human overrides the
    constraint that dropped it).
    """
    today = today or local_today(settings)
    c = _load(session, campaign_id, lock=True)
    if c.status not in EDITABLE:
        raise Conflict(f"campaign {c.id} is {c.status}; only draft, dropped and needs_review "
                       "campaigns can be edited", status_now=c.status)
    unknown = sorted(set(changes) - set(_PATCHABLE))
    if unknown:
        raise UnprocessableContent(f"these fields cannot be edited: {', '.join(unknown)}")
    cat, reg = _category(session, c.category), _region(session, c.region)
    locked = list(c.locked_fields or [])
    if "title" in changes:
        title = str(changes["title"] or "").strip()
        if not title:
            raise UnprocessableContent("title must not be empty")
        c.title = title[:300]
        locked.append("title")
    if "content_overrides" in changes:
        merged = dict(c.content_overrides or {})
        for channel, source in dict(changes["content_overrides"] or {}).items():
            if source is None:
                merged.pop(channel, None)
            else:
                merged[str(channel)] = str(source)
        c.content_overrides = merged
    for flag in ("public", "notify_entities"):
        if flag in changes:
            setattr(c, flag, bool(changes[flag]))
    if "notes" in changes:
        c.notes = changes["notes"]
    revive = False
    if "send_date" in changes:
        new = _parse_date(changes["send_date"], "send_date")
        if new < today:
            raise UnprocessableContent("send_date is in the past")
        if new > c.window_end:
            raise UnprocessableContent("send_date is after the window ends")
        c.send_date = new
        locked.append("send_date")
        revive = c.status == "dropped"
    for channel in sorted({*(c.content_overrides or {}), *settings.campaigns.channels}):
        render_campaign(campaign=c, category=cat, region=reg, channel=channel)
    c.locked_fields = sorted(set(locked))
    c.updated_at = utcnow()
    c.frozen_content = {}
    if any(k in changes for k in ("public", "notify_entities")):
        c.audience = _audience_summary(session, c)
    record(session=session, actor=actor, action="campaign.edited", entity_type="campaign",
           entity_id=c.id, detail={"fields": sorted(changes)})
    if revive:
        transition(session=session, campaign=c, to="draft", actor=actor,
                   reason="send date set by hand")
    session.commit()
    return c


def render_message(*, session: Session, campaign: Campaign, channel: str) -> RenderedMessage:
    """The message that is (or will be) sent on ``channel``: the copy frozen at approval when
    there is one, otherwise a live rendering. The dispatcher sends exactly this."""
    frozen = (campaign.frozen_content or {}).get(channel)
    if isinstance(frozen, dict) and "body" in frozen:
        return RenderedMessage(channel=channel, subject=str(frozen.get("subject", "")),
                               body=str(frozen["body"]), template=str(frozen.get("template", "")),
                               frozen=True)
    cat, reg = _category(session, campaign.category), _region(session, campaign.region)
    return render_campaign(campaign=campaign, category=cat, region=reg, channel=channel)


def preview(*, session: Session, settings: Settings, campaign_id: str,
            channel: str) -> RenderedMessage:
    """Render one channel of a campaign exactly as it will be sent."""
    known = set(settings.campaigns.channels) | {"default"}
    if channel not in known:
        raise UnprocessableContent(f"unknown channel '{channel}'; known: "
                                   f"{', '.join(sorted(known))}")
    return render_message(session=session, campaign=_load(session, campaign_id),
                          channel=channel)


def approve_campaign(
    *,
    session: Session,
    settings: Settings,
    campaign_id: str,
    actor: str,
    note: str | None = None,
    apply_proposal: bool = True,
    today: dt.date | None = None,
    remote_addr: str | None = None,
) -> Campaign:
    """Approve a draft (or a campaign under review): check the legal basis, render and freeze
    every channel's message, record who and when. 409 from other statuses, 422 when the
    category has no legal basis or a template fails.

    Approving a ``needs_review`` campaign adopts the reviewed proposal (new window and send
    date) unless ``apply_proposal`` is false.
    """
    today = today or local_today(settings)
    c = _load(session, campaign_id, lock=True)
    if "approved" not in ALLOWED_TRANSITIONS.get(c.status, frozenset()):
        raise Conflict(f"campaign {c.id} is {c.status}; only draft and needs_review campaigns "
                       "can be approved", status_now=c.status,
                       allowed=sorted(ALLOWED_TRANSITIONS.get(c.status, frozenset())))
    cat, reg = _category(session, c.category), _region(session, c.region)
    _require_legal_basis(cat)
    detail: dict[str, Any] = {}
    proposal = (c.review or {}).get("proposal")
    if c.status == "needs_review" and apply_proposal and isinstance(proposal, dict):
        c.window_start = _parse_date(proposal["window_start"], "window_start")
        c.window_end = _parse_date(proposal["window_end"], "window_end")
        c.peak_week = _parse_date(proposal["peak_week"], "peak_week")
        c.send_date = c.planned_send_date = _parse_date(proposal["send_date"], "send_date")
        for name in ("expected_count", "expected_excess", "probability", "threshold",
                     "signal", "decision_threshold", "part", "parts"):
            setattr(c, name, proposal.get(name))
        c.onset = _parse_date(proposal["onset"], "onset") if proposal.get("onset") else None
        peak = session.get(Peak, proposal["peak_id"]) if proposal.get("peak_id") else None
        run = session.get(ForecastRun, proposal["run_id"]) if proposal.get("run_id") else None
        c.peak_id = peak.id if peak is not None else None  # the run may have been deleted
        c.run_id = run.id if run is not None else None
        detail["applied_proposal"] = {k: proposal[k] for k in ("window_start", "window_end",
                                                               "send_date")}
    if c.send_date < today:
        notes = list(c.constraint_notes or [])
        notes.append({"constraint": "not_in_past", "action": "moved",
                      "from": c.send_date.isoformat(), "to": today.isoformat(),
                      "reason": f"批准时原定发送日期{fmt_date(c.send_date)}已过，改为尽快发送"})
        detail["send_date"] = [c.send_date, today]
        c.send_date, c.constraint_notes = today, notes
    randomise_on_approval(session=session, settings=settings, campaign=c, actor=actor)
    frozen = {}
    for channel in settings.campaigns.channels:
        msg = render_campaign(campaign=c, category=cat, region=reg, channel=channel)
        frozen[channel] = msg.as_dict()
    c.frozen_content = frozen
    c.approved_run_id = c.run_id
    c.review = {}
    transition(session=session, campaign=c, to="approved", actor=actor, reason=note,
               remote_addr=remote_addr, detail={**detail, "send_date": detail.get(
                   "send_date", c.send_date), "run_id": c.run_id})
    session.commit()
    return c


def cancel_campaign(*, session: Session, campaign_id: str, actor: str,
                    reason: str | None = None, remote_addr: str | None = None) -> Campaign:
    """Cancel a campaign that has not started dispatching (409 otherwise)."""
    c = _load(session, campaign_id, lock=True)
    transition(session=session, campaign=c, to="cancelled", actor=actor, reason=reason,
               remote_addr=remote_addr)
    session.commit()
    return c


def get_campaign(*, session: Session, campaign_id: str) -> Campaign:
    return _load(session, campaign_id)


def campaign_peak(*, session: Session, campaign: Campaign) -> Peak | None:
    """The predicted peak the campaign was (last) planned from, if it still exists."""
    return session.get(Peak, campaign.peak_id) if campaign.peak_id is not None else None


def encode_cursor(c: Campaign) -> str:
    raw = json.dumps([c.send_date.isoformat(), c.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.date, str]:
    try:
        pad = "=" * (-len(cursor) % 4)
        day, cid = json.loads(base64.urlsafe_b64decode(cursor + pad))
        return dt.date.fromisoformat(day), str(cid)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise UnprocessableContent("invalid cursor") from exc


def list_campaigns(
    *,
    session: Session,
    status: Iterable[str] | None = None,
    category: str | None = None,
    region: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[Campaign], str | None]:
    """Campaigns ordered by (send date, id), filtered; returns the page and the next cursor.

    ``date_from`` / ``date_to`` bound the send date (inclusive).
    """
    statuses = list(status or [])
    bad = sorted(set(statuses) - set(STATUSES))
    if bad:
        raise UnprocessableContent(f"unknown status {', '.join(bad)}; known: "
                                   f"{', '.join(STATUSES)}")
    stmt = select(Campaign)
    if statuses:
        stmt = stmt.where(Campaign.status.in_(statuses))
    if category:
        stmt = stmt.where(Campaign.category == category)
    if region:
        stmt = stmt.where(Campaign.region == region)
    if date_from:
        stmt = stmt.where(Campaign.send_date >= date_from)
    if date_to:
        stmt = stmt.where(Campaign.send_date <= date_to)
    if cursor:
        day, cid = decode_cursor(cursor)
        stmt = stmt.where(or_(Campaign.send_date > day,
                              and_(Campaign.send_date == day, Campaign.id > cid)))
    rows = list(session.scalars(stmt.order_by(Campaign.send_date, Campaign.id).limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1])
    return rows, None


def public_reminders(
    *,
    session: Session,
    settings: Settings,
    today: dt.date | None = None,
    category: str | None = None,
    region: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    limit: int = 500,
    after: tuple[dt.date, str] | None = None,
) -> list[dict[str, Any]]:
    """Published reminders: approved (or later) public campaigns whose send date has come.

    Each item holds only public facts — category, region, window, publication date, legal
    basis and the public text — never contacts, entity ids or recipient names.
    ``date_from`` / ``date_to`` select windows overlapping the range; ``after`` (a
    ``(window_start, id)`` key) starts after that reminder in the (window_start, id) order.
    """
    today = today or local_today(settings)
    stmt = select(Campaign).where(Campaign.status.in_(PUBLISHED), Campaign.public.is_(True),
                                  Campaign.send_date <= today)
    if category:
        stmt = stmt.where(Campaign.category == category)
    if region:
        stmt = stmt.where(Campaign.region == region)
    if date_from:
        stmt = stmt.where(Campaign.window_end >= date_from)
    if date_to:
        stmt = stmt.where(Campaign.window_start <= date_to)
    if after is not None:
        stmt = stmt.where(or_(Campaign.window_start > after[0],
                              and_(Campaign.window_start == after[0], Campaign.id > after[1])))
    rows = session.scalars(stmt.order_by(Campaign.window_start, Campaign.id).limit(limit))
    cats = {c.code: c for c in session.scalars(select(Category))}
    regs = {r.code: r for r in session.scalars(select(Region))}
    out = []
    for c in rows:
        cat, reg = cats[c.category], regs[c.region]
        msg = render_message(session=session, campaign=c, channel="public")
        texts = render_variants(campaign=c, category=cat, region=reg, channel="public",
                                main=msg)
        out.append({
            "id": c.id, "title": c.title,
            "category": {"code": cat.code, "name_zh": cat.name_zh, "name_en": cat.name_en},
            "region": {"code": reg.code, "name_zh": reg.name_zh, "name_en": reg.name_en},
            "window_start": c.window_start, "window_end": c.window_end,
            "published_on": c.send_date,
            "legal_basis": [{"title": str(i.get("title", "")), "articles": i.get("articles")}
                            for i in (cat.legal_basis or []) if isinstance(i, dict)],
            "text": msg.body, "texts": texts, "updated_at": c.updated_at,
        })
    return out
