"""Exactly one acting scheduler across processes.

* PostgreSQL: a session-level ``pg_try_advisory_lock`` on a dedicated connection held for the
  life of the leader; the server frees it the moment the process (or its connection) dies, so a
  standby polling every ``standby_poll_seconds`` takes over within that time.
* SQLite (and any other database): a lease row in ``scheduler_leases`` with a heartbeat; a
  standby takes over once ``expires_at`` has passed, i.e. within ``lease_seconds +
  standby_poll_seconds`` of the leader's death.

Both write the leader's identity to ``scheduler_leases`` so the API can show who leads.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import uuid
from abc import ABC, abstractmethod

from sqlalchemy import Connection, Engine, create_engine, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import NullPool

from service.scheduler.tables import SchedulerLease
from service.store.base import utcnow

__all__ = ["Leadership", "LeaseLeadership", "AdvisoryLockLeadership", "make_leadership",
           "new_holder_id", "leader_alive", "LEASE_NAME"]

LEASE_NAME = "scheduler"


def new_holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Leadership(ABC):
    """Acquire, keep and give up the right to run the scheduler."""

    def __init__(self, engine: Engine, holder: str, lease_seconds: float) -> None:
        self.engine = engine
        self.holder = holder
        self.lease_seconds = lease_seconds

    @abstractmethod
    def try_acquire(self) -> bool:
        """Become the leader if nobody else is; never blocks for long."""

    @abstractmethod
    def renew(self) -> bool:
        """Heartbeat; False means leadership is lost and the scheduler must stop now."""

    @abstractmethod
    def release(self) -> None:
        """Give leadership up (clean shutdown)."""

    def _ensure_row(self) -> None:
        dialect = self.engine.dialect.name
        ins = postgresql.insert(SchedulerLease) if dialect == "postgresql" \
            else sqlite.insert(SchedulerLease)
        with self.engine.begin() as conn:
            conn.execute(ins.values(name=LEASE_NAME).on_conflict_do_nothing(
                index_elements=["name"]))

    def _write(self, conn: Connection, *, only_if_free: bool, acquired: bool) -> bool:
        now = utcnow()
        stmt = update(SchedulerLease).where(SchedulerLease.name == LEASE_NAME)
        if only_if_free:
            stmt = stmt.where((SchedulerLease.holder == self.holder)
                              | SchedulerLease.holder.is_(None)
                              | SchedulerLease.expires_at.is_(None)
                              | (SchedulerLease.expires_at < now))
        else:
            stmt = stmt.where(SchedulerLease.holder == self.holder)
        values: dict[str, object] = {
            "holder": self.holder, "heartbeat_at": now,
            "expires_at": now + dt.timedelta(seconds=self.lease_seconds)}
        if acquired:
            values["acquired_at"] = now
        return bool(conn.execute(stmt.values(**values)).rowcount)


class LeaseLeadership(Leadership):
    """A lease row with heartbeat and expiry."""

    def try_acquire(self) -> bool:
        self._ensure_row()
        with self.engine.begin() as conn:
            return self._write(conn, only_if_free=True, acquired=True)

    def renew(self) -> bool:
        try:
            with self.engine.begin() as conn:
                return self._write(conn, only_if_free=False, acquired=False)
        except Exception:
            return False

    def release(self) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(update(SchedulerLease).where(
                    SchedulerLease.name == LEASE_NAME, SchedulerLease.holder == self.holder)
                    .values(holder=None, expires_at=utcnow()))
        except Exception:  # best effort: the lease expires anyway
            pass


class AdvisoryLockLeadership(Leadership):
    """A PostgreSQL session advisory lock on a dedicated (unpooled) connection."""

    def __init__(self, engine: Engine, holder: str, lease_seconds: float, key: int) -> None:
        super().__init__(engine, holder, lease_seconds)
        self.key = key
        self._lock_engine = create_engine(
            engine.url.render_as_string(hide_password=False), poolclass=NullPool,
            isolation_level="AUTOCOMMIT")
        self._conn: Connection | None = None

    def _drop_connection(self) -> None:
        """Close the lock connection (a dead one too: a failed query leaves it unusable for
        good), so that the next :meth:`try_acquire` opens a fresh one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already gone with its server process
                conn.close()

    def try_acquire(self) -> bool:
        if self._conn is None:
            self._conn = self._lock_engine.connect()
        try:
            got = bool(self._conn.scalar(select(func.pg_try_advisory_lock(self.key))))
        except Exception:
            self._drop_connection()
            raise
        if not got:
            self._drop_connection()
            return False
        self._ensure_row()
        with self.engine.begin() as conn:
            # informational: the lock decides, the row tells the API who holds it
            conn.execute(update(SchedulerLease).where(SchedulerLease.name == LEASE_NAME)
                         .values(holder=self.holder, acquired_at=utcnow(), heartbeat_at=utcnow(),
                                 expires_at=utcnow() + dt.timedelta(seconds=self.lease_seconds)))
        return True

    def renew(self) -> bool:
        if self._conn is None:
            return False
        try:
            held = self._conn.scalar(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND objsubid = 1 "
                "AND classid::bigint = ((:k)::bigint >> 32) "
                "AND objid::bigint = ((:k)::bigint & 4294967295)"),
                {"k": self.key})  # held by this very connection (leader_alive: by anyone)
            if not held:  # the server freed it (the connection was killed or reset)
                self._drop_connection()
                return False
        except Exception:  # the connection died (server restart, failover, a killed backend)
            self._drop_connection()
            return False
        try:
            with self.engine.begin() as conn:
                self._write(conn, only_if_free=False, acquired=False)
        except Exception:  # the lock is held, only the informational row was not written
            pass
        return True

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.scalar(select(func.pg_advisory_unlock(self.key)))
            with self.engine.begin() as conn:
                conn.execute(update(SchedulerLease).where(
                    SchedulerLease.name == LEASE_NAME, SchedulerLease.holder == self.holder)
                    .values(holder=None, expires_at=utcnow()))
        except Exception:  # the lock dies with the connection anyway
            pass
        finally:
            self._drop_connection()
            self._lock_engine.dispose()


_LOCK_HELD = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid::bigint = ((:k)::bigint >> 32) "
    "AND objid::bigint = ((:k)::bigint & 4294967295)")


def leader_alive(conn: Connection, *, holder: str | None, expires_at: dt.datetime | None,
                 advisory_lock_key: int) -> bool:
    """Whether the lease row's holder is a live leader.

    SQLite (lease row): its lease has not expired. PostgreSQL: the advisory lock decides, and
    the server frees it the moment the leader's process dies -- a dead leader is shown dead
    at once, not when its informational row expires."""
    if not holder:
        return False
    if conn.dialect.name == "postgresql":
        return bool(conn.scalar(_LOCK_HELD, {"k": advisory_lock_key}))
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=dt.UTC)
    return bool(expires_at and expires_at > utcnow())


def make_leadership(engine: Engine, *, holder: str, lease_seconds: float,
                    advisory_lock_key: int) -> Leadership:
    if engine.dialect.name == "postgresql":
        return AdvisoryLockLeadership(engine, holder, lease_seconds, advisory_lock_key)
    return LeaseLeadership(engine, holder, lease_seconds)
