"""Gauges read from the database at scrape time, in a registry of their own per app.

The process-wide counters and histograms of :mod:`service.metrics` live in prometheus-client's
default registry; these gauges describe shared state (every API process reports the same
numbers), so they are computed from the database when ``/metrics`` is scraped. Each app gets
its own :class:`~prometheus_client.CollectorRegistry` (:func:`db_registry`), so many apps in
one process (tests) never register a collector twice.

Gauges (all prefixed ``forewarn_``):

* ``db_up`` — 1 when the queries below succeeded, else 0 (and nothing else is reported)
* ``forecast_runs_stored{status}`` — forecast runs in the database by status
* ``latest_run_finished_timestamp_seconds`` / ``latest_run_peaks`` — the newest finished run
* ``campaigns{status}`` — campaigns by status
* ``outbox_rows{status}`` — deliveries by outcome (``delivered``, ``dead``, ``cancelled``) and
  in flight (``pending``, ``sending``, ``retrying``)
* ``outbox_depth`` — undelivered rows still to be sent (pending, sending, retrying)
* ``outbox_lag_seconds`` — age of the oldest undelivered row that is due (0 when none)
* ``scheduler_leader{holder}`` — 1 for the holder of a live scheduler lease
* ``scheduler_lease_expires_timestamp_seconds`` — when the current lease runs out
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from service.campaigns.tables import Campaign
from service.config import SchedulerSettings
from service.dispatch.tables import OPEN, STATUSES, Outbox
from service.scheduler.leadership import LEASE_NAME, leader_alive
from service.scheduler.tables import SchedulerLease
from service.store.tables import ForecastRun, Peak, utcnow

__all__ = ["DbCollector", "db_registry", "lease_state"]

DEFAULT_LOCK_KEY = int(SchedulerSettings.model_fields["advisory_lock_key"].default)

log = structlog.get_logger(__name__)


def lease_state(session: Session, advisory_lock_key: int = DEFAULT_LOCK_KEY
                ) -> dict[str, Any]:
    """The scheduler lease: ``holder``, ``expires_at`` (ISO), ``alive`` (a live leader:
    :func:`service.scheduler.leadership.leader_alive`)."""
    lease = session.get(SchedulerLease, LEASE_NAME)
    if lease is None:
        return {"holder": None, "expires_at": None, "alive": False}
    expires = lease.expires_at
    alive = leader_alive(session.connection(), holder=lease.holder, expires_at=expires,
                         advisory_lock_key=advisory_lock_key)
    return {"holder": lease.holder, "expires_at": expires.isoformat() if expires else None,
            "alive": alive}


def _status_counts(session: Session, status: InstrumentedAttribute[str]) -> dict[str, int]:
    """Rows of ``status``'s table by its value."""
    return {value: int(n) for value, n in session.execute(select(status, func.count())
                                                          .group_by(status))}


def _by_status(name: str, documentation: str, counts: dict[str, int]) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, documentation, labels=["status"])
    for status, n in counts.items():
        gauge.add_metric([status], n)
    return gauge


class DbCollector(Collector):
    """Prometheus collector computing the database gauges at each scrape."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def collect(self) -> Iterator[Metric]:
        try:
            with self.factory() as session:
                metrics = list(self._collect(session))
        except Exception as exc:  # the database is down: say so, keep /metrics working
            log.warning("db_metrics_failed", error_type=type(exc).__name__)
            up = GaugeMetricFamily("forewarn_db_up", "Database reachable for metrics")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("forewarn_db_up", "Database reachable for metrics")
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _collect(self, session: Session) -> Iterator[Metric]:
        now = utcnow()
        yield _by_status("forewarn_forecast_runs_stored", "Forecast runs by status",
                         _status_counts(session, ForecastRun.status))
        latest = session.execute(
            select(ForecastRun.id, ForecastRun.finished_at)
            .where(ForecastRun.status.in_(("succeeded", "partial")))
            .order_by(ForecastRun.finished_at.desc()).limit(1)).first()
        finished = GaugeMetricFamily("forewarn_latest_run_finished_timestamp_seconds",
                                     "When the newest finished forecast run finished")
        peaks = GaugeMetricFamily("forewarn_latest_run_peaks",
                                  "Predicted peak windows of the newest finished run")
        if latest is not None:
            at = latest.finished_at
            if at is not None:
                finished.add_metric([], at.timestamp())
            peaks.add_metric([], session.scalar(
                select(func.count()).select_from(Peak).where(Peak.run_id == latest.id)) or 0)
        yield finished
        yield peaks

        yield _by_status("forewarn_campaigns", "Campaigns by status",
                         _status_counts(session, Campaign.status))

        counts = {**dict.fromkeys(STATUSES, 0), **_status_counts(session, Outbox.status)}
        yield _by_status("forewarn_outbox_rows", "Outbox rows (deliveries) by status / outcome",
                         counts)
        yield GaugeMetricFamily("forewarn_outbox_depth", "Undelivered outbox rows to send",
                                value=sum(counts[s] for s in OPEN))
        oldest = session.scalar(select(func.min(Outbox.next_attempt_at)).where(
            Outbox.status.in_(sorted(OPEN)), Outbox.next_attempt_at <= now))
        yield GaugeMetricFamily("forewarn_outbox_lag_seconds",
                                "Age of the oldest due, undelivered outbox row",
                                value=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)

        lease = lease_state(session)
        leader = GaugeMetricFamily("forewarn_scheduler_leader",
                                   "1 for the holder of a live scheduler lease",
                                   labels=["holder"])
        if lease["alive"]:
            leader.add_metric([str(lease["holder"])], 1)
        yield leader
        expires = GaugeMetricFamily("forewarn_scheduler_lease_expires_timestamp_seconds",
                                    "When the scheduler lease runs out unless renewed")
        if lease["expires_at"]:
            expires.add_metric([], dt.datetime.fromisoformat(lease["expires_at"]).timestamp())
        yield expires


def db_registry(app_state: Any) -> CollectorRegistry:
    """The app's registry of database gauges, created on first use."""
    registry: CollectorRegistry | None = getattr(app_state, "db_metrics_registry", None)
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DbCollector(app_state.sessionmaker))
        app_state.db_metrics_registry = registry
    return registry
