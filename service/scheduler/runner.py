"""The scheduler service: stand by, lead, run APScheduler, record every run, miss and error.

One :class:`SchedulerService` per process (``forewarn scheduler`` or embedded in ``serve``).
A background thread tries to become the leader (see :mod:`service.scheduler.leadership`); the
leader starts a ``BackgroundScheduler`` on ``SQLAlchemyJobStore(engine=<app engine>)`` and
stops it at once if the heartbeat fails. Listeners on ``EVENT_JOB_*`` write
``scheduler_job_runs``.

Misfire policy, per job:

* ``misfire_grace_time``: the refit may start up to ``refit_misfire_grace_seconds`` late (a busy
  or restarting host still runs it); dispatch ticks ``dispatch_misfire_grace_seconds``.
* ``coalesce=True``: a backlog of fire times runs once, not once per missed time.
* ``max_instances=1``: a job never overlaps itself; a fire time skipped because the previous
  run is still going is recorded as ``missed``.
* At take-over the leader compares each stored next fire time with now: a fire time older than
  the grace (no scheduler was up) is recorded as ``missed`` and, with ``missed_policy =
  "catch_up"``, the job runs once right away; with ``"skip"`` it waits for its next fire time.
  A run left ``running`` by a dead leader is closed as ``error``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import traceback
from collections import deque
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, select, update

from service.db import make_engine, make_sessionmaker
from service.dispatch.outbox import reclaim_orphans
from service.scheduler import jobs
from service.scheduler.leadership import Leadership, make_leadership, new_holder_id
from service.scheduler.tables import ApschedulerJob, JobRun
from service.store.base import as_utc, utcnow

if TYPE_CHECKING:
    from service.channels.base import Channel
    from service.config import Settings

__all__ = ["SchedulerService", "JobSpec", "job_specs", "JOBSTORE_TABLE"]

log = structlog.get_logger(__name__)
JOBSTORE_TABLE = "apscheduler_jobs"


class JobSpec:
    """One job's definition from settings."""

    def __init__(self, job_id: str, func: str, trigger: BaseTrigger, grace: int,
                 description: str) -> None:
        self.id, self.func, self.trigger = job_id, func, trigger
        self.grace, self.description = grace, description

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "func": self.func, "trigger": str(self.trigger),
                "misfire_grace_seconds": self.grace, "coalesce": True, "max_instances": 1,
                "description": self.description}


def job_specs(settings: Settings) -> list[JobSpec]:
    """The jobs this deployment runs, from ``settings.scheduler``."""
    sc = settings.scheduler
    tz = ZoneInfo(sc.timezone or settings.timezone)
    specs = []
    if sc.refit_enabled:
        specs.append(JobSpec("refit", jobs.JOBS["refit"],
                             CronTrigger.from_crontab(sc.refit_cron, timezone=tz),
                             sc.refit_misfire_grace_seconds,
                             "refit every series, forecast, store peaks and replan campaigns"))
    specs.append(JobSpec("dispatch", jobs.JOBS["dispatch"],
                         IntervalTrigger(seconds=sc.dispatch_interval_seconds, timezone=tz),
                         sc.dispatch_misfire_grace_seconds, "send due outbox rows"))
    specs.append(JobSpec("retry", jobs.JOBS["retry"],
                         IntervalTrigger(seconds=sc.retry_interval_seconds, timezone=tz),
                         sc.dispatch_misfire_grace_seconds,
                         "retry failed deliveries whose backoff has passed"))
    specs.append(JobSpec("evaluation", jobs.JOBS["evaluation"],
                         IntervalTrigger(seconds=settings.evaluation.interval_seconds,
                                         timezone=tz),
                         sc.dispatch_misfire_grace_seconds,
                         "recompute scorecards and campaign effects whose inputs changed"))
    return specs


def _as_utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else as_utc(value).astimezone(dt.UTC)


