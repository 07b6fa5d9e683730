"""Outbox on SQLite and PostgreSQL: idempotent enqueue, racing claims, backoff, dead letters,
expired claims, never resending an acknowledged row, and the dispatches API."""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.channels.base import Channel, DeliveryError, Message, Receipt
from service.config import Settings
from service.dispatch.dispatcher import Dispatcher
from service.dispatch.outbox import backoff_delay, claim, enqueue, idempotency_key
from service.dispatch.tables import Outbox
from service.errors import PROBLEM_JSON
from service.store.keys import create_key
from service.store.tables import utcnow
from tests.dispatch.conftest import add_rows


class Recorder(Channel):
    """A fake channel: records sends, fails keys in ``failing`` (or everything)."""

    name = "fake"

    def __init__(self, failing: set[str] | None = None, fail_all: bool = False) -> None:
        self.sent: list[str] = []
        self.failing = failing or set()
        self.fail_all = fail_all
        self.lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Recorder:
        return cls()

    def send(self, message: Message) -> Receipt:
        with self.lock:
            self.sent.append(message.idempotency_key)
        if self.fail_all or message.idempotency_key in self.failing:
            raise DeliveryError("HTTP 503: busy", status=503)
        return Receipt(status=200)


def test_enqueue_is_idempotent(factory: sessionmaker[Session]) -> None:
    keys = add_rows(factory, n=30, channel="fake", destination="x")
    assert len(set(keys)) == 30
    with factory() as s:
        again = enqueue(session=s, rows=[{
            "campaign_id": "c0", "channel": "fake", "recipient_id": f"r{i}",
            "destination": "x", "payload": {}, "next_attempt_at": utcnow()} for i in range(40)])
        s.commit()
        assert again == 10  # only r30…r39 are new
        assert s.scalar(select(Outbox.id).where(Outbox.idempotency_key == keys[0])) is not None
        assert len(s.scalars(select(Outbox.id)).all()) == 40
    assert idempotency_key("c0", "fake", "r1") == keys[1]


def test_racing_claims_take_each_row_once(factory: sessionmaker[Session]) -> None:
    add_rows(factory, n=300, channel="fake", destination="x")
    got: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while True:
                rows = claim(session_factory=factory, limit=7, claim_timeout=60)
                if not rows:
                    return
                with lock:
                    got.extend(r.id for r in rows)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(got) == 300 and len(set(got)) == 300


def test_backoff_grows_caps_and_jitters() -> None:
    rng = random.Random(3)
    plain = [backoff_delay(a, base=1, cap=10, jitter=0, rng=rng) for a in range(1, 7)]
    assert plain == [1, 2, 4, 8, 10, 10]
    jittered = [backoff_delay(3, base=1, cap=100, jitter=0.5, rng=rng) for _ in range(200)]
    assert min(jittered) >= 2 and max(jittered) <= 4
    assert len({round(j, 3) for j in jittered}) > 100  # spread, not one value


def test_failures_retry_then_dead_and_delivered_rows_are_never_resent(
        factory: sessionmaker[Session], fast: Settings) -> None:
    keys = add_rows(factory, n=5, channel="fake", destination="x", max_attempts=3)
    fake = Recorder(failing={keys[0]})
    d = Dispatcher(session_factory=factory, settings=fast, channels={"fake": fake})
    first = d.run(statuses=("pending",))
    assert first.delivered == 4 and first.retrying == 1
    for _ in range(10):
        with factory() as s:  # make the backoff pass without sleeping
            s.execute(update(Outbox).where(Outbox.status == "retrying")
                      .values(next_attempt_at=utcnow() - dt.timedelta(seconds=1)))
            s.commit()
        d.run(statuses=("retrying",))
    with factory() as s:
        rows = {r.idempotency_key: r for r in s.scalars(select(Outbox))}
    assert rows[keys[0]].status == "dead" and rows[keys[0]].attempts == 3
    assert "503" in (rows[keys[0]].last_error or "")
    assert all(rows[k].status == "delivered" for k in keys[1:])
    counts = Counter(fake.sent)
    assert counts[keys[0]] == 3 and all(counts[k] == 1 for k in keys[1:])
    # nothing is due any more: another tick sends nothing
    assert d.run(statuses=("pending", "retrying")).claimed == 0


