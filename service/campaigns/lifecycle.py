"""Campaign lifecycle: every status change through :func:`transition` (the table in
:mod:`service.campaigns.status`, who and when, the audit log), and the campaign made by hand,
edited, previewed, approved (content frozen, timing drawn) and cancelled.

Functions named ``*_campaign`` commit their own unit of work; :func:`transition` does not
(callers such as the scheduler commit it together with their own writes, e.g. outbox rows)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from sqlalchemy import inspect, select, update
from sqlalchemy.orm import Session

from service.audit import record
from service.campaigns.audiences import audience_summary
from service.campaigns.constraints import audience_key, booking_of, constraints_for
from service.campaigns.content import RenderedMessage, render_campaign, render_variants
from service.campaigns.lookups import (
    campaign_title,
    category_or_422,
    lead_days_for,
    load_campaign,
    local_today,
    region_or_422,
    require_legal_basis,
)
from service.campaigns.planning import Planner, fmt_date
from service.campaigns.randomised import randomise_on_approval
from service.campaigns.scope import evaluation_scope, keeps_commitment
from service.campaigns.status import ALLOWED_TRANSITIONS, EDITABLE, OCCUPYING
from service.campaigns.tables import Campaign
from service.config import Settings
from service.errors import Conflict, UnprocessableContent
from service.store.freshness import mark_stale
from service.store.tables import Category, ForecastRun, Peak, utcnow

__all__ = [
    "transition",
    "create_campaign",
    "update_campaign",
    "render_message",
    "preview",
    "approve_campaign",
    "cancel_campaign",
]


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
    if inspect(campaign).has_identity:
        _compare_and_set(session, campaign, frm, to, now)
    campaign.status = to
    campaign.status_changed_at = now
    # the evaluation reads campaign statuses; a move among committed statuses (dispatch)
    # changes the scorecards and the effects of the campaign's category only
    mark_stale(session, f"campaign {to}", only_effects_of=evaluation_scope(
        session, [campaign.id]) if keeps_commitment(frm, to) else None)
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


def _compare_and_set(session: Session, campaign: Campaign, frm: str, to: str,
                     now: dt.datetime) -> None:
    """Write the new status only where the row still has the status this change was judged
    on. Two changes that read the same status (on SQLite, where a read takes no lock: the
    scheduler scheduling while an operator cancels) cannot both win; the loser gets 409
    instead of overwriting the winner. On SQLite this write also takes the write lock, so the
    rest of the caller's transaction (outbox rows) commits with the status or not at all."""
    res = session.execute(
        update(Campaign).where(Campaign.id == campaign.id, Campaign.status == frm)
        .values(status=to, status_changed_at=now, updated_at=now)
        .execution_options(synchronize_session=False))
    if res.rowcount == 0:  # type: ignore[attr-defined]
        now_status = session.scalar(select(Campaign.status).where(Campaign.id == campaign.id))
        raise Conflict(f"campaign {campaign.id} changed meanwhile (now {now_status}); it "
                       f"cannot become {to}", status_now=now_status)


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
    cat, reg = category_or_422(session, category), region_or_422(session, region)
    require_legal_basis(cat)
    if window_end < window_start:
        raise UnprocessableContent("window_end is before window_start")
    if window_end < today:
        raise UnprocessableContent("the window is already over")
    lead = lead_days_for(cat, cfg)
    audience = audience_key(cat, region)
    if send_date is not None:
        _check_send_date(send_date, today=today, window_end=window_end)
    status, planned, chosen, notes_ = _manual_placement(
        session, settings, today, window_start=window_start, window_end=window_end,
        send_date=send_date, lead=lead, region=region, audience=audience)
    locked = [] if send_date is None else ["send_date"]
    c = Campaign(origin="manual", status=status, category=category, region=region,
                 window_start=window_start, window_end=window_end, lead_days=lead,
                 planned_send_date=planned, send_date=chosen, constraint_notes=notes_,
                 title=title or campaign_title(cat, reg),
                 content_overrides=dict(content_overrides or {}),
                 public=public, notify_entities=notify_entities, notes=notes,
                 locked_fields=locked + (["title"] if title else []), created_by=actor)
    for channel in content_overrides or {}:
        render_campaign(campaign=c, category=cat, region=reg, channel=channel)
    c.audience = audience_summary(session, c)
    session.add(c)
    session.flush()
    record(session=session, actor=actor, action="campaign.created", entity_type="campaign",
           entity_id=c.id, detail={"origin": "manual", "status": status, "category": category,
                                   "region": region, "window_start": window_start,
                                   "window_end": window_end, "send_date": chosen})
    session.commit()
    return c


