"""Dispatch ticks during a scorecard rebuild (issue 13): do the scheduler's dispatch ticks
start on time (within 2 s of their fire time) while the materialised evaluation is rebuilt?

Setup (SQLite): the database of ``bench/evaluation.py`` (the sample complaints, one stored
forecast run with weekly sample paths, its spike windows as peaks and ``--campaigns`` sent
campaigns), the evaluation computed once; then the real :class:`SchedulerService` in this
process (the one ``forewarn scheduler`` and ``serve --with-scheduler`` run), with the dispatch,
retry and evaluation jobs every ``--interval`` seconds (no refit, no channels: the ticks find
nothing to send, so what they measure is the scheduler's own timing).

Measured in the same run, for the dispatch job:

1. baseline: ``--ticks`` ticks with the evaluation current (the evaluation job's check only);
2. rebuild: the evaluation is marked stale (``mark_stale``) again as soon as each rebuild by
   the scheduler's ``evaluation`` job ends, until ``--ticks`` dispatch ticks were scheduled
   while a rebuild ran (``FOREWARN_EVALUATION__WORKER``: ``--worker process``, the default,
   rebuilds in a spawned child process; ``thread`` on the scheduler's executor thread).

Per tick: start lateness = the tick's start (when the job began dispatching: the time the
job runtime records, ``jobs.started_at``) minus its scheduled fire time; also the time the
scheduler thread handed it to the executor. Missed ticks (``EVENT_JOB_MISSED`` or
``max_instances``) count as late.

    python bench/dispatch_ticks.py [--campaigns 20] [--ticks 30] [--interval 1] [--worker process]

Target (issue 13): every dispatch tick starts within 2 s of its schedule during a rebuild.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apscheduler import events  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from bench.evaluation import _seed  # noqa: E402
from service.config import EvaluationSettings, SchedulerSettings, Settings  # noqa: E402
from service.db import make_engine, make_sessionmaker  # noqa: E402
from service.evaluation.worker import refresh  # noqa: E402
from service.logging import configure_logging  # noqa: E402
from service.scheduler import jobs  # noqa: E402
from service.scheduler.runner import SchedulerService  # noqa: E402
from service.scheduler.tables import JobRun  # noqa: E402
from service.store.freshness import mark_stale  # noqa: E402

SAMPLES = ROOT / "data" / "samples"
TARGET_S = 2.0
Phase = Literal["baseline", "rebuild", "idle"]


@dataclass
class Tick:
    scheduled: float  # epoch seconds
    submitted: float | None = None
    started: float | None = None
    missed: bool = False


@dataclass
class Probe:
    """Listeners on the leader's APScheduler: dispatch ticks and evaluation rebuilds."""

    ticks: dict[float, Tick] = field(default_factory=dict)
    rebuilds: list[tuple[float, float]] = field(default_factory=list)  # (start, end) epoch
    rebuild_done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _tick(self, when: dt.datetime | None) -> Tick:
        key = when.timestamp() if when is not None else time.time()
        return self.ticks.setdefault(key, Tick(scheduled=key))

    def submitted(self, event: events.JobEvent) -> None:
        assert isinstance(event, events.JobSubmissionEvent)
        if event.job_id == "dispatch":
            with self.lock:
                self._tick(event.scheduled_run_times[-1]).submitted = time.time()

    def executed(self, event: events.JobEvent) -> None:
        assert isinstance(event, events.JobExecutionEvent)
        now = time.time()
        began = jobs.started_at(event.job_id)
        with self.lock:
            if event.job_id == "dispatch":
                self._tick(event.scheduled_run_time).started = (
                    began.timestamp() if began is not None else None)
            elif event.job_id == "evaluation" and isinstance(event.retval, dict) \
                    and event.retval.get("stale") and began is not None:
                self.rebuilds.append((began.timestamp(), now))
                self.rebuild_done.set()

    def missed(self, event: events.JobEvent) -> None:
        if event.job_id != "dispatch":
            return
        when = (event.scheduled_run_time if isinstance(event, events.JobExecutionEvent)
                else event.scheduled_run_times[-1] if isinstance(event, events.JobSubmissionEvent)
                else None)
        with self.lock:
            self._tick(when).missed = True


