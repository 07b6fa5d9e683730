"""Dispatch throughput: 10,000 recipients to a local webhook receiver (another process).

Reports deliveries per second and duplicates, once with a healthy receiver and once with one
that fails 20 % of requests at random (failed rows are retried with backoff until delivered).
Run: ``.venv/bin/python bench/dispatch.py [--n 10000] [--db sqlite|postgresql]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, func, select, text, update

from service.channels.webhook import WebhookChannel
from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.dispatch.dispatcher import Dispatcher
from service.dispatch.outbox import enqueue
from service.dispatch.tables import Outbox
from service.migrate import upgrade
from service.store.base import utcnow

ROOT = Path(__file__).resolve().parents[1]
SECRET = "whsec_" + "Zm9yZXdhcm4tYmVuY2gtc2VjcmV0LTAxMjM0NTY3"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _receiver(fail_rate: float) -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen([sys.executable, str(ROOT / "tests/dispatch/receiver.py"),
                          "--secret", SECRET, "--fail-rate", str(fail_rate)],
                         stdout=subprocess.PIPE, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert p.stdout is not None
    port = int(p.stdout.readline())
    return p, f"http://127.0.0.1:{port}"


def _run(url: str, n: int, fail_rate: float, concurrency: int) -> dict[str, object]:
    settings = Settings(_env_file=None, database_url=url)
    settings = settings.model_copy(update={
        "dispatch": settings.dispatch.model_copy(update={
            "batch_size": 500, "concurrency": concurrency, "max_attempts": 20,
            "backoff_base_seconds": 0.05, "backoff_max_seconds": 0.5, "backoff_jitter": 0.5,
            "tick_budget_seconds": 600.0})})
    engine = make_engine(url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    proc, base = _receiver(fail_rate)
    try:
        now = utcnow()
        rows = [{"campaign_id": "bench", "channel": "webhook", "recipient_id": f"r{i}",
                 "destination": base + "/hook", "next_attempt_at": now, "max_attempts": 20,
                 "payload": {"subject": "执法事项提示", "body": "依法经营，提前防范。" * 10}}
                for i in range(n)]
        with factory() as s:
            t = time.perf_counter()
            enqueue(session=s, rows=rows)
            s.commit()
            enqueue_s = time.perf_counter() - t
        channel = WebhookChannel(secrets=[SECRET], allow_loopback=True,
                                 max_connections=concurrency)
        d = Dispatcher(session_factory=factory, settings=settings, channels={"webhook": channel})
        t0 = time.perf_counter()
        first = d.run(statuses=("pending",))
        retries = 0
        while True:
            with factory() as s:
                left = s.scalar(select(func.count()).select_from(Outbox).where(
                    Outbox.status.in_(("pending", "retrying", "sending"))))
            if not left:
                break
            with factory() as s:  # do not sleep through the backoff in a benchmark
                s.execute(update(Outbox).where(Outbox.status == "retrying")
                          .values(next_attempt_at=utcnow() - dt.timedelta(seconds=1)))
                s.commit()
            retries += d.run(statuses=("retrying",)).claimed
        elapsed = time.perf_counter() - t0
        channel.close()
        with urllib.request.urlopen(base + "/_log") as r:
            log = json.loads(r.read())
        with factory() as s:
            statuses = Counter(s.scalars(select(Outbox.status)))
        acked = Counter(e["key"] for e in log if 200 <= e["status"] < 300)
        return {
            "db": engine.dialect.name, "recipients": n, "receiver_fail_rate": fail_rate,
            "concurrency": concurrency, "enqueue_s": round(enqueue_s, 2),
            "seconds": round(elapsed, 2), "deliveries_per_s": round(n / elapsed, 1),
            "requests": len(log), "first_pass_delivered": first.delivered,
            "retried_rows": retries, "delivered_rows": statuses.get("delivered", 0),
            "dead_rows": statuses.get("dead", 0), "unique_acked": len(acked),
            "duplicate_acks": sum(v - 1 for v in acked.values()),
            "all_verified": all(e["verified"] for e in log),
        }
    finally:
        proc.kill()
        proc.wait()
        engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    from service.logging import configure_logging

    configure_logging("WARNING", json=False)
    for fail_rate in (0.0, 0.2):
        if args.db == "sqlite":
            tmp = tempfile.mkdtemp(prefix="fw-bench-")
            url = f"sqlite:///{tmp}/bench.db"
            print(json.dumps(_run(url, args.n, fail_rate, args.concurrency),
                             ensure_ascii=False))
        else:
            name = f"fw_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
                print(json.dumps(_run(url, args.n, fail_rate, args.concurrency),
                                 ensure_ascii=False))
            finally:
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()


if __name__ == "__main__":
    main()
