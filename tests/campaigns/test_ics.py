"""iCalendar serialisation (written with icalendar): escaping, folding at 75 octets without
splitting a character, languages, round trip through the library's parser."""

from __future__ import annotations

import datetime as dt

import icalendar

from service.campaigns.ics import calendar_ics


def test_calendar_round_trip() -> None:
    text = ("【执法事项提示】呼和浩特市·违规销售燃放烟花爆竹\n"
            "一、法律依据；《条例》, 第三十六条; a\\b\n") * 5
    items = [{"id": "abc", "title": "t", "category": {"name_zh": "违规销售燃放烟花爆竹"},
              "region": {"name_zh": "呼和浩特市"}, "window_start": dt.date(2025, 1, 6),
              "window_end": dt.date(2025, 1, 26), "published_on": dt.date(2024, 12, 16),
              "legal_basis": [], "text": text,
              "texts": [{"language": "zh", "tag": "zh-CN", "body": text},
                        {"language": "mn", "tag": "mn-Mong", "body": "ᠮᠣᠩᠭᠣᠯ",
                         "status": "placeholder"}],
              "updated_at": dt.datetime(2024, 12, 1, 8, 30, tzinfo=dt.UTC)}]
    data = calendar_ics(items, timezone="Asia/Urumqi")
    assert data.startswith(b"BEGIN:VCALENDAR\r\n") and data.endswith(b"END:VCALENDAR\r\n")
    lines = data.split(b"\r\n")
    assert all(len(line) <= 75 for line in lines)
    assert all(line.decode("utf-8") for line in lines[:-1])  # no character split by folding
    assert any(line.startswith(b" ") for line in lines)  # the long description is folded
    assert b"X-WR-TIMEZONE:Asia/Urumqi\r\n" in data
    cal = icalendar.Calendar.from_ical(data)
    [ev] = cal.walk("VEVENT")
    assert str(ev["UID"]) == "abc@forewarn"
    assert ev.decoded("DTSTART") == dt.date(2025, 1, 6)
    assert ev.decoded("DTEND") == dt.date(2025, 1, 27)
    assert ev.decoded("DTSTAMP") == dt.datetime(2024, 12, 1, 8, 30, tzinfo=dt.UTC)
    assert str(ev["SUMMARY"]) == "执法事项提示：呼和浩特市·违规销售燃放烟花爆竹"
    assert str(ev["DESCRIPTION"]) == text
    assert ev["DESCRIPTION"].params["LANGUAGE"] == "zh-CN"
    [comment] = [ev["COMMENT"]]
    assert comment.params["LANGUAGE"] == "mn-Mong"
    assert str(comment) == "[placeholder, not an official translation] ᠮᠣᠩᠭᠣᠯ"
    assert str(ev["LOCATION"]) == "呼和浩特市"
    empty = icalendar.Calendar.from_ical(calendar_ics([]))
    assert list(empty.walk("VEVENT")) == []
