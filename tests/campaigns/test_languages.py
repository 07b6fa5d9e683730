"""Reminders in both official languages: a category's language variants are all rendered,
carried with their language tags in the public JSON and the iCalendar feed, and a
placeholder translation is never passed off as official; the preview shows every variant and
approval freezes every variant."""

from __future__ import annotations

import datetime as dt
from typing import Any

import icalendar
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.campaigns.content import render_variants, template_languages
from service.campaigns.ics import calendar_ics
from service.campaigns.service import create_campaign, local_today, public_reminders, render_message
from service.campaigns.tables import Campaign
from service.config import CampaignSettings, Settings
from service.dispatch.campaign_link import outbox_rows_for
from service.store.keys import create_key
from service.store.tables import Category, Region
from tests.campaigns.conftest import monday
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


_MN = {"tag": "mn-Mong", "status": "placeholder", "note": "占位文本，非官方译文",
       "default": "ᠮᠣᠩᠭᠣᠯ {{ region.name_zh }} {{ window_start_iso }}",
       "email": "ᠢᠮᠸᠯ {{ category.name_zh }} {{ window_end_iso }}"}


def _give_variant(session: Session, code: str = "fireworks") -> None:
    cat = session.get(Category, code)
    assert cat is not None
    cat.templates = {**(cat.templates or {}), "languages": {"mn": dict(_MN)}}
    session.commit()


def test_preview_renders_every_variant_and_approval_freezes_all(
        factory: sessionmaker[Session], settings: Settings) -> None:
    cfg = CampaignSettings(blackout_holiday_blocks=[])
    settings = settings.model_copy(update={"campaigns": cfg})
    today = local_today(settings)
    start = monday(today + dt.timedelta(days=35))
    with factory() as s:
        _give_variant(s)
        read = {"X-API-Key": create_key(session=s, name="r", scopes=["read"])[1]}
        plan = {"X-API-Key": create_key(session=s, name="p", scopes=["plan", "approve"])[1]}
    window = {"region": "150100", "window_start": start.isoformat(),
              "window_end": (start + dt.timedelta(days=13)).isoformat()}
    with TestClient(create_app(settings)) as client:
        cid = client.post("/v1/campaigns", json={**window, "category": "fireworks"},
                          headers=plan).json()["id"]
        other = client.post("/v1/campaigns", json={**window, "category": "gas_safety"},
                            headers=plan).json()["id"]

        def pv(campaign: str, channel: str = "public") -> dict[str, Any]:
            r = client.get(f"/v1/campaigns/{campaign}/preview", params={"channel": channel},
                           headers=read)
            assert r.status_code == 200, r.text
            out: dict[str, Any] = r.json()
            return out

        before = {ch: pv(cid, ch) for ch in ("public", "email")}
        public = before["public"]
        assert public["frozen"] is False
        assert [(t["language"], t["tag"], t["status"]) for t in public["texts"]] == [
            ("zh", "zh-CN", "official"), ("mn", "mn-Mong", "placeholder")]
        zh, mn = public["texts"]
        assert zh["body"] == public["body"] and "法律依据" not in mn["body"]
        assert mn["body"] == f"ᠮᠣᠩᠭᠣᠯ 呼和浩特市 {start.isoformat()}\n"
        assert mn["note"] == "占位文本，非官方译文"
        # the channel's own variant template wins over the variant's default
        assert before["email"]["texts"][1]["body"].startswith("ᠢᠮᠸᠯ 违规销售燃放烟花爆竹")
        # a category without variants: Chinese only
        assert [t["language"] for t in pv(other)["texts"]] == ["zh"]
        r = client.post(f"/v1/campaigns/{cid}/approve", headers=plan)
        assert r.status_code == 200, r.text
        # the templates change after approval, in every language
        with factory() as s:
            cat = s.get(Category, "fireworks")
            assert cat is not None
            cat.templates = {"default": "改过的 {{ category.code }}", "languages": {"mn": {
                **_MN, "default": "ᠰᠢᠨ᠎ᠡ {{ region.code }}", "email": "ᠰᠢᠨ᠎ᠡ"}}}
            s.commit()
        for ch, old in before.items():
            now = pv(cid, ch)
            assert now["frozen"] is True
            assert now["texts"] == old["texts"], ch  # zh and mn both as approved
            assert now["body"] == old["body"]
        # the public JSON carries the frozen texts too (on and after the send date)
        with factory() as s:
            c = s.get(Campaign, cid)
            assert c is not None
            items = public_reminders(session=s, settings=settings, today=c.send_date)
            rows = outbox_rows_for(session=s, campaign=c, settings=settings)
        item = next(i for i in items if i["id"] == cid)
        assert item["texts"] == before["public"]["texts"]
        # what the webhook and file channels deliver: every frozen variant beside the zh body
        public_rows = [r for r in rows if r["payload"]["data"]["channel"] == "public"]
        assert public_rows and all(r["payload"]["data"]["texts"] == before["public"]["texts"]
                                   for r in public_rows)
        assert all(r["payload"]["body"] == before["public"]["body"] for r in public_rows)
        # a draft is rendered live: the edited templates show at once
        live = pv(other)  # gas_safety is unchanged; give it the edited variant
        with factory() as s:
            _give_variant(s, "gas_safety")
        assert [t["language"] for t in pv(other)["texts"]] == ["zh", "mn"]
        assert live["frozen"] is False


def test_campaign_frozen_before_variants_keeps_its_chinese_text(
        factory: sessionmaker[Session], settings: Settings) -> None:
    """An approval stored before variants were frozen (no ``texts``): the Chinese text stays
    the frozen one, the other languages are rendered now."""
    with factory() as s:
        _give_variant(s)
        c = create_campaign(session=s, settings=settings, actor="t", category="fireworks",
                            region="150100", window_start=dt.date(2025, 5, 5),
                            window_end=dt.date(2025, 5, 18), today=dt.date(2025, 1, 1))
        c.status = "approved"
        c.frozen_content = {"public": {"channel": "public", "subject": "旧标题",
                                       "body": "旧的正文\n", "template": "fireworks:default"}}
        s.commit()
        msg = render_message(session=s, campaign=c, channel="public")
    assert msg.frozen and msg.body == "旧的正文\n"
    assert [t["body"] for t in msg.texts] == ["旧的正文\n", "ᠮᠣᠩᠭᠣᠯ 呼和浩特市 2025-05-05\n"]
