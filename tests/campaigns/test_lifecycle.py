"""Lifecycle, 409s, audit trail, content rendering and audiences."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.audit import AuditEntry, AuditViolation, list_entries, record
from service.campaigns.service import (
    ALLOWED_TRANSITIONS,
    approve_campaign,
    cancel_campaign,
    create_campaign,
    create_recipient,
    preview,
    resolve_audience,
    set_may_contact,
    transition,
    update_campaign,
)
from service.campaigns.tables import Campaign, Recipient
from service.config import Settings
from service.errors import Conflict, UnprocessableContent
from service.store.tables import Category
from tests.campaigns.conftest import TODAY

D = dt.date


def _manual(session: Session, settings: Settings, category: str = "fireworks",
            region: str = "150100", **kw: object) -> Campaign:
    return create_campaign(session=session, settings=settings, actor="key:plan0001",
                           category=category, region=region, window_start=D(2025, 5, 5),
                           window_end=D(2025, 5, 18), today=TODAY, **kw)  # type: ignore[arg-type]


def test_transition_table_is_closed_and_terminal_states_are_final() -> None:
    assert set().union(*ALLOWED_TRANSITIONS.values()) <= set(ALLOWED_TRANSITIONS)
    for terminal in ("sent", "cancelled", "superseded"):
        assert ALLOWED_TRANSITIONS[terminal] == frozenset()
    assert "approved" not in ALLOWED_TRANSITIONS["cancelled"]


def test_manual_campaign_send_date_and_lock(session: Session, settings: Settings) -> None:
    c = _manual(session, settings)
    assert c.origin == "manual" and c.status == "draft"
    assert c.send_date == D(2025, 4, 14) and c.probability is None
    fixed = _manual(session, settings, category="food_safety", send_date=D(2025, 4, 14))
    assert fixed.send_date == D(2025, 4, 14) and "send_date" in fixed.locked_fields
    with pytest.raises(UnprocessableContent, match="past"):
        _manual(session, settings, send_date=D(2024, 12, 1))


def test_lifecycle_records_who_and_when_and_409s(session: Session, settings: Settings) -> None:
    c = _manual(session, settings)
    approved = approve_campaign(session=session, settings=settings, campaign_id=c.id,
                                actor="key:appr0001", note="ok", today=TODAY)
    assert approved.status == "approved" and approved.approved_by == "key:appr0001"
    assert approved.approved_at is not None
    assert set(approved.frozen_content) == set(settings.campaigns.channels)
    with pytest.raises(Conflict):
        approve_campaign(session=session, settings=settings, campaign_id=c.id, actor="x",
                         today=TODAY)
    with pytest.raises(Conflict, match="can be edited"):
        update_campaign(session=session, settings=settings, campaign_id=c.id, actor="x",
                        changes={"title": "新标题"}, today=TODAY)
    cancelled = cancel_campaign(session=session, campaign_id=c.id, actor="cli:ops",
                                reason="window passed")
    assert cancelled.status == "cancelled" and cancelled.cancelled_by == "cli:ops"
    assert cancelled.cancelled_at is not None and cancelled.cancel_reason == "window passed"
    with pytest.raises(Conflict, match="cancelled; only draft") as exc:
        approve_campaign(session=session, settings=settings, campaign_id=c.id, actor="x",
                         today=TODAY)
    assert exc.value.status == 409
    with pytest.raises(Conflict):
        cancel_campaign(session=session, campaign_id=c.id, actor="x")
    other = _manual(session, settings, category="food_safety")
    with pytest.raises(Conflict, match="cannot become sent"):
        transition(session=session, campaign=other, to="sent", actor="x")
    approve_campaign(session=session, settings=settings, campaign_id=other.id, actor="a",
                     today=TODAY)
    for to in ("scheduled", "dispatching", "sent"):
        transition(session=session, campaign=other, to=to, actor="scheduler")
    session.commit()
    with pytest.raises(Conflict):
        update_campaign(session=session, settings=settings, campaign_id=other.id, actor="x",
                        changes={"title": "x"}, today=TODAY)
    with pytest.raises(Conflict):
        cancel_campaign(session=session, campaign_id=other.id, actor="x")


def test_audit_trail_is_complete_and_append_only(session: Session,
                                                 settings: Settings) -> None:
    c = _manual(session, settings)
    update_campaign(session=session, settings=settings, campaign_id=c.id, actor="key:p1",
                    changes={"title": "【执法事项提示】春节烟花", "notes": "x"}, today=TODAY)
    approve_campaign(session=session, settings=settings, campaign_id=c.id, actor="key:a1",
                     today=TODAY)
    cancel_campaign(session=session, campaign_id=c.id, actor="key:a1", reason="r")
    entries = list_entries(session=session, entity_type="campaign", entity_id=c.id)
    assert [(e.action, e.actor) for e in entries] == [
        ("campaign.created", "key:plan0001"), ("campaign.edited", "key:p1"),
        ("campaign.approved", "key:a1"), ("campaign.cancelled", "key:a1")]
    assert entries[2].detail["from"] == "draft" and entries[2].detail["to"] == "approved"
    assert entries[3].detail["reason"] == "r"
    assert entries[1].detail == {"fields": ["notes", "title"]}
    entry = entries[0]
    entry.actor = "someone else"
    with pytest.raises(AuditViolation):
        session.commit()
    session.rollback()
    with pytest.raises(AuditViolation):
        session.delete(session.get(AuditEntry, entry.id))
        session.flush()
    session.rollback()
    kept = record(session=session, actor="key:x", action="keys.create", entity_type="api_key",
                  entity_id="k1", detail={"scopes": ["read"], "secret": "s3cr3t",
                                          "webhook_url": "https://x", "nested": {"email": "a@b"}})
    session.commit()
    assert kept.detail == {"scopes": ["read"], "nested": {}}


def test_edit_before_approval_and_template_errors(session: Session,
                                                  settings: Settings) -> None:
    c = _manual(session, settings)
    bad = "{{ category.name_zh }} {{ nope }}"
    with pytest.raises(UnprocessableContent) as exc:
        update_campaign(session=session, settings=settings, campaign_id=c.id, actor="x",
                        changes={"content_overrides": {"email": bad}}, today=TODAY)
    assert "fireworks" in exc.value.detail and "campaign:email" in exc.value.detail
    session.rollback()
    with pytest.raises(UnprocessableContent, match="syntax|Syntax"):
        update_campaign(session=session, settings=settings, campaign_id=c.id, actor="x",
                        changes={"content_overrides": {"email": "{% for %}"}}, today=TODAY)
    session.rollback()
    update_campaign(session=session, settings=settings, campaign_id=c.id, actor="x",
                    changes={"content_overrides": {"email": "邮件：{{ evidence }}"},
                             "send_date": D(2025, 4, 10)}, today=TODAY)
    msg = preview(session=session, settings=settings, campaign_id=c.id, channel="email")
    assert msg.body.startswith("邮件：预计2025年5月5日至2025年5月18日期间")
    assert msg.template == "campaign:email" and not msg.frozen
    session.refresh(c)
    assert c.send_date == D(2025, 4, 10) and "send_date" in c.locked_fields
    # a sandbox refuses unsafe attribute access
    with pytest.raises(UnprocessableContent, match="SecurityError"):
        update_campaign(session=session, settings=settings, campaign_id=c.id, actor="x",
                        changes={"content_overrides": {
                            "webhook": "{{ category.__class__.__mro__ }}"}}, today=TODAY)


def test_preview_renders_legal_basis_and_evidence(session: Session, settings: Settings) -> None:
    gas = _manual(session, settings, category="gas_safety")  # no templates: built-in one
    body = preview(session=session, settings=settings, campaign_id=gas.id,
                   channel="public").body
    assert "《城镇燃气管理条例》" in body and "一、法律依据" in body
    assert "不设定新的义务" in body and "可能多发" in body
    gas.probability, gas.expected_count, gas.expected_excess = 0.78, 120.0, 40.0
    gas.evidence = [{"signal": "complaints"}]
    session.commit()
    body = preview(session=session, settings=settings, campaign_id=gas.id,
                   channel="email").body
    assert ("预计2025年5月5日至2025年5月18日期间，呼和浩特市“燃气安全”类投诉将明显增多"
            "（概率约78%，预计约120件，比通常水平多约40件）。") in body
    assert "距预计多发期开始还有14天" in body
    fw = _manual(session, settings, category="fireworks")  # the category's own template
    msg = preview(session=session, settings=settings, campaign_id=fw.id, channel="webhook")
    assert msg.body.strip() == "违规销售燃放烟花爆竹：依据《烟花爆竹安全管理条例》。"
    assert msg.template == "fireworks:default"
    with pytest.raises(UnprocessableContent, match="unknown channel"):
        preview(session=session, settings=settings, campaign_id=fw.id, channel="sms")


def test_approval_freezes_what_is_sent(session: Session, settings: Settings) -> None:
    c = _manual(session, settings)
    approve_campaign(session=session, settings=settings, campaign_id=c.id, actor="a",
                     today=TODAY)
    cat = session.get(Category, "fireworks")
    assert cat is not None
    cat.templates = {"default": "changed {{ category.code }}"}
    session.commit()
    msg = preview(session=session, settings=settings, campaign_id=c.id, channel="public")
    assert msg.frozen and msg.body.startswith("违规销售燃放烟花爆竹：依据")


def test_category_template_error_blocks_approval(session: Session, settings: Settings) -> None:
    c = _manual(session, settings)
    cat = session.get(Category, "fireworks")
    assert cat is not None
    cat.templates = {"default": "{{ missing_variable }}"}
    session.commit()
    with pytest.raises(UnprocessableContent) as exc:
        approve_campaign(session=session, settings=settings, campaign_id=c.id, actor="a",
                         today=TODAY)
    assert exc.value.extensions == {"category": "fireworks", "template": "fireworks:default"}
    session.rollback()
    assert session.get(Campaign, c.id).status == "draft"  # type: ignore[union-attr]


def test_legal_basis_removed_after_planning_blocks_approval(session: Session,
                                                            settings: Settings) -> None:
    c = _manual(session, settings)
    cat = session.get(Category, "fireworks")
    assert cat is not None
    cat.legal_basis = []
    session.commit()
    with pytest.raises(UnprocessableContent, match="'fireworks'.*no legal basis"):
        approve_campaign(session=session, settings=settings, campaign_id=c.id, actor="a",
                         today=TODAY)


def test_audience_entities_and_recipients(session: Session, settings: Settings) -> None:
    c = _manual(session, settings)
    create_recipient(session=session, actor="key:adm", name="呼和浩特市应急管理局",
                     kind="department", region="150100", may_contact=True,
                     webhook_url="https://dept.example/hook")
    create_recipient(session=session, actor="key:adm", name="某烟花零售店", kind="entity",
                     region="150102", entity_id="E3", sectors=["公共安全"], may_contact=True,
                     email="shop@example.com")
    create_recipient(session=session, actor="key:adm", name="订阅者", kind="subscriber",
                     region=None, may_contact=False)
    create_recipient(session=session, actor="key:adm", name="包头食品", kind="department",
                     region="150200", may_contact=True, email="bt@example.com")
    create_recipient(session=session, actor="key:adm", name="餐饮订阅", kind="subscriber",
                     categories=["food_safety"], may_contact=True, email="f@example.com")
    aud = resolve_audience(session=session, campaign=c)
    assert aud.public and aud.entity_ids == ["E1", "E2", "E3"]  # 150102 is inside 150100
    assert sorted(r.name for r in aud.recipients) == ["呼和浩特市应急管理局", "某烟花零售店"]
    with pytest.raises(UnprocessableContent, match="may be contacted"):
        create_recipient(session=session, actor="key:adm", name="x", kind="subscriber",
                         email="x@example.com")
    dept = session.scalar(select(Recipient).where(Recipient.kind == "department",
                                                  Recipient.region == "150100"))
    assert dept is not None
    set_may_contact(session=session, recipient_id=dept.id, may_contact=False, actor="key:adm")
    session.refresh(dept)
    assert dept.webhook_url is None and dept.email is None
    assert [r.name for r in resolve_audience(session=session, campaign=c).recipients] == [
        "某烟花零售店"]
    trail = list_entries(session=session, entity_type="recipient")
    assert trail and all("example" not in str(e.detail) and "烟花" not in str(e.detail)
                         for e in trail)


def test_the_api_status_vocabulary_is_the_lifecycle_s() -> None:
    from typing import get_args

    from service.api.routes.campaigns import Status
    from service.campaigns.status import STATUS_ZH, STATUSES

    assert set(get_args(Status)) == set(STATUSES) == set(STATUS_ZH)
