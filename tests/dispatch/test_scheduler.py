"""The scheduler in this process: jobs run and are recorded, a refusing receiver is retried
until it accepts, a receiver that never accepts ends dead and visible in the API, a run missed
while no scheduler was up is recorded and caught up, and the jobs/runs endpoints."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.channels.base import Channel, Message, Receipt
from service.config import Settings
from service.dispatch.tables import Outbox
from service.scheduler.runner import SchedulerService
from service.scheduler.tables import JobRun
from service.store.keys import create_key
from tests.dispatch.conftest import add_rows, fast_settings, wait_for


def _statuses(factory: sessionmaker[Session]) -> Counter[str]:
    with factory() as s:
        return Counter(s.scalars(select(Outbox.status)))


def _runs(factory: sessionmaker[Session], job: str | None = None) -> list[JobRun]:
    with factory() as s:
        stmt = select(JobRun).order_by(JobRun.id)
        if job:
            stmt = stmt.where(JobRun.job_id == job)
        return list(s.scalars(stmt))


def test_refusing_receiver_is_retried_and_a_hopeless_one_ends_dead(
        fast: Settings, engine: Engine, factory: sessionmaker[Session],
        receiver_factory: Any) -> None:
    rec = receiver_factory(fail_first=2)  # every id is refused twice, then accepted
    keys = add_rows(factory, n=20, channel="webhook", destination=rec.url)
    hopeless = receiver_factory(always_fail=set())
    hopeless.config.fail_rate = 1.0
    dead_key = add_rows(factory, n=1, channel="webhook", destination=hopeless.url,
                        campaign_id="c-dead", max_attempts=3)[0]
    svc = SchedulerService(fast, engine=engine)
    svc.start()
    try:
        assert wait_for(lambda: _statuses(factory) == Counter(delivered=20, dead=1), 30)
    finally:
        svc.stop()
    assert not svc.is_leader
    acked = Counter(rec.acked())
    assert set(acked) == set(keys) and all(n == 1 for n in acked.values())
    tries = Counter(e.key for e in rec.entries)
    assert all(tries[k] == 3 for k in keys)  # two refusals + the success
    assert all(e.verified for e in rec.entries)
    assert [e.key for e in hopeless.entries] == [dead_key] * 3
    outcomes = {r.outcome for r in _runs(factory)}
    assert "executed" in outcomes and "error" not in outcomes
    assert {r.job_id for r in _runs(factory)} >= {"dispatch", "retry"}

    app = create_app(fast)
    with factory() as s:
        key = create_key(session=s, name="r", scopes=["read"])[1]
    with TestClient(app) as client:
        h = {"X-API-Key": key}
        dead = client.get("/v1/dispatches", params={"status": "dead"}, headers=h).json()
        assert [d["idempotency_key"] for d in dead["items"]] == [dead_key]
        assert dead["items"][0]["attempts"] == 3
        jobs = client.get("/v1/scheduler/jobs", headers=h).json()
        assert {j["id"] for j in jobs["jobs"]} == {"dispatch", "retry", "evaluation"}
        assert all(j["coalesce"] and j["max_instances"] == 1 for j in jobs["jobs"])
        assert jobs["leader"]["holder"] is None  # released on stop
        # pages of 2 walk every recorded dispatch run, newest first, whatever the number of
        # ticks was (a cursor exactly while more remain)
        recorded = [r.id for r in reversed(_runs(factory, "dispatch"))]
        assert len(recorded) >= 1
        seen: list[int] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"job": "dispatch", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/v1/scheduler/runs", params=params, headers=h).json()
            seen += [i["id"] for i in page["items"]]
            cursor = page["next_cursor"]
            assert len(page["items"]) == (2 if cursor else len(page["items"]))
            assert (cursor is not None) == (len(seen) < len(recorded))
            if cursor is None:
                break
        assert seen == recorded


def test_a_leader_that_loses_its_lease_mid_send_finishes_that_send_and_gives_the_rest_back(
        fast: Settings, engine: Engine, factory: sessionmaker[Session],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Leadership lost while a dispatch tick sends (on SQLite, an import holding the write
    lock past the lease can do it): the send under way completes with its channel still
    open, the rest of the batch goes back unsent and due at once, and the channels built
    for the leader are closed only after the tick ended."""
    entered, release, finished, closed = (threading.Event() for _ in range(4))
    closed_after_the_send: list[bool] = []

    class HeldChannel(Channel):
        name = "held"

        @classmethod
        def from_settings(cls, settings: Settings) -> HeldChannel:
            return cls()

        def send(self, message: Message) -> Receipt:
            entered.set()
            assert release.wait(60)
            finished.set()
            return Receipt(status=200)

        def close(self) -> None:
            closed_after_the_send.append(finished.is_set())
            closed.set()

    monkeypatch.setattr("service.channels.registry.load_channels",
                        lambda settings: {"held": HeldChannel()})
    keys = add_rows(factory, n=6, channel="held", destination="x")
    one_at_a_time = fast.model_copy(update={"dispatch": fast.dispatch.model_copy(
        update={"concurrency": 1})})
    svc = SchedulerService(one_at_a_time, engine=engine)  # builds its own channels
    svc.start()
    try:
        assert entered.wait(30)  # the first row is being sent
        monkeypatch.setattr(svc.leadership, "renew", lambda: False)  # the lease is lost
        monkeypatch.setattr(svc.leadership, "try_acquire", lambda: False)
        assert wait_for(lambda: not svc.is_leader, 30)
        assert not closed.is_set()  # not under the send
        release.set()
        assert closed.wait(30)
    finally:
        release.set()
        svc.stop()
    assert closed_after_the_send == [True]
    with factory() as s:
        rows = {r.idempotency_key: r for r in s.scalars(select(Outbox))}
    assert rows[keys[0]].status == "delivered"
    assert all(rows[k].status == "pending" and rows[k].attempts == 0
               and rows[k].claim_token is None for k in keys[1:])


