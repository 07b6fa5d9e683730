"""Scheduler jobs (definition, next fire time, leader) and the job-runs log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from service.api import pagination
from service.api.deps import SessionDep, SettingsDep, require
from service.api.problems import PROBLEM_RESPONSES
from service.scheduler.leadership import leader_alive
from service.scheduler.runner import job_specs
from service.scheduler.tables import ApschedulerJob, JobRun, SchedulerLease
from service.store.base import as_utc
from service.store.pagination import keyset_page, where_given

__all__ = ["router"]

router = APIRouter(tags=["scheduler"], dependencies=[Depends(require("read"))],
                   responses=PROBLEM_RESPONSES)
Outcome = Literal["running", "executed", "error", "missed"]
_RUN_EXAMPLE: dict[str, Any] = {
    "id": 5310, "job_id": "dispatch", "scheduled_at": "2027-01-18T00:00:00Z",
    "started_at": "2027-01-18T00:00:00.214000Z", "finished_at": "2027-01-18T00:00:03.870000Z",
    "outcome": "executed", "error": None,
    "result": '{"scheduled_campaigns": 1, "claimed": 52, "delivered": 52, "retrying": 0, '
              '"dead": 0, "cancelled": 0, "lost": 0, "skipped": 0, "batches": 1, '
              '"seconds": 3.61}',
    "holder": "api-1:4242:a1b2c3",
}


class JobRunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True,
                              json_schema_extra={"examples": [_RUN_EXAMPLE]})
    id: int
    job_id: str
    scheduled_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    outcome: Outcome
    error: str | None
    result: str | None = Field(description="The job's JSON summary")
    holder: str | None = Field(description="The scheduler process that recorded the run")

    @field_validator("scheduled_at", "started_at", "finished_at")
    @classmethod
    def _utc(cls, v: dt.datetime | None) -> dt.datetime | None:
        return as_utc(v)


class JobPublic(BaseModel):
    id: str
    description: str
    trigger: str
    misfire_grace_seconds: int | None
    coalesce: bool
    max_instances: int
    next_run_time: dt.datetime | None = Field(description="From the job store; null when no "
                                              "scheduler has stored the job yet")
    last_run: JobRunPublic | None


class Leader(BaseModel):
    holder: str | None
    acquired_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    expires_at: dt.datetime | None
    alive: bool = Field(description="A live leader: its lease has not expired (SQLite); its "
                                    "advisory lock is held (PostgreSQL: false as soon as the "
                                    "leader dies)")


class JobsOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "leader": {"holder": "api-1:4242:a1b2c3", "acquired_at": "2027-01-17T08:00:00Z",
                   "heartbeat_at": "2027-01-18T00:00:10Z",
                   "expires_at": "2027-01-18T00:00:40Z", "alive": True},
        "jobs": [{"id": "dispatch", "description": "send due outbox rows",
                  "trigger": "interval[0:01:00]", "misfire_grace_seconds": 60,
                  "coalesce": True, "max_instances": 1,
                  "next_run_time": "2027-01-18T00:01:00Z", "last_run": _RUN_EXAMPLE}]}]})
    leader: Leader | None
    jobs: list[JobPublic]


class RunList(pagination.Page[JobRunPublic]):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [_RUN_EXAMPLE], "next_cursor": None}]})


@router.get("/scheduler/jobs", summary="Scheduled jobs, their next fire time and the leader")
def get_jobs(session: SessionDep, settings: SettingsDep) -> JobsOut:
    """The configured jobs (refit, dispatch, retry) and one-off catch-up runs, each with its
    trigger, next fire time and last run, plus the process holding the scheduler lease.
    Needs the ``read`` scope."""
    stored = {r.id: r.next_run_time for r in session.execute(
        select(ApschedulerJob.id, ApschedulerJob.next_run_time))}
    specs = {s.id: s.as_dict() for s in job_specs(settings)}
    for extra in sorted(set(stored) - set(specs)):  # one-off catch-up runs
        specs[extra] = {"id": extra, "trigger": "date", "misfire_grace_seconds": None,
                        "coalesce": True, "max_instances": 1,
                        "description": "one-off catch-up of a missed run"}
    jobs = []
    for job_id, spec in specs.items():
        last = session.scalar(select(JobRun).where(JobRun.job_id == job_id)
                              .order_by(JobRun.id.desc()).limit(1))
        nrt = stored.get(job_id)
        jobs.append(JobPublic(
            id=job_id, description=spec["description"], trigger=spec["trigger"],
            misfire_grace_seconds=spec["misfire_grace_seconds"], coalesce=spec["coalesce"],
            max_instances=spec["max_instances"],
            next_run_time=dt.datetime.fromtimestamp(nrt, dt.UTC) if nrt is not None else None,
            last_run=JobRunPublic.model_validate(last) if last is not None else None))
    lease = session.get(SchedulerLease, "scheduler")
    leader = None
    if lease is not None:
        exp = lease.expires_at
        leader = Leader(holder=lease.holder, acquired_at=lease.acquired_at,
                        heartbeat_at=lease.heartbeat_at, expires_at=exp,
                        alive=leader_alive(session.connection(), holder=lease.holder,
                                           expires_at=exp, advisory_lock_key=settings.scheduler
                                           .advisory_lock_key))
    return JobsOut(leader=leader, jobs=jobs)


@router.get("/scheduler/runs", summary="Runs, misses and errors of scheduler jobs (newest "
            "first, cursor-paginated)", responses=pagination.PAGINATION_RESPONSES)
def get_runs(
    session: SessionDep,
    job: Annotated[str | None, Query(description="Only this job id, e.g. `refit`")] = None,
    outcome: Annotated[Outcome | None, Query(description="Only this outcome")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size (1–1000)")] = 100,
    cursor: Annotated[str | None, Query(
        description="`next_cursor` of the previous page (opaque)")] = None,
) -> RunList:
    """Every recorded run of a scheduler job with its outcome (running, executed, error,
    missed), error text and JSON result. Needs the ``read`` scope."""
    stmt = where_given(select(JobRun), (JobRun.job_id, "==", job),
                       (JobRun.outcome, "==", outcome))
    page, nxt = keyset_page(session, stmt, ((JobRun.id, True),), types=(int,), cursor=cursor,
                            limit=limit)
    return RunList(items=[JobRunPublic.model_validate(r) for r in page], next_cursor=nxt)
