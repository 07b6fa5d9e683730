"""Campaign and recipient tables.

A **campaign** is one dated enforcement matter reminder (执法事项提示) for one (category, region,
window). Its ``status`` follows :data:`service.campaigns.status.ALLOWED_TRANSITIONS`.
A **recipient** is a department, regulated entity or subscriber that may receive reminders
through its own channels; contacts are stored only when ``may_contact`` is true.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Date, Float, ForeignKey, Index, Integer, String, Text, event, text
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from models.series import SeriesId
from service.store.base import Base, UtcDateTime, new_id, utcnow

__all__ = ["Campaign", "Recipient", "DEFAULT_SIGNAL"]

#: The signal a campaign without one (made by hand) is evaluated on.
DEFAULT_SIGNAL = "complaints"


class Campaign(Base):
    """One reminder campaign, planned from a predicted peak window or created by hand.

    ``window_*`` is the predicted period of frequent violations; ``send_date`` the day the
    reminder goes out (``planned_send_date`` before constraints moved it); ``constraint_notes``
    lists ``{constraint, action, reason}`` for every constraint that changed the plan;
    ``evidence`` keeps the peak windows (and weekly probabilities) the plan rests on;
    ``review`` holds the reason and the new proposal when the campaign ``needs_review``;
    ``frozen_content`` the messages rendered at approval, which are what gets sent;
    ``timing`` the randomised-timing proposal or assignment (arm and seed) when its category
    opted in. ``series_id`` (:class:`models.series.SeriesId`) is the series the campaign is
    evaluated on by default: its signal (``complaints`` for a manual campaign), category and
    region, kept in step with them on every flush.
    """

    __tablename__ = "campaigns"
    __table_args__ = (
        Index("ix_campaigns_send_date_id", "send_date", "id"),
        Index("ix_campaigns_series", "category", "region", "window_start"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    status: Mapped[str] = mapped_column(String(24), default="draft", index=True)
    origin: Mapped[str] = mapped_column(String(16), default="planned")  # planned | manual
    category: Mapped[str] = mapped_column(ForeignKey("categories.code"))
    region: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    signal: Mapped[str | None] = mapped_column(String(32))
    series_id: Mapped[str] = mapped_column(String(200), index=True)
    window_start: Mapped[dt.date] = mapped_column(Date)
    window_end: Mapped[dt.date] = mapped_column(Date)
    peak_week: Mapped[dt.date | None] = mapped_column(Date)
    lead_days: Mapped[int] = mapped_column(Integer, default=14)
    planned_send_date: Mapped[dt.date] = mapped_column(Date)
    send_date: Mapped[dt.date] = mapped_column(Date)
    rank: Mapped[int | None] = mapped_column(Integer)
    expected_count: Mapped[float | None] = mapped_column(Float)
    expected_excess: Mapped[float | None] = mapped_column(Float)
    probability: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    # the window's expected onset (send date = onset − lead days), the decision threshold
    # of the run for the category, and the position in a predicted window split into
    # campaigns of at most max_campaign_weeks (part of parts)
    onset: Mapped[dt.date | None] = mapped_column(Date)
    decision_threshold: Mapped[float | None] = mapped_column(Float)
    part: Mapped[int | None] = mapped_column(Integer)
    parts: Mapped[int | None] = mapped_column(Integer)
    peak_id: Mapped[int | None] = mapped_column(ForeignKey("peaks.id", ondelete="SET NULL"))
    run_id: Mapped[str | None] = mapped_column(
        ForeignKey("forecast_runs.id", ondelete="SET NULL"))
    last_run_id: Mapped[str | None] = mapped_column(String(32))
    evidence: Mapped[list[Any]] = mapped_column(default=list)
    constraint_notes: Mapped[list[Any]] = mapped_column(default=list)
    review: Mapped[dict[str, Any]] = mapped_column(default=dict)
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    notify_entities: Mapped[bool] = mapped_column(Boolean, default=True)
    audience: Mapped[dict[str, Any]] = mapped_column(default=dict)
    title: Mapped[str] = mapped_column(String(300))
    content_overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notes: Mapped[str | None] = mapped_column(Text)
    locked_fields: Mapped[list[Any]] = mapped_column(default=list)
    frozen_content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Randomised timing (service.campaigns.randomised): ``{design, status, wave, delay_days,
    #: arm, seed, assigned_at, assigned_by, members}``; empty when not randomised.
    timing: Mapped[dict[str, Any]] = mapped_column(default=dict)
    approved_run_id: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(100), default="planner")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    status_changed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(),
                                                           default=utcnow)
    approved_by: Mapped[str | None] = mapped_column(String(100))
    approved_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    cancelled_by: Mapped[str | None] = mapped_column(String(100))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(Text)


@event.listens_for(Campaign, "before_insert")
@event.listens_for(Campaign, "before_update")
def _compose_series_id(_mapper: Mapper[Campaign], _conn: Any, campaign: Campaign) -> None:
    campaign.series_id = SeriesId.compose(campaign.signal or DEFAULT_SIGNAL, campaign.category,
                                          campaign.region)


class Recipient(Base):
    """Someone reminders may go to through their own channel (webhook, e-mail).

    ``kind``: ``department`` (a government department's system), ``entity`` (a regulated
    business; ``entity_id`` links it to enforcement records) or ``subscriber``. ``region`` None
    means every region; empty ``categories`` / ``sectors`` mean every one. ``webhook_url`` and
    ``email`` are kept only while ``may_contact`` is true. ``webhook_secrets`` holds the
    recipient's own Standard Webhooks signing secrets, newest first, each
    ``{"secret": "whsec_…", "created_at": iso, "expires_at": iso | null}``: every unexpired
    one signs, so a receiver can switch to a rotated secret within the grace period
    (see :mod:`service.campaigns.recipients`).
    """

    __tablename__ = "recipients"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # department | entity | subscriber
    region: Mapped[str | None] = mapped_column(ForeignKey("regions.code"))
    categories: Mapped[list[Any]] = mapped_column(default=list)
    sectors: Mapped[list[Any]] = mapped_column(default=list)
    entity_id: Mapped[str | None] = mapped_column(String(100), index=True)
    may_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    email: Mapped[str | None] = mapped_column(String(320))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    webhook_secrets: Mapped[list[Any]] = mapped_column(default=list,
                                                      server_default=text("'[]'"))
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
