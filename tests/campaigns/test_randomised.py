"""Randomised reminder timing: opt-in per category, proposal in the plan, the seeded draw at
approval (recorded and audited), delayed send dates that stay before the onset."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.stepped_wedge import assign_arms
from service.api.app import create_app
from service.audit import list_entries
from service.campaigns.randomised import parse_timing_setting
from service.campaigns.service import approve_campaign, local_today, plan_campaigns
from service.campaigns.tables import Campaign
from service.config import CampaignSettings, Settings
from service.store.keys import create_key
from service.store.reference import load_reference
from service.store.tables import Category
from tests.campaigns.conftest import TODAY, P, add_run, monday
from tests.conftest import FIXTURES

REGIONS = ("150100", "150200", "152900", "150102")
WINDOW = dt.date(2025, 3, 3)  # a Monday; lead 14 days -> send 2025-02-17


def _opt_in(session: Session, code: str = "fire_hazard", **setting: object) -> None:
    cat = session.get(Category, code)
    assert cat is not None
    cat.randomised_timing = parse_timing_setting({"enabled": True, **setting})
    session.commit()


def _campaigns(session: Session, category: str = "fire_hazard") -> dict[str, Campaign]:
    session.expire_all()
    return {c.region: c for c in session.scalars(select(Campaign).where(
        Campaign.category == category))}


def test_setting_is_validated() -> None:
    assert parse_timing_setting(True) == {"enabled": True, "delay_weeks": 2, "min_regions": 4}
    assert parse_timing_setting({"enabled": True, "delay_weeks": 3})["delay_weeks"] == 3
    assert parse_timing_setting(None) == {}
    for bad, msg in (({"delay_weeks": 0}, "delay_weeks"), ({"min_regions": 3}, "min_regions"),
                     ({"enabeld": True}, "unknown field"), ("yes", "true/false"),
                     ({"enabled": "yes"}, "enabled")):
        with pytest.raises(ValueError, match=msg):
            parse_timing_setting(bad)


def test_bad_setting_in_the_categories_file_names_the_category(
        session: Session, settings: Settings, tmp_path: Path) -> None:
    text = (FIXTURES / "categories.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "categories.yaml"
    bad.write_text(text.replace("  - code: fireworks\n",
                                "  - code: fireworks\n    randomised_timing: {delay_weeks: 99}\n",
                                1), encoding="utf-8")
    with pytest.raises(ValueError, match=r"category 'fireworks': randomised_timing: "
                                         r"delay_weeks must be an integer from 1 to 8"):
        load_reference(session=session, categories_file=bad,
                       regions_file=settings.regions_file)
    good = tmp_path / "good.yaml"
    good.write_text(text.replace("  - code: fireworks\n",
                                 "  - code: fireworks\n    randomised_timing: true\n", 1),
                    encoding="utf-8")
    load_reference(session=session, categories_file=good, regions_file=settings.regions_file)
    cat = session.get(Category, "fireworks")
    assert cat is not None and cat.randomised_timing["enabled"] is True


def test_plan_proposes_randomisation_and_says_so(session: Session, settings: Settings) -> None:
    _opt_in(session)
    add_run(session, [P("fire_hazard", r, WINDOW) for r in REGIONS]
            + [P("fireworks", r, WINDOW) for r in REGIONS], train_until=TODAY)
    plan_campaigns(session=session, settings=settings, today=TODAY)
    camps = _campaigns(session)
    assert set(camps) == set(REGIONS)
    for c in camps.values():
        assert c.status == "draft" and c.send_date == dt.date(2025, 2, 17)
        assert c.timing["status"] == "proposed" and c.timing["delay_days"] == 14
        assert len({x.timing["wave"] for x in camps.values()}) == 1
        note = [n for n in c.constraint_notes if n["constraint"] == "randomised_timing"]
        assert len(note) == 1 and note[0]["action"] == "proposed"
        assert "所有地区都会收到提示" in note[0]["reason"] and note[0]["to"] == "2025-03-02"
    # a category that did not opt in is planned as before
    for c in _campaigns(session, "fireworks").values():
        assert c.timing == {} and all(n["constraint"] != "randomised_timing"
                                      for n in c.constraint_notes)
    # replanning keeps one note, not two
    plan_campaigns(session=session, settings=settings, today=TODAY)
    c = _campaigns(session)["150100"]
    assert sum(n["constraint"] == "randomised_timing" for n in c.constraint_notes) == 1


def test_too_few_regions_or_too_short_a_lead_are_not_randomised(
        session: Session, settings: Settings) -> None:
    _opt_in(session, min_regions=4)
    add_run(session, [P("fire_hazard", r, WINDOW) for r in REGIONS[:3]], train_until=TODAY)
    plan_campaigns(session=session, settings=settings, today=TODAY)
    for c in _campaigns(session).values():
        assert c.timing == {}
        assert any(n["constraint"] == "randomised_timing" and n["action"] == "not_randomised"
                   and "仅3个" in n["reason"] for n in c.constraint_notes)
    # a lead of one week leaves no room for a two-week delay before the onset
    _opt_in(session, delay_weeks=1)
    short = WINDOW + dt.timedelta(days=14)
    add_run(session, [P("fire_hazard", r, short) for r in REGIONS], train_until=TODAY)
    cat = session.get(Category, "fire_hazard")
    assert cat is not None
    cat.lead_days = 7
    session.commit()
    plan_campaigns(session=session, settings=settings, today=TODAY)
    for c in _campaigns(session).values():
        if c.window_start == short:
            assert c.timing == {}
            assert any("不参与随机化" in n["reason"] for n in c.constraint_notes
                       if n["constraint"] == "randomised_timing")


def test_approval_draws_the_arms_records_the_seed_and_delays_half(
        session: Session, settings: Settings) -> None:
    _opt_in(session)
    add_run(session, [P("fire_hazard", r, WINDOW) for r in REGIONS], train_until=TODAY)
    plan_campaigns(session=session, settings=settings, today=TODAY)
    first = _campaigns(session)["150100"]
    approve_campaign(session=session, settings=settings, campaign_id=first.id, actor="cli:ann",
                     today=TODAY)
    camps = _campaigns(session)
    seeds = {c.timing["seed"] for c in camps.values()}
    assert len(seeds) == 1
    seed = seeds.pop()
    expected = dict(zip(*(assign_arms(list(REGIONS), seed=seed)[k].tolist()
                          for k in ("unit", "arm")), strict=True))
    assert {r: c.timing["arm"] for r, c in camps.items()} == expected
    assert sorted(expected.values()) == ["delayed", "delayed", "early", "early"]
    assert all(c.timing["members"] == sorted(REGIONS) for c in camps.values())
    entries = [e for e in list_entries(session=session, entity_id=first.id)
               if e.action == "campaign.randomised"]
    assert len(entries) == 1 and entries[0].actor == "cli:ann"
    assert entries[0].detail["seed"] == seed and entries[0].detail["arms"] == expected
    for c in camps.values():  # approve the rest: every region is reminded
        if c.status == "draft":
            approve_campaign(session=session, settings=settings, campaign_id=c.id,
                             actor="cli:ann", today=TODAY)
    camps = _campaigns(session)
    for r, c in camps.items():
        assert c.status == "approved"
        assert c.send_date < c.window_start  # before its own onset
        note = [n for n in c.constraint_notes if n["constraint"] == "randomised_timing"]
        assert len(note) == 1
        if expected[r] == "delayed":
            assert c.send_date == dt.date(2025, 3, 2) and note[0]["action"] == "moved"
            assert "推迟组" in note[0]["reason"] and str(seed) in note[0]["reason"]
            assert c.frozen_content  # rendered with the delayed date
        else:
            assert c.send_date == dt.date(2025, 2, 17) and "按时组" in note[0]["reason"]
    assert len([e for e in list_entries(session=session) if e.action == "campaign.randomised"]
               ) == 1  # drawn once per wave


def test_api_shows_the_proposal_and_the_drawn_arm(
        factory: sessionmaker[Session], settings: Settings) -> None:
    cfg = CampaignSettings(blackout_holiday_blocks=[])  # dates relative to the real today
    settings = settings.model_copy(update={"campaigns": cfg})
    today = local_today(settings)
    start = monday(today + dt.timedelta(days=70))
    with factory() as s:
        _opt_in(s)
        keys = {sc: {"X-API-Key": create_key(session=s, name=sc, scopes=[sc])[1]}
                for sc in ("read", "plan", "approve")}
        add_run(s, [P("fire_hazard", r, start) for r in REGIONS],
                train_until=today - dt.timedelta(days=1))
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/campaigns/plan", json={}, headers=keys["plan"])
        assert r.status_code == 200, r.text
        items = client.get("/v1/campaigns", params={"category": "fire_hazard"},
                           headers=keys["read"]).json()["items"]
        assert len(items) == 4
        first = client.get(f"/v1/campaigns/{items[0]['id']}", headers=keys["read"]).json()
        assert first["timing"]["status"] == "proposed"
        assert any(n["constraint"] == "randomised_timing" for n in first["constraint_notes"])
        r = client.post(f"/v1/campaigns/{first['id']}/approve", json={},
                        headers=keys["approve"])
        assert r.status_code == 200, r.text
        arms = {}
        for it in items:
            d = client.get(f"/v1/campaigns/{it['id']}", headers=keys["read"]).json()
            assert d["timing"]["status"] == "assigned" and isinstance(d["timing"]["seed"], int)
            arms[d["region"]] = d["timing"]["arm"]
        assert sorted(arms.values()) == ["delayed", "delayed", "early", "early"]
