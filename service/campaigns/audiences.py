"""Who a campaign reaches (the public, regulated entities with past enforcement actions in its
category and region, contactable recipients whose filters match) and the registration of
recipients and their permission to be contacted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit import record
from service.campaigns.lookups import category_or_422, region_or_422
from service.campaigns.tables import Campaign, Recipient
from service.errors import NotFound, UnprocessableContent
from service.store.tables import EnforcementAction, Region, utcnow

__all__ = [
    "Audience",
    "resolve_audience",
    "audience_summary",
    "create_recipient",
    "set_may_contact",
]


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
    cat = category_or_422(session, campaign.category)
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


def audience_summary(session: Session, c: Campaign) -> dict[str, Any]:
    return resolve_audience(session=session, campaign=c).summary()


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
        region_or_422(session, region)
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