class SchedulerService:
    """Leader election plus APScheduler; ``start`` returns at once, ``stop`` cleans up."""

    def __init__(self, settings: Settings, *, engine: Engine | None = None,
                 channels: dict[str, Channel] | None = None, holder: str | None = None
                 ) -> None:
        self.settings = settings
        self._own_engine = engine is None
        self.engine = engine or make_engine(settings.database_url)
        self.factory = make_sessionmaker(self.engine)
        self.holder = holder or new_holder_id()
        self._channels = channels
        self.leadership: Leadership = make_leadership(
            self.engine, holder=self.holder, lease_seconds=settings.scheduler.lease_seconds,
            advisory_lock_key=settings.scheduler.advisory_lock_key)
        self.scheduler: BackgroundScheduler | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], int] = {}
        self._closed: deque[tuple[str, str]] = deque(maxlen=256)
        self.became_leader = threading.Event()
        self._active_channels: dict[str, Channel] = {}
        self._runtime: jobs.Runtime | None = None
        self._executor: ThreadPoolExecutor | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self.scheduler is not None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="scheduler-leadership",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._own_engine:
            self.engine.dispose()

    def _loop(self) -> None:
        sc = self.settings.scheduler
        try:
            while not self._stop.is_set():
                if self.scheduler is None:
                    try:
                        if self.leadership.try_acquire():
                            self._lead()
                            continue
                    except Exception as exc:
                        log.error("scheduler_acquire_failed", error=f"{type(exc).__name__}: {exc}")
                    self._stop.wait(sc.standby_poll_seconds)
                else:
                    self._stop.wait(sc.heartbeat_seconds)
                    if self._stop.is_set():
                        break
                    if not self.leadership.renew():
                        log.error("scheduler_leadership_lost", holder=self.holder)
                        self._step_down(wait=False)
        finally:
            if self.scheduler is not None:
                self._step_down(wait=True)
            self.leadership.release()

    # -- leading ---------------------------------------------------------------------------
    def _lead(self) -> None:
        from service.channels.registry import load_channels
        from service.dispatch.campaign_link import CampaignHooks

        sc = self.settings.scheduler
        log.info("scheduler_leading", holder=self.holder)
        channels = self._channels if self._channels is not None \
            else load_channels(self.settings)
        self._active_channels = channels
        self._runtime = jobs.Runtime(settings=self.settings, session_factory=self.factory,
                                     channels=channels, hooks=CampaignHooks(),
                                     holder=self.holder)
        jobs.install(self._runtime)
        self._close_orphaned_runs()
        # rows a previous leader held when it died: back at once, not after claim_timeout
        reclaimed = reclaim_orphans(session_factory=self.factory, holder=self.holder,
                                    before=utcnow())
        if reclaimed:
            log.warning("dispatch_reclaimed", rows=reclaimed, holder=self.holder)
        tz = ZoneInfo(sc.timezone or self.settings.timezone)
        self._executor = ThreadPoolExecutor(max_workers=max(2, sc.threads))
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.engine,
                                                     tablename=JOBSTORE_TABLE)},
            executors={"default": self._executor},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": sc.dispatch_misfire_grace_seconds},
            timezone=tz)
        scheduler.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)
        scheduler.add_listener(self._on_done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        scheduler.add_listener(self._on_max_instances, EVENT_JOB_MAX_INSTANCES)
        specs = job_specs(self.settings)
        stored = self._stored_next_run_times()
        now = utcnow()
        for spec in specs:
            first = self._first_fire_time(spec, stored.get(spec.id), now)
            kwargs: dict[str, Any] = {} if first is None else {"next_run_time": first}
            scheduler.add_job(spec.func, trigger=spec.trigger, id=spec.id, name=spec.id,
                              replace_existing=True, misfire_grace_time=spec.grace,
                              coalesce=True, max_instances=1, **kwargs)
        wanted = {s.id for s in specs}
        for stale in set(stored) - wanted:
            if "." not in stale:  # a job turned off in settings
                self._remove_stored(stale)
        scheduler.start()
        self.scheduler = scheduler
        self.became_leader.set()

    def _step_down(self, *, wait: bool) -> None:
        """Stop leading. A dispatch that is running claims nothing more and starts no new
        send (its unsent rows go back, due at once for the next leader). With ``wait=False``
        (leadership lost: back to contending at once) the jobs still running finish on their
        own and the channels built here are closed after them, not under their sends."""
        scheduler, self.scheduler = self.scheduler, None
        runtime, self._runtime = self._runtime, None
        executor, self._executor = self._executor, None
        if runtime is not None:
            runtime.stepping_down.set()
        if scheduler is not None:
            try:
                scheduler.shutdown(wait=wait)
            except Exception as exc:  # already stopped
                log.warning("scheduler_shutdown_failed", error=str(exc))
        jobs.uninstall()
        built = list(self._active_channels.values()) if self._channels is None else []
        self._active_channels = {}
        if wait or executor is None:
            _close_after(None, built)
        else:
            threading.Thread(target=_close_after, args=(executor, built), daemon=True,
                             name="scheduler-step-down").start()
        self.became_leader.clear()
        log.info("scheduler_standby", holder=self.holder)

    def _stored_next_run_times(self) -> dict[str, dt.datetime | None]:
        with self.factory() as s:
            rows = s.execute(select(ApschedulerJob.id, ApschedulerJob.next_run_time)).all()
        return {r.id: (dt.datetime.fromtimestamp(r.next_run_time, dt.UTC)
                       if r.next_run_time is not None else None) for r in rows}

    def _remove_stored(self, job_id: str) -> None:
        from sqlalchemy import delete

        with self.factory() as s:
            s.execute(delete(ApschedulerJob).where(ApschedulerJob.id == job_id))
            s.commit()

    def _first_fire_time(self, spec: JobSpec, stored: dt.datetime | None,
                         now: dt.datetime) -> dt.datetime | None:
        """Apply the misfire policy to a fire time that passed while no scheduler was up."""
        if stored is None or stored > now:
            return None  # fresh from the trigger (also picks up a changed schedule)
        late = (now - stored).total_seconds()
        if late <= spec.grace:
            return stored  # APScheduler runs it, late but within its grace
        missed = self._count_fire_times(spec, stored, now)
        policy = self.settings.scheduler.missed_policy
        self._record(JobRun(
            job_id=spec.id, scheduled_at=stored, outcome="missed", holder=self.holder,
            finished_at=now,
            error=(f"no scheduler was running at the fire time; {missed} fire time(s) missed "
                   f"up to the take-over at {now.isoformat(timespec='seconds')}; policy "
                   f"{policy}" + (": running once now" if policy == "catch_up" else
                                  ": waiting for the next fire time"))))
        log.warning("scheduler_run_missed", job_id=spec.id, scheduled_at=stored.isoformat(),
                    missed=missed, policy=policy)
        return now if policy == "catch_up" else None

    @staticmethod
    def _count_fire_times(spec: JobSpec, since: dt.datetime, now: dt.datetime) -> int:
        n, t = 0, since
        while t is not None and t <= now and n < 10_000:
            n += 1
            t = spec.trigger.get_next_fire_time(t, t + dt.timedelta(microseconds=1))
        return n

    def _close_orphaned_runs(self) -> None:
        """Runs a dead leader left ``running`` are closed as errors."""
        with self.factory() as s:
            s.execute(update(JobRun).where(JobRun.outcome == "running",
                                           JobRun.holder != self.holder)
                      .values(outcome="error", finished_at=utcnow(),
                              error="the scheduler process stopped during this run"))
            s.commit()

    # -- listeners (scheduler and executor threads) ------------------------------------------
    def _record(self, run: JobRun) -> int:
        with self.factory() as s:
            s.add(run)
            s.commit()
            return run.id

    @staticmethod
    def _key(job_id: str, when: dt.datetime | None) -> tuple[str, str]:
        return job_id, (_as_utc(when) or dt.datetime.min).isoformat()

    def _on_submitted(self, event: JobEvent) -> None:
        assert isinstance(event, JobSubmissionEvent)
        when = event.scheduled_run_times[-1] if event.scheduled_run_times else None
        key = self._key(event.job_id, when)
        with self._lock:
            if key in self._closed:
                return
            # the job's own start is not known yet (the submission event races the worker
            # thread): record the submission time now, the job's start when it is done
            self._pending[key] = self._record(JobRun(
                job_id=event.job_id, scheduled_at=_as_utc(when), outcome="running",
                started_at=utcnow(), holder=self.holder))

    def _on_done(self, event: JobEvent) -> None:
        assert isinstance(event, JobExecutionEvent)
        key = self._key(event.job_id, event.scheduled_run_time)
        outcome = "error" if event.exception is not None else "executed"
        error = None
        if event.exception is not None:
            error = f"{type(event.exception).__name__}: {event.exception}"
            if event.traceback:
                error += "\n" + "".join(traceback.format_list(
                    traceback.extract_tb(event.exception.__traceback__)[-5:]))
        result = None
        if event.retval is not None:
            try:
                result = json.dumps(event.retval, ensure_ascii=False, default=str)[:4000]
            except (TypeError, ValueError):
                result = repr(event.retval)[:4000]
        values: dict[str, Any] = {"outcome": outcome, "finished_at": utcnow(), "error": error,
                                  "result": result}
        own = _own_start(event.job_id, _as_utc(event.scheduled_run_time))
        if own is not None:
            values["started_at"] = own
        with self._lock:
            row_id = self._pending.pop(key, None)
            if row_id is not None:
                with self.factory() as s:
                    s.execute(update(JobRun).where(JobRun.id == row_id).values(**values))
                    s.commit()
            else:
                self._closed.append(key)
                self._record(JobRun(job_id=event.job_id,
                                    scheduled_at=_as_utc(event.scheduled_run_time),
                                    holder=self.holder, **values))
        log.info("scheduler_job_done", job_id=event.job_id, outcome=outcome)

    def _on_missed(self, event: JobEvent) -> None:
        assert isinstance(event, JobExecutionEvent)
        self._record(JobRun(job_id=event.job_id, scheduled_at=_as_utc(event.scheduled_run_time),
                            outcome="missed", finished_at=utcnow(), holder=self.holder,
                            error="fire time passed by more than misfire_grace_time"))
        log.warning("scheduler_run_missed", job_id=event.job_id)
        if event.job_id == "refit" and self.settings.scheduler.missed_policy == "catch_up":
            scheduler = self.scheduler
            if scheduler is not None:
                scheduler.add_job(jobs.JOBS["refit"], id="refit.catchup", name="refit.catchup",
                                  replace_existing=True, misfire_grace_time=None,
                                  max_instances=1)

    def _on_max_instances(self, event: JobEvent) -> None:
        assert isinstance(event, JobSubmissionEvent)
        when = event.scheduled_run_times[-1] if event.scheduled_run_times else None
        self._record(JobRun(job_id=event.job_id, scheduled_at=_as_utc(when), outcome="missed",
                            finished_at=utcnow(), holder=self.holder,
                            error="the previous run was still going (max_instances=1)"))


def _close_after(executor: ThreadPoolExecutor | None, channels: list[Channel]) -> None:
    """Close ``channels`` once the jobs still running on ``executor`` have ended."""
    if executor is not None:
        executor.shutdown(wait=True)  # a second shutdown: waits for the running jobs
    for channel in channels:
        channel.close()


def _own_start(job_id: str, scheduled: dt.datetime | None) -> dt.datetime | None:
    """When this run of ``job_id`` began its work (the job records it first thing), or None
    when the recorded start belongs to an earlier run (before this run's fire time)."""
    own = jobs.started_at(job_id)
    if own is None or (scheduled is not None and own < scheduled):
        return None
    return own
