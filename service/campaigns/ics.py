"""The public reminder calendar as iCalendar (RFC 5545), written with the ``icalendar`` library.

One all-day ``VEVENT`` per published reminder, spanning its predicted window
(``DTSTART;VALUE=DATE`` = window start, ``DTEND;VALUE=DATE`` = the day after the window ends),
with a stable ``UID``, ``DTSTAMP`` / ``LAST-MODIFIED`` = when the campaign last changed, the
Chinese title as ``SUMMARY`` and the public text as ``DESCRIPTION`` (both ``LANGUAGE=zh-CN``);
every other language variant of the text (e.g. Mongolian, ``LANGUAGE=mn-Mong``) follows as a
``COMMENT`` with its language tag (RFC 5545 allows one DESCRIPTION, any number of COMMENTs),
a placeholder translation marked as such. The library escapes TEXT values and folds lines at
75 octets without splitting a UTF-8 character; lines end in CRLF.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from icalendar import Calendar, Event

from service.config import DEFAULT_TIMEZONE
from service.store.base import as_utc

__all__ = ["calendar_ics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/calendar; charset=utf-8"
_PRODID = "-//Forewarn//执法事项提示//ZH"
_ZH = {"LANGUAGE": "zh-CN"}
_PLACEHOLDER = "[placeholder, not an official translation] "


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _event(r: Mapping[str, Any], *, domain: str, stamp: dt.datetime) -> Event:
    category = r.get("category") or {}
    region = r.get("region") or {}
    start, end = _date(r["window_start"]), _date(r["window_end"])
    ev = Event()
    ev.add("uid", f"{r['id']}@{domain}")
    ev.add("dtstamp", stamp)
    ev.add("last-modified", stamp)
    ev.add("dtstart", start)
    ev.add("dtend", end + dt.timedelta(days=1))
    ev.add("summary", f"执法事项提示：{region.get('name_zh', '')}·{category.get('name_zh', '')}",
           parameters=_ZH)
    ev.add("description", str(r.get("text", "")), parameters=_ZH)
    for t in r.get("texts") or []:
        if t.get("language") != "zh":
            mark = "" if t.get("status") == "official" else _PLACEHOLDER
            ev.add("comment", mark + str(t["body"]), parameters={"LANGUAGE": t["tag"]})
    ev.add("categories", [str(category.get("name_zh", ""))], parameters=_ZH)
    ev.add("location", str(region.get("name_zh", "")), parameters=_ZH)
    ev.add("transp", "TRANSPARENT")
    ev.add("class", "PUBLIC")
    return ev


def calendar_ics(reminders: Iterable[Mapping[str, Any]], *, name: str = "执法事项提示",
                 domain: str = "forewarn", now: dt.datetime | None = None,
                 timezone: str = DEFAULT_TIMEZONE) -> bytes:
    """Serialise public reminders (as returned by ``public_reminders``) to an iCalendar file.

    Parameters
    ----------
    reminders : items with ``id, title, category{name_zh}, region{name_zh}, window_start,
        window_end, published_on, legal_basis, text, updated_at`` (and ``texts``).
    name : the calendar's display name.
    domain : right-hand side of each event's ``UID``.
    now : fallback ``DTSTAMP`` when an item has no ``updated_at``.
    timezone : the deployment's zone, announced as ``X-WR-TIMEZONE``.
    """
    stamp_default = now or dt.datetime.now(dt.UTC)
    cal = Calendar()
    cal.add("version", "2.0")
    cal.add("prodid", _PRODID)
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", timezone)
    for r in reminders:
        updated = r.get("updated_at")
        stamp = updated if isinstance(updated, dt.datetime) else stamp_default
        cal.add_component(_event(r, domain=domain, stamp=as_utc(stamp).astimezone(dt.UTC)))
    data: bytes = cal.to_ical()
    return data
