"""The public reminder calendar as iCalendar (RFC 5545).

One all-day ``VEVENT`` per published reminder, spanning its predicted window
(``DTSTART;VALUE=DATE`` = window start, ``DTEND;VALUE=DATE`` = the day after the window ends),
with a stable ``UID``, ``DTSTAMP`` / ``LAST-MODIFIED`` = when the campaign last changed, the
Chinese title as ``SUMMARY`` and the public text as ``DESCRIPTION`` (both ``LANGUAGE=zh-CN``);
every other language variant of the text (e.g. Mongolian, ``LANGUAGE=mn-Mong``) follows as a
``COMMENT`` with its language tag (RFC 5545 allows one DESCRIPTION, any number of COMMENTs),
a placeholder translation marked as such. Lines end in CRLF and are
folded at 75 octets without splitting a UTF-8 character (RFC 5545 §3.1).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["calendar_ics", "escape_text", "fold_line", "CONTENT_TYPE"]

CONTENT_TYPE = "text/calendar; charset=utf-8"
_PRODID = "-//Forewarn//执法事项提示//ZH"


def escape_text(value: str) -> str:
    """Escape a TEXT value (backslash, semicolon, comma, newline)."""
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n"))


def fold_line(line: str, limit: int = 75) -> str:
    """Fold ``line`` so that no physical line exceeds ``limit`` octets (CRLF excluded)."""
    out: list[str] = []
    current: list[str] = []
    size = 0
    for ch in line:
        n = len(ch.encode("utf-8"))
        if size + n > limit:
            out.append("".join(current))
            current, size = [" "], 1  # a continuation line starts with one space
        current.append(ch)
        size += n
    out.append("".join(current))
    return "\r\n".join(out)


def _utc(ts: dt.datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return ts.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def calendar_ics(reminders: Iterable[Mapping[str, Any]], *, name: str = "执法事项提示",
                 domain: str = "forewarn", now: dt.datetime | None = None) -> bytes:
    """Serialise public reminders (as returned by ``public_reminders``) to an iCalendar file.

    Parameters
    ----------
    reminders : items with ``id, title, category{name_zh}, region{name_zh}, window_start,
        window_end, published_on, legal_basis, text, updated_at``.
    name : the calendar's display name.
    domain : right-hand side of each event's ``UID``.
    now : fallback ``DTSTAMP`` when an item has no ``updated_at``.
    """
    stamp_default = now or dt.datetime.now(dt.UTC)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{_PRODID}", "CALSCALE:GREGORIAN",
             "METHOD:PUBLISH", f"X-WR-CALNAME:{escape_text(name)}",
             "X-WR-TIMEZONE:Asia/Shanghai"]
    for r in reminders:
        start, end = _date(r["window_start"]), _date(r["window_end"])
        updated = r.get("updated_at")
        stamp = _utc(updated) if isinstance(updated, dt.datetime) else _utc(stamp_default)
        category = r.get("category") or {}
        region = r.get("region") or {}
        summary = f"执法事项提示：{region.get('name_zh', '')}·{category.get('name_zh', '')}"
        lines += [
            "BEGIN:VEVENT",
            f"UID:{r['id']}@{domain}",
            f"DTSTAMP:{stamp}",
            f"LAST-MODIFIED:{stamp}",
            f"DTSTART;VALUE=DATE:{start:%Y%m%d}",
            f"DTEND;VALUE=DATE:{end + dt.timedelta(days=1):%Y%m%d}",
            f"SUMMARY;LANGUAGE=zh-CN:{escape_text(summary)}",
            f"DESCRIPTION;LANGUAGE=zh-CN:{escape_text(str(r.get('text', '')))}",
            *[f"COMMENT;LANGUAGE={t['tag']}:"
              + escape_text(("[placeholder, not an official translation] "
                             if t.get("status") != "official" else "") + str(t["body"]))
              for t in r.get("texts") or [] if t.get("language") != "zh"],
            f"CATEGORIES;LANGUAGE=zh-CN:{escape_text(str(category.get('name_zh', '')))}",
            f"LOCATION;LANGUAGE=zh-CN:{escape_text(str(region.get('name_zh', '')))}",
            "TRANSP:TRANSPARENT",
            "CLASS:PUBLIC",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(fold_line(line) for line in lines) + "\r\n").encode("utf-8")