def _check_send_date(send_date: dt.date, *, today: dt.date, window_end: dt.date) -> None:
    """A send date given by hand must be today or later and not after the window."""
    if send_date < today:
        raise UnprocessableContent("send_date is in the past")
    if send_date > window_end:
        raise UnprocessableContent("send_date is after the window ends")


def _manual_placement(
    session: Session, settings: Settings, today: dt.date, *, window_start: dt.date,
    window_end: dt.date, send_date: dt.date | None, lead: int, region: str, audience: str,
) -> tuple[str, dt.date, dt.date, list[dict[str, Any]]]:
    """Status, planned and chosen send date, and constraint notes of a manual campaign,
    placed among the campaigns already booked: without ``send_date`` by the planner's rules
    (``dropped`` at its ideal date when no day is free), with it kept as given and any
    constraint it breaks noted."""
    cfg = settings.campaigns
    others = list(session.scalars(select(Campaign).where(
        Campaign.status.in_(OCCUPYING | {"draft"}), Campaign.send_date >= today
        - dt.timedelta(days=cfg.min_spacing_days))))
    cats = {c.code: c for c in session.scalars(select(Category))}
    planner = Planner(constraints_for(cfg, today, window_end + dt.timedelta(days=30)), today,
                      fixed=[booking_of(c, cats) for c in others])
    if send_date is None:
        placement = planner.place(window_start=window_start, window_end=window_end,
                                  lead_days=lead, region=region, audience=audience,
                                  book=False)
        if placement.send_date is None:
            return "dropped", placement.ideal, placement.ideal, placement.notes
        return "draft", placement.ideal, placement.send_date, placement.notes
    notes: list[dict[str, Any]] = []
    hit = planner.blocked_by(send_date, region=region, audience=audience)
    if hit is not None:
        notes.append({"constraint": hit[0], "action": "kept", "from": None,
                      "to": send_date.isoformat(),
                      "reason": f"{hit[1]}；发送日期由人工指定，予以保留"})
    return "draft", send_date, send_date, notes


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
    c = load_campaign(session, campaign_id, lock=True)
    if c.status not in EDITABLE:
        raise Conflict(f"campaign {c.id} is {c.status}; only draft, dropped and needs_review "
                       "campaigns can be edited", status_now=c.status)
    unknown = sorted(set(changes) - set(_PATCHABLE))
    if unknown:
        raise UnprocessableContent(f"these fields cannot be edited: {', '.join(unknown)}")
    cat, reg = category_or_422(session, c.category), region_or_422(session, c.region)
    locked = list(c.locked_fields or [])
    if "title" in changes:
        title = str(changes["title"] or "").strip()
        if not title:
            raise UnprocessableContent("title must not be empty")
        c.title = title[:300]
        locked.append("title")
    if "content_overrides" in changes:
        c.content_overrides = _merged_overrides(c.content_overrides,
                                                changes["content_overrides"])
    for flag in ("public", "notify_entities"):
        if flag in changes:
            setattr(c, flag, bool(changes[flag]))
    if "notes" in changes:
        c.notes = changes["notes"]
    revive = False
    if "send_date" in changes:
        new = _parse_date(changes["send_date"], "send_date")
        _check_send_date(new, today=today, window_end=c.window_end)
        c.send_date = new
        locked.append("send_date")
        revive = c.status == "dropped"
    for channel in sorted({*(c.content_overrides or {}), *settings.campaigns.channels}):
        render_campaign(campaign=c, category=cat, region=reg, channel=channel)
    c.locked_fields = sorted(set(locked))
    c.updated_at = utcnow()
    c.frozen_content = {}
    if any(k in changes for k in ("public", "notify_entities")):
        c.audience = audience_summary(session, c)
    record(session=session, actor=actor, action="campaign.edited", entity_type="campaign",
           entity_id=c.id, detail={"fields": sorted(changes)})
    if revive:
        transition(session=session, campaign=c, to="draft", actor=actor,
                   reason="send date set by hand")
    session.commit()
    return c


