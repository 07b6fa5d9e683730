"""Reminders in both official languages: a category's language variants are all rendered,
carried with their language tags in the public JSON and the iCalendar feed, and a
placeholder translation is never passed off as official."""

from __future__ import annotations

import datetime as dt

import icalendar
import yaml

from service.campaigns.content import render_variants, template_languages
from service.campaigns.ics import calendar_ics
from service.campaigns.tables import Campaign
from service.store.tables import Category, Region
from tests.conftest import ROOT


def _sample_category(code: str) -> Category:
    doc = yaml.safe_load((ROOT / "data/samples/categories.yaml").read_text(encoding="utf-8"))
    item = next(c for c in doc["categories"] if c["code"] == code)
    return Category(**{k: item.get(k) for k in ("code", "name_zh", "name_en", "sector",
                                                "legal_basis", "requirements", "advice",
                                                "templates")}, lead_days=21)


def _campaign() -> Campaign:
    d = dt.date(2027, 1, 25)
    return Campaign(id="c1", category="fireworks", region="150100", signal="complaints",
                    title="【执法事项提示】呼和浩特市·烟花爆竹", window_start=d,
                    window_end=d + dt.timedelta(days=13), send_date=d - dt.timedelta(days=21),
                    planned_send_date=d - dt.timedelta(days=21), lead_days=21,
                    probability=0.8, expected_count=120.0, expected_excess=30.0)


def test_sample_variant_is_a_marked_placeholder() -> None:
    cat = _sample_category("fireworks")
    region = Region(code="150100", name_zh="呼和浩特市", name_en="Hohhot")
    assert template_languages(cat) == ["zh", "mn"]
    texts = render_variants(campaign=_campaign(), category=cat, region=region,
                            channel="public")
    assert [t["language"] for t in texts] == ["zh", "mn"]
    zh, mn = texts
    assert zh["status"] == "official" and zh["tag"] == "zh-CN" and "法律依据" in zh["body"]
    assert mn["tag"] == "mn-Mong" and mn["status"] == "placeholder"
    assert "ᠮᠣᠩᠭᠣᠯ" in mn["body"] and "PLACEHOLDER" in mn["body"]
    assert "2027-01-25" in mn["body"] and "非官方" in mn["note"]
    # only the fireworks category carries a variant in the samples
    assert template_languages(_sample_category("grassland_fire")) == ["zh"]


def test_official_variant_and_calendar_language_tags() -> None:
    cat = _sample_category("fireworks")
    cat.templates = {**cat.templates, "languages": {"mn": {
        "status": "official", "tag": "mn-Mong", "title": "ᠰᠠᠨᠠᠭᠤᠯᠤᠮᠵᠢ {{ region.name_zh }}",
        "default": "ᠰᠠᠨᠠᠭᠤᠯᠤᠮᠵᠢ {{ window_start_iso }}"}}}
    region = Region(code="150100", name_zh="呼和浩特市", name_en="Hohhot")
    texts = render_variants(campaign=_campaign(), category=cat, region=region,
                            channel="public")
    assert texts[1]["status"] == "official" and texts[1]["subject"].endswith("呼和浩特市")
    reminder = {"id": "c1", "title": "t", "category": {"name_zh": "烟花爆竹"},
                "region": {"name_zh": "呼和浩特市"}, "window_start": "2027-01-25",
                "window_end": "2027-02-07", "text": texts[0]["body"], "texts": texts,
                "updated_at": dt.datetime(2027, 1, 4, tzinfo=dt.UTC)}
    placeholder = {**texts[1], "status": "placeholder"}
    raw = calendar_ics([reminder, {**reminder, "id": "c2",
                                   "texts": [texts[0], placeholder]}]).decode()
    cal = icalendar.Calendar.from_ical(raw)
    events = list(cal.walk("VEVENT"))
    assert events[0]["SUMMARY"].params["LANGUAGE"] == "zh-CN"
    assert events[0]["DESCRIPTION"].params["LANGUAGE"] == "zh-CN"
    comment = events[0]["COMMENT"]
    assert comment.params["LANGUAGE"] == "mn-Mong" and str(comment).startswith("ᠰᠠᠨᠠᠭᠤᠯᠤᠮᠵᠢ")
    assert str(events[1]["COMMENT"]).startswith("[placeholder, not an official translation]")