def test_missed_run_is_recorded_and_caught_up(settings: Settings, engine: Engine,
                                              factory: sessionmaker[Session],
                                              tmp_path: Path) -> None:
    s = fast_settings(settings, tmp_path, dispatch_interval_seconds=1.0,
                      retry_interval_seconds=30.0, dispatch_misfire_grace_seconds=1)
    first = SchedulerService(s, engine=engine)
    first.start()
    try:
        assert wait_for(lambda: any(r.outcome == "executed"
                                    for r in _runs(factory, "dispatch")), 15)
    finally:
        first.stop()
    time.sleep(2.5)  # down across at least one fire time, beyond the 1 s grace
    second = SchedulerService(s, engine=engine)
    second.start()
    try:
        assert wait_for(lambda: any(r.outcome == "missed" for r in _runs(factory, "dispatch")),
                        10)
        missed = next(r for r in _runs(factory, "dispatch") if r.outcome == "missed")
        assert "no scheduler was running" in (missed.error or "")
        assert "catch_up" in (missed.error or "")
        assert missed.scheduled_at is not None
        # policy catch_up: the job runs right after the take-over
        assert wait_for(lambda: any(r.outcome == "executed" and r.id > missed.id
                                    for r in _runs(factory, "dispatch")), 10)
    finally:
        second.stop()


def test_skip_policy_records_without_running_at_once(settings: Settings, engine: Engine,
                                                     factory: sessionmaker[Session],
                                                     tmp_path: Path) -> None:
    s = fast_settings(settings, tmp_path, dispatch_interval_seconds=30.0,
                      retry_interval_seconds=30.0, dispatch_misfire_grace_seconds=1,
                      missed_policy="skip")
    svc = SchedulerService(s, engine=engine)
    svc.start()
    try:
        assert wait_for(svc.became_leader.is_set, 10)
    finally:
        svc.stop()
    # pretend the stored fire time passed an hour ago while nothing ran
    from sqlalchemy import update

    from service.scheduler.tables import ApschedulerJob

    with factory() as sess:
        sess.execute(update(ApschedulerJob).values(next_run_time=time.time() - 3600))
        sess.commit()
    svc2 = SchedulerService(s, engine=engine)
    svc2.start()
    try:
        # dispatch, retry and evaluation
        assert wait_for(lambda: len([r for r in _runs(factory) if r.outcome == "missed"]) == 3,
                        10)
        time.sleep(0.5)
        missed = [r for r in _runs(factory) if r.outcome == "missed"]
        assert all("waiting for the next fire time" in (r.error or "") for r in missed)
        assert {r.job_id: "121 fire time(s)" in (r.error or "") for r in missed} == {
            "dispatch": True, "retry": True, "evaluation": False}  # every 60 s: 61
        assert not [r for r in _runs(factory) if r.outcome == "executed"]
    finally:
        svc2.stop()


def test_recorded_runs_start_at_or_after_their_fire_time(settings: Settings, engine: Engine,
                                                        factory: sessionmaker[Session],
                                                        tmp_path: Path) -> None:
    """A run's ``started_at`` is its own start, never an earlier run's: the submission event
    races the worker thread, so the start is taken from the job when it is done."""
    s = fast_settings(settings, tmp_path, dispatch_interval_seconds=1.0,
                      retry_interval_seconds=1.0)
    svc = SchedulerService(s, engine=engine)
    svc.start()
    try:
        assert wait_for(lambda: len([r for r in _runs(factory) if r.outcome == "executed"])
                        >= 8, 30)
    finally:
        svc.stop()
    done = [r for r in _runs(factory) if r.outcome == "executed" and r.job_id in
            ("dispatch", "retry")]
    assert len(done) >= 8
    for r in done:
        assert r.scheduled_at is not None and r.started_at is not None
        assert r.finished_at is not None
        assert r.scheduled_at <= r.started_at <= r.finished_at, (r.job_id, r.scheduled_at,
                                                                  r.started_at, r.finished_at)
