"""Dispatch that survives DNS outages and crashes: a name that does not resolve now is
retried with backoff and delivered once it resolves (only an address the SSRF guard refuses
is permanent); ``attempts`` counts sends and ``claims`` claims; a new leader gives back at
once the rows a dead leader held; on PostgreSQL a dead leader is not shown alive."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from service.api.db_metrics import lease_state
from service.channels.base import PermanentDeliveryError
from service.channels.netguard import ResolutionFailed, resolve_vetted
from service.channels.webhook import WebhookChannel
from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.dispatch.dispatcher import Dispatcher
from service.dispatch.outbox import begin_send, claim, reclaim_orphans, release
from service.dispatch.tables import Outbox
from service.migrate import upgrade
from service.scheduler.leadership import LEASE_NAME, make_leadership
from service.scheduler.tables import SchedulerLease
from service.store.tables import utcnow
from tests.dispatch.conftest import SECRET, add_rows

HOST = "hooks.example.org"


class FlakyDns:
    """A resolver that fails (EAI_AGAIN, as during a resolver outage) until ``up``."""

    def __init__(self, answer: str) -> None:
        self.answer, self.up, self.calls = answer, False, 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        if not self.up:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return [self.answer]


def test_a_resolver_outage_is_temporary_a_refused_address_permanent() -> None:
    dns = FlakyDns("127.0.0.1")
    with pytest.raises(ResolutionFailed, match="cannot resolve"):
        resolve_vetted(HOST, 443, resolver=dns)
    with pytest.raises(ResolutionFailed, match="no address"):
        resolve_vetted(HOST, 443, resolver=lambda h, p: [])
    ch = WebhookChannel(secrets=[SECRET], resolver=dns)
    with pytest.raises(PermanentDeliveryError, match="cannot resolve"):  # registration
        ch.validate(f"https://{HOST}/x")
    dns.up = True
    with pytest.raises(PermanentDeliveryError, match="loopback"):  # the guard's refusal
        ch.validate(f"https://{HOST}/x")
    ch.close()


def _make_due(factory: sessionmaker[Session]) -> None:
    with factory() as s:  # let the backoff pass without sleeping
        s.execute(update(Outbox).where(Outbox.status == "retrying")
                  .values(next_attempt_at=utcnow() - dt.timedelta(seconds=1)))
        s.commit()


def test_dns_failure_then_recovery_delivers(factory: sessionmaker[Session], fast: Settings,
                                            receiver_factory: Any) -> None:
    rec = receiver_factory()
    port = int(rec.url.rsplit(":", 1)[1].split("/")[0])
    dns = FlakyDns("127.0.0.1")
    ch = WebhookChannel(secrets=[SECRET], allow_loopback=True, resolver=dns)
    keys = add_rows(factory, n=3, channel="webhook",
                    destination=f"http://{HOST}:{port}/hook", max_attempts=8)
    d = Dispatcher(session_factory=factory, settings=fast, channels={"webhook": ch})
    first = d.run(statuses=("pending",))
    assert first.retrying == 3 and first.dead == 0 and first.delivered == 0
    _make_due(factory)
    assert d.run(statuses=("retrying",)).retrying == 3  # still down: still retried
    dns.up = True
    _make_due(factory)
    assert d.run(statuses=("retrying",)).delivered == 3
    ch.close()
    assert sorted(rec.acked()) == sorted(keys)
    with factory() as s:
        rows = list(s.scalars(select(Outbox)))
    assert {r.status for r in rows} == {"delivered"}
    assert {(r.attempts, r.claims) for r in rows} == {(3, 3)}  # three sends, three claims


def test_attempts_count_sends_and_claims_count_claims(factory: sessionmaker[Session]) -> None:
    add_rows(factory, n=2, channel="fake", destination="x")
    a, b = claim(session_factory=factory, limit=2, holder="h1")
    with factory() as s:
        assert release(session=s, row=a) is True  # given back unsent: no send counted
        sent = begin_send(session=s, row=b)
    assert sent is not None and sent.attempts == 1
    with factory() as s:
        got = {r.id: (r.status, r.attempts, r.claims) for r in s.scalars(select(Outbox))}
    assert got[a.id] == ("pending", 0, 1) and got[b.id] == ("sending", 1, 1)


def test_a_new_leader_gives_back_a_dead_leaders_rows_at_once(
        factory: sessionmaker[Session]) -> None:
    add_rows(factory, n=4, channel="fake", destination="x")
    dead = claim(session_factory=factory, limit=2, holder="dead:1", claim_timeout=300)
    manual = claim(session_factory=factory, limit=1, claim_timeout=300)  # no holder (CLI)
    mine = claim(session_factory=factory, limit=1, holder="new:2", claim_timeout=300)
    # a claim takes at most ``limit`` rows (PostgreSQL once rescanned the LIMIT subquery)
    assert (len(dead), len(manual), len(mine)) == (2, 1, 1)
    with factory() as s:
        begin_send(session=s, row=dead[0])  # it may have reached the receiver
    became_leader = utcnow() + dt.timedelta(seconds=1)
    n = reclaim_orphans(session_factory=factory, holder="new:2", before=became_leader)
    assert n == 2
    with factory() as s:
        got = {r.id: r for r in s.scalars(select(Outbox))}
    assert got[dead[0].id].status == "retrying" and got[dead[0].id].attempts == 1
    assert got[dead[1].id].status == "pending" and got[dead[1].id].attempts == 0
    assert got[dead[0].id].claim_token is None and got[dead[1].id].claimed_by is None
    assert got[manual[0].id].status == "sending"  # waits for its claim to expire
    assert got[mine[0].id].status == "sending"
    # due at once: the next tick sends them again (not after the 300 s claim timeout)
    again = claim(session_factory=factory, limit=10, statuses=("pending", "retrying"),
                  include_expired=False, holder="new:2")
    assert sorted(r.id for r in again) == sorted(r.id for r in dead)


@pytest.mark.external_service
def test_a_dead_postgresql_leader_is_not_shown_alive(
        new_pg_database: Callable[[], str]) -> None:
    url = new_pg_database()
    engine = make_engine(url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    key = 0x0F0E_3A99
    leader = make_leadership(engine, holder="pg-leader:1", lease_seconds=300,
                             advisory_lock_key=key)
    try:
        assert leader.try_acquire()
        with factory() as s:
            state = lease_state(s, key)
            assert state["alive"] is True and state["holder"] == "pg-leader:1"
        # the leader's lock connection dies (kill -9 of its process): the server frees the
        # lock. pg_terminate_backend only signals; its timeout (ms) waits for the exit.
        killer = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with killer.connect() as c:
                pids = list(c.scalars(text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database()) "
                    "AND objid::bigint = ((:k)::bigint & 4294967295)"), {"k": key}))
                assert len(pids) == 1
                assert c.scalar(text("SELECT pg_terminate_backend(:p, 30000)"),
                                {"p": pids[0]})
        finally:
            killer.dispose()
        with factory() as s:
            lease = s.get(SchedulerLease, LEASE_NAME)
            assert lease is not None and lease.expires_at is not None
            assert lease.expires_at > utcnow()  # the row still says so
            state = lease_state(s, key)
        assert state["alive"] is False and state["holder"] == "pg-leader:1"
        # the same process (a database restart, not a crash) notices and can lead again: a
        # dead lock connection is dropped, not reused forever (PendingRollbackError)
        assert leader.renew() is False
        assert leader.try_acquire() is True
        assert leader.renew() is True
        with factory() as s:
            assert lease_state(s, key)["alive"] is True
    finally:
        leader.release()  # closes the lock connection (no ResourceWarning later)
        engine.dispose()
