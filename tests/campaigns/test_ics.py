"""iCalendar serialisation: escaping, folding at 75 octets, round trip through icalendar."""

from __future__ import annotations

import datetime as dt

import icalendar

from service.campaigns.ics import calendar_ics, escape_text, fold_line


def test_escape_text() -> None:
    assert escape_text("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"


def test_fold_line_counts_octets_and_keeps_characters_whole() -> None:
    line = "DESCRIPTION:" + "执法事项提示" * 40
    folded = fold_line(line)
    parts = folded.split("\r\n")
    assert len(parts) > 1
    assert all(len(p.encode()) <= 75 for p in parts)
    assert all(p.startswith(" ") for p in parts[1:])
    assert "".join([parts[0]] + [p[1:] for p in parts[1:]]) == line
    assert fold_line("short") == "short"


def test_calendar_round_trip() -> None:
    text = ("【执法事项提示】呼和浩特市·违规销售燃放烟花爆竹\n"
            "一、法律依据；《条例》, 第三十六条\n") * 5
    items = [{"id": "abc", "title": "t", "category": {"name_zh": "违规销售燃放烟花爆竹"},
              "region": {"name_zh": "呼和浩特市"}, "window_start": dt.date(2025, 1, 6),
              "window_end": dt.date(2025, 1, 26), "published_on": dt.date(2024, 12, 16),
              "legal_basis": [], "text": text,
              "updated_at": dt.datetime(2024, 12, 1, 8, 30, tzinfo=dt.UTC)}]
    data = calendar_ics(items)
    assert data.startswith(b"BEGIN:VCALENDAR\r\n") and data.endswith(b"END:VCALENDAR\r\n")
    assert all(len(line) <= 75 for line in data.split(b"\r\n"))
    cal = icalendar.Calendar.from_ical(data)
    [ev] = cal.walk("VEVENT")
    assert str(ev["UID"]) == "abc@forewarn"
    assert ev.decoded("DTSTART") == dt.date(2025, 1, 6)
    assert ev.decoded("DTEND") == dt.date(2025, 1, 27)
    assert ev.decoded("DTSTAMP") == dt.datetime(2024, 12, 1, 8, 30, tzinfo=dt.UTC)
    assert str(ev["SUMMARY"]) == "执法事项提示：呼和浩特市·违规销售燃放烟花爆竹"
    assert str(ev["DESCRIPTION"]) == text
    empty = icalendar.Calendar.from_ical(calendar_ics([]))
    assert list(empty.walk("VEVENT")) == []