def _merged_overrides(current: dict[str, str] | None, changes: dict[str, Any] | None
                      ) -> dict[str, str]:
    """``current`` content overrides with ``changes`` applied (a None value removes one)."""
    merged = dict(current or {})
    for channel, source in dict(changes or {}).items():
        if source is None:
            merged.pop(channel, None)
        else:
            merged[str(channel)] = str(source)
    return merged


def render_message(*, session: Session, campaign: Campaign, channel: str) -> RenderedMessage:
    """The message that is (or will be) sent on ``channel``, in every language of the
    category (``texts``): the copy frozen at approval when there is one, otherwise a live
    rendering. The dispatcher sends exactly this.

    A campaign approved before language variants were frozen (its frozen copy has no
    ``texts``) keeps its frozen Chinese text; its other variants are rendered now."""
    frozen = (campaign.frozen_content or {}).get(channel)
    if isinstance(frozen, dict) and "body" in frozen:
        msg = RenderedMessage(channel=channel, subject=str(frozen.get("subject", "")),
                              body=str(frozen["body"]), template=str(frozen.get("template", "")),
                              frozen=True)
        texts = frozen.get("texts")
        if isinstance(texts, list) and texts:
            return replace(msg, texts=tuple(dict(t) for t in texts if isinstance(t, dict)))
        cat = category_or_422(session, campaign.category)
        reg = region_or_422(session, campaign.region)
        return replace(msg, texts=tuple(render_variants(campaign=campaign, category=cat,
                                                        region=reg, channel=channel,
                                                        main=msg)))
    cat, reg = category_or_422(session, campaign.category), region_or_422(session, campaign.region)
    return render_campaign(campaign=campaign, category=cat, region=reg, channel=channel)


def preview(*, session: Session, settings: Settings, campaign_id: str,
            channel: str) -> RenderedMessage:
    """Render one channel of a campaign exactly as it will be sent, in every language of its
    category (``texts``; the copies frozen at approval once approved)."""
    known = set(settings.campaigns.channels) | {"default"}
    if channel not in known:
        raise UnprocessableContent(f"unknown channel '{channel}'; known: "
                                   f"{', '.join(sorted(known))}")
    return render_message(session=session, campaign=load_campaign(session, campaign_id),
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
    c = load_campaign(session, campaign_id, lock=True)
    if "approved" not in ALLOWED_TRANSITIONS.get(c.status, frozenset()):
        raise Conflict(f"campaign {c.id} is {c.status}; only draft and needs_review campaigns "
                       "can be approved", status_now=c.status,
                       allowed=sorted(ALLOWED_TRANSITIONS.get(c.status, frozenset())))
    cat, reg = category_or_422(session, c.category), region_or_422(session, c.region)
    require_legal_basis(cat)
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
    c = load_campaign(session, campaign_id, lock=True)
    transition(session=session, campaign=c, to="cancelled", actor=actor, reason=reason,
               remote_addr=remote_addr)
    session.commit()
    return c
