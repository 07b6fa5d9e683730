"""Scheduler tables: APScheduler's job store, the job-runs log and the leadership lease."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, Index, Integer, LargeBinary, String, Text, Unicode
from sqlalchemy.orm import Mapped, mapped_column

from service.store.base import Base, UtcDateTime, utcnow

__all__ = ["ApschedulerJob", "JobRun", "SchedulerLease", "OUTCOMES"]

OUTCOMES = ("running", "executed", "error", "missed")


class ApschedulerJob(Base):
    """APScheduler 3.x ``SQLAlchemyJobStore`` table, created by our migrations (same columns).

    ``job_state`` is APScheduler's pickle of the job; only the scheduler reads it.
    """

    __tablename__ = "apscheduler_jobs"
    id: Mapped[str] = mapped_column(Unicode(191), primary_key=True)
    next_run_time: Mapped[float | None] = mapped_column(Float(25), index=True)
    job_state: Mapped[bytes] = mapped_column(LargeBinary)


class JobRun(Base):
    """One run, miss or error of a scheduler job (written by the EVENT_JOB_* listeners)."""

    __tablename__ = "scheduler_job_runs"
    __table_args__ = (Index("ix_scheduler_job_runs_job_scheduled", "job_id", "scheduled_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(191))
    scheduled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    holder: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class SchedulerLease(Base):
    """Who leads: a lease with heartbeat and expiry (SQLite), informational on PostgreSQL."""

    __tablename__ = "scheduler_leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(100))
    acquired_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
