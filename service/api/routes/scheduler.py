"""Scheduler jobs (definition, next fire time, leader) and the job-runs log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from service.api.deps import SessionDep, SettingsDep, require
from service.api.pagination import PAGINATION_RESPONSES
from service.api.problems import PROBLEM_RESPONSES
from service.dispatch.outbox import aware, decode_cursor, encode_cursor
from service.scheduler.runner import job_specs
from service.scheduler.tables import ApschedulerJob, JobRun, SchedulerLease
from service.store.tables import utcnow

__all__ = ["router"]

router = APIRouter(tags=["scheduler"], dependencies=[Depends(require("read"))],
                   responses=PROBLEM_RESPONSES)
Outcome = Literal["running", "executed", "error", "missed"]


class JobRunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
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
        return aware(v)


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
    alive: bool = Field(description="A heartbeat is recent enough")


class JobsOut(BaseModel):
    leader: Leader | None
    jobs: list[JobPublic]


class RunList(BaseModel):
    items: list[JobRunPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


@router.get("/scheduler/jobs", summary="Scheduled jobs, their next fire time and the leader")
def get_jobs(session: SessionDep, settings: SettingsDep) -> JobsOut:
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
        exp = aware(lease.expires_at)
        leader = Leader(holder=lease.holder, acquired_at=aware(lease.acquired_at),
                        heartbeat_at=aware(lease.heartbeat_at), expires_at=exp,
                        alive=bool(lease.holder and exp and exp > utcnow()))
    return JobsOut(leader=leader, jobs=jobs)


@router.get("/scheduler/runs", summary="Runs, misses and errors of scheduler jobs (newest "
            "first, cursor-paginated)", responses=PAGINATION_RESPONSES)
def get_runs(
    session: SessionDep,
    job: str | None = None,
    outcome: Outcome | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> RunList:
    stmt = select(JobRun)
    if job:
        stmt = stmt.where(JobRun.job_id == job)
    if outcome:
        stmt = stmt.where(JobRun.outcome == outcome)
    if cursor:
        stmt = stmt.where(JobRun.id < decode_cursor(cursor))
    rows = list(session.scalars(stmt.order_by(JobRun.id.desc()).limit(limit + 1)))
    nxt = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return RunList(items=[JobRunPublic.model_validate(r) for r in rows[:limit]],
                   next_cursor=nxt)
