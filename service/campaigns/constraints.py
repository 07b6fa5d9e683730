"""The send-date constraints of a deployment: blackout days (configured holiday blocks and
dates, with a label for explanations), spacing and capacity per region and audience, and the
bookings of campaigns whose send dates a planning pass plans around."""

from __future__ import annotations

import datetime as dt

from service.campaigns.planning import Booking, Constraints
from service.campaigns.tables import Campaign
from service.config import CampaignSettings
from service.store.tables import Category

__all__ = ["BLOCK_LABELS", "audience_key", "resolve_blackout", "constraints_for", "booking_of"]


#: Chinese labels of the holiday blocks a blackout may name.
BLOCK_LABELS = {"spring_festival": "春节假期", "qingming": "清明节假期", "labor_day": "劳动节假期",
                "dragon_boat": "端午节假期", "mid_autumn": "中秋节假期",
                "national_day": "国庆节假期", "new_year": "元旦假期"}


def audience_key(cat: Category, region: str) -> str:
    return f"{region}|{cat.sector or cat.code}"


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
                out[ds.date()] = BLOCK_LABELS.get(block, block)
    for d in cfg.blackout_dates:
        if start <= d <= end:
            out.setdefault(d, "配置的禁发日")
    return out


def constraints_for(cfg: CampaignSettings, start: dt.date, end: dt.date) -> Constraints:
    return Constraints(min_spacing_days=cfg.min_spacing_days,
                       weekly_capacity=cfg.weekly_capacity_per_region,
                       blackout=resolve_blackout(cfg, start, end),
                       max_advance_days=cfg.max_advance_days,
                       min_notice_days=cfg.min_notice_days)


def booking_of(c: Campaign, cats: dict[str, Category]) -> Booking:
    cat = cats.get(c.category)
    audience = audience_key(cat, c.region) if cat else f"{c.region}|{c.category}"
    return Booking(c.send_date, c.region, audience, cat.name_zh if cat else c.category)
