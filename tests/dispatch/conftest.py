"""Fixtures for dispatch, channels and scheduler tests: receiver, settings, outbox rows."""

from __future__ import annotations

import base64
import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import make_sessionmaker
from service.dispatch.outbox import enqueue
from service.store.tables import utcnow
from tests.dispatch.receiver import Receiver, ReceiverConfig

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + base64.b64encode(b"forewarn-test-secret-0123456789ab").decode()
SECRET_2 = "whsec_" + base64.b64encode(b"forewarn-rotated-secret-abcdefgh").decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fast_settings(base: Settings, tmp_path: Path, **scheduler: Any) -> Settings:
    """``base`` with short intervals, loopback webhooks and the test secret. The read and
    claim timeouts stay long: a reply slowed by a busy machine must not turn into a retry
    (and a second acknowledgement) in tests that count deliveries exactly."""
    sched = base.scheduler.model_copy(update={
        "refit_enabled": False, "dispatch_interval_seconds": 0.5,
        "retry_interval_seconds": 0.5, "dispatch_misfire_grace_seconds": 5,
        "lease_seconds": 2.0, "heartbeat_seconds": 0.5, "standby_poll_seconds": 0.3,
        **scheduler})
    disp = base.dispatch.model_copy(update={
        "batch_size": 50, "concurrency": 8, "max_attempts": 4, "backoff_base_seconds": 0.1,
        "backoff_max_seconds": 0.5, "claim_timeout_seconds": 300.0, "tick_budget_seconds": 5.0})
    webhook = base.channels.webhook.model_copy(update={
        "secrets": [SecretStr(SECRET)], "allow_loopback": True, "read_timeout_seconds": 30.0})
    channels = base.channels.model_copy(update={"webhook": webhook,
                                                "file_dir": tmp_path / "outbox"})
    return base.model_copy(update={"scheduler": sched, "dispatch": disp, "channels": channels})


def env_for(settings: Settings) -> dict[str, str]:
    """Environment for a ``python -m service.cli scheduler`` child with ``settings``' values."""
    s, d = settings.scheduler, settings.dispatch
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
    env.update({
        "PYTHONPATH": str(ROOT),
        "FOREWARN_DATABASE_URL": settings.database_url,
        "FOREWARN_LOG_JSON": "false",
        "FOREWARN_LOG_LEVEL": "WARNING",
        "FOREWARN_SCHEDULER__REFIT_ENABLED": "false",
        "FOREWARN_SCHEDULER__DISPATCH_INTERVAL_SECONDS": str(s.dispatch_interval_seconds),
        "FOREWARN_SCHEDULER__RETRY_INTERVAL_SECONDS": str(s.retry_interval_seconds),
        "FOREWARN_SCHEDULER__DISPATCH_MISFIRE_GRACE_SECONDS": str(s.dispatch_misfire_grace_seconds),
        "FOREWARN_SCHEDULER__LEASE_SECONDS": str(s.lease_seconds),
        "FOREWARN_SCHEDULER__HEARTBEAT_SECONDS": str(s.heartbeat_seconds),
        "FOREWARN_SCHEDULER__STANDBY_POLL_SECONDS": str(s.standby_poll_seconds),
        "FOREWARN_DISPATCH__BATCH_SIZE": str(d.batch_size),
        "FOREWARN_DISPATCH__CONCURRENCY": str(d.concurrency),
        "FOREWARN_DISPATCH__MAX_ATTEMPTS": str(d.max_attempts),
        "FOREWARN_DISPATCH__BACKOFF_BASE_SECONDS": str(d.backoff_base_seconds),
        "FOREWARN_DISPATCH__BACKOFF_MAX_SECONDS": str(d.backoff_max_seconds),
        "FOREWARN_DISPATCH__CLAIM_TIMEOUT_SECONDS": str(d.claim_timeout_seconds),
        "FOREWARN_DISPATCH__TICK_BUDGET_SECONDS": str(d.tick_budget_seconds),
        "FOREWARN_CHANNELS__WEBHOOK__SECRETS": f'["{SECRET}"]',
        "FOREWARN_CHANNELS__WEBHOOK__ALLOW_LOOPBACK": "true",
        "FOREWARN_CHANNELS__WEBHOOK__READ_TIMEOUT_SECONDS":
            str(settings.channels.webhook.read_timeout_seconds),
        "FOREWARN_CHANNELS__FILE_DIR": str(settings.channels.file_dir),
    })
    return env


class Procs:
    """Scheduler child processes that are always killed at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, settings: Settings, name: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp_path / f"{name}.log", "wb")  # noqa: SIM115
        p = subprocess.Popen([sys.executable, "-m", "service.cli", "scheduler"],
                             cwd=self.tmp_path, env=env_for(settings), stdout=log, stderr=log)
        log.close()
        self.procs.append(p)
        return p

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.kill_all()


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def make(**cfg: Any) -> Receiver:
        cfg.setdefault("secret", SECRET)
        r = Receiver(ReceiverConfig(**cfg)).start()
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()


@pytest.fixture
def fast(settings: Settings, tmp_path: Path) -> Settings:
    return fast_settings(settings, tmp_path)


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


def add_rows(factory: sessionmaker[Session], *, n: int, channel: str, destination: str,
             campaign_id: str = "c0", due: dt.datetime | None = None, max_attempts: int = 4,
             start: int = 0) -> list[str]:
    """Enqueue ``n`` rows for recipients ``r<start>…``; returns their idempotency keys."""
    from service.dispatch.outbox import idempotency_key

    rows = [{"campaign_id": campaign_id, "channel": channel, "recipient_id": f"r{i}",
             "destination": destination, "max_attempts": max_attempts,
             "next_attempt_at": due or utcnow(),
             "payload": {"subject": "执法事项提示：烟花爆竹", "body": f"正文 {i} — 依法经营",
                         "data": {"i": i}}}
            for i in range(start, start + n)]
    with factory() as s:
        enqueue(session=s, rows=rows)
        s.commit()
    return [idempotency_key(campaign_id, channel, f"r{i}") for i in range(start, start + n)]


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
