"""Scheduler job callables: module level, no arguments (APScheduler pickles references).

They find settings, sessions and channels in the runtime the leader installs with
:func:`install`; each returns a small JSON-able summary that the job-runs table keeps.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from service.store.base import utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from service.channels.base import Channel
    from service.config import Settings
    from service.dispatch.dispatcher import DispatchHooks

__all__ = ["Runtime", "install", "uninstall", "current", "refit_job", "dispatch_job",
           "retry_job", "evaluation_job", "JOBS", "started_at"]

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    settings: Settings
    session_factory: sessionmaker[Session]
    channels: dict[str, Channel]
    hooks: DispatchHooks | None = None
    holder: str = ""
    started: dict[str, dt.datetime] = field(default_factory=dict)
    # set when this process stops leading: a running dispatch claims nothing more and starts
    # no new send, so the next leader does not send the same rows alongside it
    stepping_down: threading.Event = field(default_factory=threading.Event)


_lock = threading.Lock()
_runtime: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _runtime
    with _lock:
        _runtime = runtime


def uninstall() -> None:
    global _runtime
    with _lock:
        _runtime = None


def current() -> Runtime:
    rt = _runtime
    if rt is None:
        raise RuntimeError("the scheduler runtime is not installed (is this the leader?)")
    return rt


def started_at(job_id: str) -> dt.datetime | None:
    rt = _runtime
    return rt.started.get(job_id) if rt is not None else None


def _begin(job_id: str) -> Runtime:
    rt = current()
    rt.started[job_id] = utcnow()
    return rt


def refit_job() -> dict[str, Any]:
    """Refit every series, forecast, store peaks, then replan campaigns."""
    from service.forecasting import create_run, execute_run, recover_interrupted_runs

    rt = _begin("refit")
    recover_interrupted_runs(rt.session_factory)  # runs a dead process left "running"
    with rt.session_factory() as s:
        run = create_run(session=s, settings=rt.settings, requested_by="scheduler")
    done = execute_run(session_factory=rt.session_factory, run_id=run.id, settings=rt.settings)
    out: dict[str, Any] = {"run_id": done.id, "status": done.status, "series": done.total,
                           "failed": done.failed}
    from service.dispatch.campaign_link import replan_after_refit

    out["replan"] = replan_after_refit(session_factory=rt.session_factory,
                                       settings=rt.settings, run_id=done.id)
    return out


def _dispatch(statuses: tuple[str, ...], job_id: str) -> dict[str, Any]:
    from service.dispatch.dispatcher import Dispatcher

    rt = _begin(job_id)
    dispatcher = Dispatcher(session_factory=rt.session_factory, settings=rt.settings,
                            channels=rt.channels, hooks=rt.hooks, holder=rt.holder,
                            should_stop=rt.stepping_down.is_set)
    stats = dispatcher.run(statuses=statuses)
    return dict(stats.as_dict())


def dispatch_job() -> dict[str, Any]:
    """Schedule approved campaigns, then send due outbox rows (first attempts, and claims
    whose dispatcher died)."""
    rt = current()
    scheduled = 0
    if rt.settings.dispatch.schedule_approved:
        from service.dispatch.campaign_link import schedule_approved

        scheduled = schedule_approved(session_factory=rt.session_factory, settings=rt.settings)
    return {"scheduled_campaigns": scheduled, **_dispatch(("pending",), "dispatch")}


def retry_job() -> dict[str, Any]:
    """Send failed deliveries whose backoff has passed."""
    return _dispatch(("retrying",), "retry")


def evaluation_job() -> dict[str, Any]:
    """Recompute the materialised evaluation when its inputs changed (a cheap check first);
    the work runs in a child process (``FOREWARN_EVALUATION__WORKER``), never in a dispatch
    tick."""
    from service.evaluation.worker import needs_refresh, run_refresh

    rt = _begin("evaluation")
    with rt.session_factory() as s:
        if not needs_refresh(s, rt.settings):
            return {"stale": False}
    return {"stale": True, **run_refresh(rt.session_factory, rt.settings)}


JOBS = {
    "refit": "service.scheduler.jobs:refit_job",
    "dispatch": "service.scheduler.jobs:dispatch_job",
    "retry": "service.scheduler.jobs:retry_job",
    "evaluation": "service.scheduler.jobs:evaluation_job",
}
