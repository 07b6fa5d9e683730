"""End to end with campaigns: approve → schedule (outbox rows + status in one transaction) →
the scheduler sends through file, webhook and e-mail at the send time → ``sent`` or
``partially_failed``; a cancelled campaign's rows are not sent."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.campaigns.service import (
    approve_campaign,
    cancel_campaign,
    create_campaign,
    create_recipient,
    local_today,
)
from service.campaigns.tables import Campaign
from service.channels import load_channels
from service.config import Settings
from service.dispatch.campaign_link import CampaignHooks, schedule_campaign
from service.dispatch.dispatcher import Dispatcher, DispatchStats
from service.dispatch.tables import Outbox
from service.errors import Conflict
from service.store.reference import load_reference
from tests.dispatch.conftest import free_port


def _campaign(factory: sessionmaker[Session], settings: Settings, region: str = "150100"
              ) -> str:
    today = local_today(settings)  # read now: a run may cross midnight in Shanghai
    with factory() as s:
        c = create_campaign(session=s, settings=settings, actor="test", category="fireworks",
                            region=region, window_start=today + dt.timedelta(days=10),
                            window_end=today + dt.timedelta(days=24), send_date=today)
        approve_campaign(session=s, settings=settings, campaign_id=c.id, actor="test")
        return c.id


def _status(factory: sessionmaker[Session], cid: str) -> str:
    with factory() as s:
        c = s.get(Campaign, cid)
        assert c is not None
        return c.status


@pytest.fixture
def world(fast: Settings, engine: Engine, factory: sessionmaker[Session]) -> Settings:
    with factory() as s:
        load_reference(session=s, categories_file=fast.categories_file,
                       regions_file=fast.regions_file)
    # due from local midnight of the send date, so "today" is due whatever the clock says
    return fast.model_copy(update={"dispatch": fast.dispatch.model_copy(
        update={"send_time": dt.time(0, 0)})})


def test_schedule_then_dispatch_through_every_channel(
        world: Settings, factory: sessionmaker[Session], receiver_factory: Any) -> None:
    from aiosmtpd.controller import Controller

    mails: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            mails.append(envelope.content)
            return "250 OK"

    port = free_port()
    smtp = Controller(Handler(), hostname="127.0.0.1", port=port, ready_timeout=60)
    smtp.start()
    rec = receiver_factory()
    email_cfg = world.channels.email.model_copy(update={"host": "127.0.0.1", "port": port,
                                                        "security": "none"})
    s = world.model_copy(update={"channels": world.channels.model_copy(
        update={"email": email_cfg})})
    with factory() as sess:
        create_recipient(session=sess, actor="t", name="呼和浩特市应急管理局", kind="department",
                         region="150100", may_contact=True, webhook_url=rec.url,
                         email="yjj@example.cn")
        create_recipient(session=sess, actor="t", name="refused", kind="department",
                         region="150100", may_contact=True, webhook_url="http://10.0.0.1/x")
    cid = _campaign(factory, s)
    with factory() as sess:
        out = schedule_campaign(session=sess, campaign_id=cid, actor="test", settings=s)
        assert out["rows"] == 4
        with pytest.raises(Conflict):  # only approved campaigns are scheduled
            schedule_campaign(session=sess, campaign_id=cid, actor="test", settings=s)
    assert _status(factory, cid) == "scheduled"
    with factory() as sess:
        rows = list(sess.scalars(select(Outbox).where(Outbox.campaign_id == cid)))
    assert Counter(r.channel for r in rows) == Counter(file=1, webhook=2, email=1)
    assert len({r.idempotency_key for r in rows}) == 4
    refused = next(r for r in rows if r.destination == "http://10.0.0.1/x")
    assert refused.status == "dead" and "private" in (refused.last_error or "")

    channels = load_channels(s)
    try:
        stats = Dispatcher(session_factory=factory, settings=s, channels=channels,
                           hooks=CampaignHooks()).run()
    finally:
        smtp.stop()
        for ch in channels.values():
            ch.close()
    assert stats.delivered == 3
    assert _status(factory, cid) == "partially_failed"  # the refused webhook is dead
    [line] = (s.channels.file_dir / "public.jsonl").read_text(encoding="utf-8").splitlines()
    doc = json.loads(line)
    assert doc["campaign_id"] == cid and "烟花爆竹" in doc["body"]
    [hook] = rec.entries
    assert hook.verified and json.loads(hook.body)["campaign_id"] == cid
    assert len(mails) == 1 and b"Message-ID: <fw-" in mails[0]


def test_rows_wait_for_the_send_time_and_cancelled_campaigns_are_not_sent(
        world: Settings, factory: sessionmaker[Session]) -> None:
    late = world.model_copy(update={"dispatch": world.dispatch.model_copy(
        update={"send_time": dt.time(23, 59, 59)})})
    cid = _campaign(factory, world)
    with factory() as sess:
        schedule_campaign(session=sess, campaign_id=cid, actor="test", settings=late)
    channels = load_channels(world, ["file"])
    d = Dispatcher(session_factory=factory, settings=world, channels=channels,
                   hooks=CampaignHooks())
    now_local = dt.datetime.now(dt.UTC).astimezone(__import__("zoneinfo").ZoneInfo(
        world.timezone))
    with factory() as sess:
        campaign = sess.get(Campaign, cid)
        assert campaign is not None
        send_date = campaign.send_date
    if now_local.date() == send_date and now_local.time() < dt.time(23, 59, 50):
        assert d.run().claimed == 0  # not due before the send time
    with factory() as sess:
        sess.execute(Outbox.__table__.update().values(  # type: ignore[attr-defined]
            next_attempt_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
        sess.commit()
        cancel_campaign(session=sess, campaign_id=cid, actor="test", reason="window vanished")
    stats = d.run()
    assert stats.claimed == 1 and stats.cancelled == 1 and stats.delivered == 0
    assert not (world.channels.file_dir / "public.jsonl").exists()
    assert _status(factory, cid) == "cancelled"
    cid2 = _campaign(factory, world, region="150200")
    with factory() as sess:
        schedule_campaign(session=sess, campaign_id=cid2, actor="test", settings=world)
    assert d.run().delivered == 1
    assert _status(factory, cid2) == "sent"


def _dispatch_to_files(world: Settings, factory: sessionmaker[Session],
                       hooks: CampaignHooks) -> DispatchStats:
    """One dispatcher run through the file channel, its channels closed after."""
    channels = load_channels(world, ["file"])
    try:
        return Dispatcher(session_factory=factory, settings=world, channels=channels,
                          hooks=hooks).run()
    finally:
        for ch in channels.values():
            ch.close()


def test_a_cancel_during_scheduling_is_not_overwritten(
        world: Settings, factory: sessionmaker[Session], engine: Engine,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler reads an approved campaign and builds its outbox rows (resolving every
    webhook host can take seconds); an operator cancels meanwhile and is told it worked. The
    cancel must stand: on SQLite (reads take no lock) scheduling loses with 409 and writes no
    row; on PostgreSQL the cancel waits on the scheduler's row lock and then cancels the
    scheduled campaign. Before, SQLite wrote "scheduled" over "cancelled" and sent it."""
    from service.dispatch import campaign_link

    cid = _campaign(factory, world)
    pg = engine.dialect.name == "postgresql"
    cancelled = threading.Event()
    errors: list[BaseException] = []

    def cancel() -> None:
        try:
            with factory() as other:
                cancel_campaign(session=other, campaign_id=cid, actor="operator")
            cancelled.set()
        except BaseException as exc:  # reported below
            errors.append(exc)

    canceller = threading.Thread(target=cancel)
    real = campaign_link.outbox_rows_for

    def rows_while_an_operator_cancels(**kw: Any) -> list[dict[str, Any]]:
        canceller.start()
        if pg:
            assert not cancelled.wait(0.5)  # held by this transaction's row lock
        else:
            canceller.join(60)
            assert cancelled.is_set()
        return real(**kw)

    monkeypatch.setattr(campaign_link, "outbox_rows_for", rows_while_an_operator_cancels)
    with factory() as sess:
        if pg:
            schedule_campaign(session=sess, campaign_id=cid, actor="test", settings=world)
        else:
            with pytest.raises(Conflict, match="changed meanwhile") as lost:
                schedule_campaign(session=sess, campaign_id=cid, actor="test", settings=world)
            assert lost.value.extensions["status_now"] == "cancelled"
    canceller.join(60)
    assert not errors and cancelled.is_set()
    assert _status(factory, cid) == "cancelled"
    with factory() as sess:
        rows = list(sess.scalars(select(Outbox).where(Outbox.campaign_id == cid)))
    assert len(rows) == (1 if pg else 0)
    stats = _dispatch_to_files(world, factory, CampaignHooks())
    assert stats.delivered == 0 and stats.cancelled == (1 if pg else 0)


def test_a_cancel_between_the_dispatchers_check_and_its_start_stops_the_rows(
        world: Settings, factory: sessionmaker[Session]) -> None:
    """A cancel that commits after the dispatcher found the campaign sendable but before it
    moved it to dispatching: the claimed rows are cancelled, not sent."""
    cid = _campaign(factory, world)
    with factory() as sess:
        schedule_campaign(session=sess, campaign_id=cid, actor="test", settings=world)

    class CancelledRightAfterTheCheck(CampaignHooks):
        def blocked(self, session_factory: sessionmaker[Session], campaign_ids: set[str]
                    ) -> set[str]:
            found = super().blocked(session_factory, campaign_ids)
            with session_factory() as other:
                cancel_campaign(session=other, campaign_id=cid, actor="operator")
            return found

    stats = _dispatch_to_files(world, factory, CancelledRightAfterTheCheck())
    assert (stats.claimed, stats.delivered, stats.cancelled) == (1, 0, 1)
    assert _status(factory, cid) == "cancelled"
    assert not (world.channels.file_dir / "public.jsonl").exists()
