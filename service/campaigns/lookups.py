"""What a campaign is for, looked up: the campaign itself (404), its category and region (422
for an unknown code), the category's legal basis, lead days and the campaign title; today in
the deployment's time zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from service.campaigns.tables import Campaign
from service.config import CampaignSettings, Settings
from service.errors import NotFound, UnprocessableContent
from service.store.tables import Category, Region

__all__ = [
    "local_today",
    "load_campaign",
    "category_or_422",
    "region_or_422",
    "legal_basis_error",
    "require_legal_basis",
    "lead_days_for",
    "campaign_title",
]


def local_today(settings: Settings) -> dt.date:
    """Today in the deployment's time zone."""
    return dt.datetime.now(ZoneInfo(settings.timezone)).date()


def load_campaign(session: Session, campaign_id: str, *, lock: bool = False) -> Campaign:
    campaign = session.get(Campaign, campaign_id, with_for_update=lock or None)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    return campaign


def category_or_422(session: Session, code: str) -> Category:
    cat = session.get(Category, code)
    if cat is None:
        raise UnprocessableContent(f"unknown category '{code}'", category=code)
    return cat


def region_or_422(session: Session, code: str) -> Region:
    reg = session.get(Region, code)
    if reg is None:
        raise UnprocessableContent(f"unknown region '{code}'", region=code)
    return reg


def legal_basis_error(cat: Category) -> str | None:
    items = [i for i in (cat.legal_basis or [])
             if (isinstance(i, dict) and str(i.get("title") or "").strip())
             or (isinstance(i, str) and i.strip())]
    if items:
        return None
    return (f"category '{cat.code}' ({cat.name_zh}) has no legal basis; a reminder must cite "
            "its legal basis, so it cannot be planned or approved — add legal_basis to the "
            "category configuration")


def require_legal_basis(cat: Category) -> None:
    err = legal_basis_error(cat)
    if err:
        raise UnprocessableContent(err, category=cat.code)


def lead_days_for(cat: Category, cfg: CampaignSettings) -> int:
    return int(cat.lead_days) if cat.lead_days is not None else cfg.default_lead_days


def campaign_title(cat: Category, reg: Region) -> str:
    return f"【执法事项提示】{reg.name_zh}·{cat.name_zh}"
