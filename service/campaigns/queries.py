"""Reading campaigns: one campaign and its peak, the keyset-paginated list, and the published
reminders of the public pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.campaigns.lifecycle import render_message
from service.campaigns.lookups import load_campaign, local_today
from service.campaigns.status import PUBLISHED, STATUSES
from service.campaigns.tables import Campaign
from service.config import Settings
from service.errors import UnprocessableContent
from service.store.pagination import keyset_after, keyset_page, where_given
from service.store.tables import Category, Peak, Region

__all__ = ["get_campaign", "campaign_peak", "list_campaigns", "public_reminders"]


def get_campaign(*, session: Session, campaign_id: str) -> Campaign:
    return load_campaign(session, campaign_id)


def campaign_peak(*, session: Session, campaign: Campaign) -> Peak | None:
    """The predicted peak the campaign was (last) planned from, if it still exists."""
    return session.get(Peak, campaign.peak_id) if campaign.peak_id is not None else None


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
    stmt = where_given(stmt, (Campaign.category, "==", category),
                       (Campaign.region, "==", region), (Campaign.send_date, ">=", date_from),
                       (Campaign.send_date, "<=", date_to))
    return keyset_page(session, stmt, ((Campaign.send_date, False), (Campaign.id, False)),
                       types=(dt.date, str), cursor=cursor, limit=limit)


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
    stmt = where_given(stmt, (Campaign.category, "==", category),
                       (Campaign.region, "==", region), (Campaign.window_end, ">=", date_from),
                       (Campaign.window_start, "<=", date_to))
    if after is not None:
        stmt = stmt.where(keyset_after(((Campaign.window_start, False), (Campaign.id, False)),
                                       after))
    rows = session.scalars(stmt.order_by(Campaign.window_start, Campaign.id).limit(limit))
    cats = {c.code: c for c in session.scalars(select(Category))}
    regs = {r.code: r for r in session.scalars(select(Region))}
    out = []
    for c in rows:
        cat, reg = cats[c.category], regs[c.region]
        msg = render_message(session=session, campaign=c, channel="public")
        out.append({
            "id": c.id, "title": c.title,
            "category": {"code": cat.code, "name_zh": cat.name_zh, "name_en": cat.name_en},
            "region": {"code": reg.code, "name_zh": reg.name_zh, "name_en": reg.name_en},
            "window_start": c.window_start, "window_end": c.window_end,
            "published_on": c.send_date,
            "legal_basis": [{"title": str(i.get("title", "")), "articles": i.get("articles")}
                            for i in (cat.legal_basis or []) if isinstance(i, dict)],
            "text": msg.body, "texts": list(msg.texts), "updated_at": c.updated_at,
        })
    return out