def _stats(lateness: list[float]) -> str:
    if not lateness:
        return "no ticks"
    xs = sorted(lateness)
    p95 = xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]
    return (f"median {statistics.median(xs) * 1000:7.0f} ms, p95 {p95 * 1000:7.0f} ms, "
            f"max {xs[-1] * 1000:7.0f} ms (min {xs[0] * 1000:.0f})")


def _epoch(value: dt.datetime) -> float:
    """SQLite gives the stored UTC times back naive."""
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()


def _mark_stale(factory: sessionmaker[Session]) -> None:
    with factory() as s:
        mark_stale(s, "bench: dispatch ticks during a rebuild")
        s.commit()


def main() -> None:
    """Seed, start the scheduler, time the dispatch ticks while the evaluation is current and
    while it is rebuilt, print the figures.

    One function on purpose: a benchmark's protocol reads top to bottom (set-up, a baseline
    phase, a rebuild phase, the report), and the phases share the scheduler, the probe and
    the phase boundaries the report splits the ticks by."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--campaigns", type=int, default=20)
    ap.add_argument("--paths", type=int, default=100)
    ap.add_argument("--ticks", type=int, default=30, help="dispatch ticks per phase")
    ap.add_argument("--interval", type=float, default=1.0,
                    help="dispatch, retry and evaluation job interval, seconds")
    ap.add_argument("--worker", choices=("process", "thread"), default="process")
    ap.add_argument("--timeout", type=float, default=900.0, help="cap of the rebuild phase, s")
    args = ap.parse_args()
    configure_logging("WARNING", json=False)
    # the evaluation job's skipped checks (max_instances=1 while a rebuild runs) are expected
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="forewarn-bench-ticks-"))
    url = f"sqlite:///{tmp / 'ticks.db'}"
    t0 = time.perf_counter()
    _, ids, panel = _seed(url, args.campaigns, args.paths)
    seed_s = time.perf_counter() - t0
    settings = Settings(
        _env_file=None, database_url=url, log_level="WARNING",
        categories_file=SAMPLES / "categories.yaml", regions_file=SAMPLES / "regions.yaml",
        scheduler=SchedulerSettings(
            enabled=True, refit_enabled=False, dispatch_interval_seconds=args.interval,
            retry_interval_seconds=args.interval, standby_poll_seconds=0.2),
        evaluation=EvaluationSettings(worker=args.worker, interval_seconds=args.interval))
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    t1 = time.perf_counter()
    first = refresh(session_factory=factory, settings=settings)
    first_s = time.perf_counter() - t1

    probe = Probe()
    svc = SchedulerService(settings, engine=engine, channels={})
    svc.start()
    if not svc.became_leader.wait(60):
        sys.exit("the scheduler did not become the leader within 60 s")
    scheduler = svc.scheduler
    assert scheduler is not None
    scheduler.add_listener(probe.submitted, events.EVENT_JOB_SUBMITTED)
    scheduler.add_listener(probe.executed, events.EVENT_JOB_EXECUTED | events.EVENT_JOB_ERROR)
    scheduler.add_listener(probe.missed, events.EVENT_JOB_MISSED | events.EVENT_JOB_MAX_INSTANCES)
    load = [os.getloadavg()[0]]

    # 1. baseline: the evaluation is current
    base_from = time.time() + args.interval  # skip the first tick (start-up)
    while sum(1 for t in list(probe.ticks.values()) if t.scheduled >= base_from
              and (t.started is not None or t.missed)) < args.ticks:
        time.sleep(args.interval / 4)
    base_to = time.time()
    load.append(os.getloadavg()[0])

    # 2. rebuild: stale again as soon as each rebuild ends
    deadline = time.time() + args.timeout
    rebuild_from = time.time()

    def during(t: Tick) -> bool:
        return any(a <= t.scheduled <= b for a, b in probe.rebuilds)

    while time.time() < deadline:
        probe.rebuild_done.clear()
        _mark_stale(factory)
        while not probe.rebuild_done.wait(1.0) and time.time() < deadline:
            pass
        with probe.lock:
            n = sum(1 for t in probe.ticks.values() if t.scheduled >= rebuild_from
                    and during(t) and (t.started is not None or t.missed))
        if n >= args.ticks:
            break
    load.append(os.getloadavg()[0])
    svc.stop()

    with factory() as s:
        rows = s.execute(select(JobRun.scheduled_at, JobRun.started_at).where(
            JobRun.job_id == "dispatch", JobRun.scheduled_at.is_not(None),
            JobRun.started_at.is_not(None))).all()
    engine.dispose()
    shutil.rmtree(tmp, ignore_errors=True)

    ticks = sorted(probe.ticks.values(), key=lambda t: t.scheduled)
    phases: dict[Phase, list[Tick]] = {
        "baseline": [t for t in ticks if base_from <= t.scheduled <= base_to],
        "rebuild": [t for t in ticks if t.scheduled >= rebuild_from and during(t)],
    }
    rebuilds = [b - a for a, b in probe.rebuilds]
    print(f"{len(panel):,} series-weeks, {len(ids)} sent campaigns (seeded in {seed_s:.0f} s); "
          f"first refresh in this process {first_s:.1f} s for {first.get('computed')} answers")
    print(f"scheduler in process (SQLite), dispatch/retry/evaluation every {args.interval:g} s, "
          f"evaluation worker={args.worker}; load average (1 min) "
          + " / ".join(f"{x:.1f}" for x in load) + " (start / after baseline / end)")
    if rebuilds:
        print(f"rebuilds by the evaluation job: {len(rebuilds)}, "
              f"{statistics.median(rebuilds):.1f} s median (min {min(rebuilds):.1f}, "
              f"max {max(rebuilds):.1f})")
    med: dict[Phase, float] = {}
    worst: dict[Phase, float] = {}
    for name, ts in phases.items():
        started = [t.started - t.scheduled for t in ts if t.started is not None]
        handed = [t.submitted - t.scheduled for t in ts if t.submitted is not None]
        missed = sum(t.missed for t in ts)
        med[name] = statistics.median(started) if started else float("nan")
        worst[name] = max(started) if started else float("nan")
        print(f"{name}: {len(ts)} dispatch ticks ({missed} missed)")
        print(f"  start lateness   {_stats(started)}")
        print(f"  submission event {_stats(handed)}")
    ratio = med["rebuild"] / med["baseline"] if med["baseline"] > 0 else float("nan")
    print(f"rebuild/baseline median start lateness: {ratio:.2f}×")
    table = [(_epoch(a), _epoch(b)) for a, b in rows if a is not None and b is not None]
    recorded = [b - a for a, b in table]
    print(f"scheduler_job_runs (what GET /v1/scheduler/runs shows): {len(table)} dispatch "
          f"runs, started_at − scheduled_at {_stats(recorded)}; "
          f"{sum(x < 0 for x in recorded)} start before their fire time")
    late = [t for t in phases["rebuild"] if t.missed or t.started is None
            or t.started - t.scheduled > TARGET_S]
    ok = bool(phases["rebuild"]) and not late
    print(f"target: every dispatch tick during a rebuild starts within {TARGET_S:g} s → "
          f"{'PASS' if ok else 'FAIL'} ({len(late)} of {len(phases['rebuild'])} late or "
          f"missed; worst {worst['rebuild']:.2f} s)")


if __name__ == "__main__":
    main()