def test_a_dispatcher_told_to_stop_gives_its_unsent_rows_back(
        factory: sessionmaker[Session], fast: Settings) -> None:
    """The leader steps down in the middle of a batch: the send under way finishes, the rest
    of the batch goes back (pending, due at once, never counted as an attempt) and no further
    batch is claimed, so the next leader does not send the same rows alongside it."""
    keys = add_rows(factory, n=9, channel="fake", destination="x")
    stop = threading.Event()

    class StepsDownOnFirstSend(Recorder):
        def send(self, message: Message) -> Receipt:
            stop.set()  # leadership is lost while this send is under way
            return super().send(message)

    fake = StepsDownOnFirstSend()
    one_at_a_time = fast.model_copy(update={"dispatch": fast.dispatch.model_copy(
        update={"batch_size": 3, "concurrency": 1})})
    stats = Dispatcher(session_factory=factory, settings=one_at_a_time,
                       channels={"fake": fake}, should_stop=stop.is_set).run()
    assert (stats.batches, stats.claimed, stats.delivered, stats.skipped) == (1, 3, 1, 2)
    with factory() as s:
        rows = {r.idempotency_key: r for r in s.scalars(select(Outbox))}
    assert fake.sent == [keys[0]] and rows[keys[0]].status == "delivered"
    rest = [rows[k] for k in keys[1:]]
    assert all(r.status == "pending" and r.attempts == 0 and r.claim_token is None
               for r in rest)
    assert all(r.next_attempt_at is not None and r.next_attempt_at <= utcnow() for r in rest)
    # whoever leads next sends them, each once
    after = Dispatcher(session_factory=factory, settings=fast, channels={"fake": fake}).run()
    assert after.delivered == 8 and Counter(fake.sent) == Counter(keys)


def test_expired_claims_are_taken_over(factory: sessionmaker[Session], fast: Settings) -> None:
    add_rows(factory, n=3, channel="fake", destination="x")
    dead_worker = claim(session_factory=factory, limit=3, claim_timeout=60)
    assert len(dead_worker) == 3
    assert claim(session_factory=factory, limit=3) == []  # still held
    later = utcnow() + dt.timedelta(seconds=61)
    taken = claim(session_factory=factory, limit=3, now=later)
    assert sorted(r.id for r in taken) == sorted(r.id for r in dead_worker)
    assert all(r.attempts == 0 for r in taken)  # claimed twice, never sent
    with factory() as s:
        assert set(s.scalars(select(Outbox.claims))) == {2}
    # the dead worker's late mark does not count: its token is stale
    from service.dispatch.outbox import mark_delivered

    with factory() as s:
        assert mark_delivered(session=s, row=dead_worker[0]) is False
        assert mark_delivered(session=s, row=taken[0]) is True


@pytest.fixture
def api(settings: Settings, engine: Engine, tmp_path: Path) -> Iterator[tuple[TestClient,
                                                                             dict[str, str]]]:
    app = create_app(settings)
    from service.db import make_sessionmaker

    with make_sessionmaker(engine)() as s:
        keys = {scope: create_key(session=s, name=scope, scopes=[scope])[1]
                for scope in ("read", "approve")}
    with TestClient(app) as c:
        yield c, keys


def test_dispatches_api_lists_dead_rows_and_retries_them(
        api: tuple[TestClient, dict[str, str]], factory: sessionmaker[Session],
        fast: Settings) -> None:
    client, keys = api
    add_rows(factory, n=12, channel="fake", destination="x", campaign_id="cA", max_attempts=1)
    add_rows(factory, n=3, channel="fake", destination="x", campaign_id="cB", max_attempts=1)
    Dispatcher(session_factory=factory, settings=fast,
               channels={"fake": Recorder(fail_all=True)}).run()
    read = {"X-API-Key": keys["read"]}
    page = client.get("/v1/dispatches", params={"campaign": "cA", "status": "dead",
                                                "limit": 5}, headers=read)
    assert page.status_code == 200
    body = page.json()
    assert len(body["items"]) == 5 and body["next_cursor"]
    seen = [i["id"] for i in body["items"]]
    while body["next_cursor"]:
        body = client.get("/v1/dispatches", params={"campaign": "cA", "status": "dead",
                                                    "limit": 5, "cursor": body["next_cursor"]},
                          headers=read).json()
        seen += [i["id"] for i in body["items"]]
    assert len(seen) == 12 == len(set(seen)) and seen == sorted(seen)
    item = client.get("/v1/dispatches", params={"campaign": "cB"}, headers=read).json()["items"][0]
    assert item["status"] == "dead" and "503" in item["last_error"]
    assert item["next_attempt_at"].endswith(("Z", "+00:00"))
    # retrying needs the approve scope
    r = client.post(f"/v1/dispatches/{item['id']}/retry", headers=read)
    assert r.status_code == 403 and r.headers["content-type"].startswith(PROBLEM_JSON)
    r = client.post(f"/v1/dispatches/{item['id']}/retry", headers={"X-API-Key": keys["approve"]})
    assert r.status_code == 200 and r.json()["status"] == "retrying"
    Dispatcher(session_factory=factory, settings=fast,
               channels={"fake": Recorder()}).run(statuses=("retrying",))
    again = client.get("/v1/dispatches", params={"campaign": "cB", "status": "delivered"},
                       headers=read).json()["items"]
    assert [i["id"] for i in again] == [item["id"]]
    r = client.post(f"/v1/dispatches/{item['id']}/retry", headers={"X-API-Key": keys["approve"]})
    assert r.status_code == 409 and r.headers["content-type"].startswith(PROBLEM_JSON)
    assert client.post("/v1/dispatches/999999/retry",
                       headers={"X-API-Key": keys["approve"]}).status_code == 404
    bad = client.get("/v1/dispatches", params={"cursor": "garbage!"}, headers=read)
    assert bad.status_code == 422


