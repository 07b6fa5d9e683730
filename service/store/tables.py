"""Core tables (SQLAlchemy 2 declarative): reference data, records, imports, series summary,
API keys and forecast runs. :class:`Base` and the helpers are in :mod:`service.store.base`
(re-exported here); the whole schema is assembled in :mod:`service.schema`. Alembic migrations
live in ``service/migrations``.

Timestamps are stored timezone-aware in UTC; ``day`` columns hold the local (Asia/Shanghai)
calendar day a record counts towards.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from service.store.base import NAMING, Base, UtcDateTime, new_id, utcnow

__all__ = [
    "Base",
    "Category",
    "Region",
    "ImportBatch",
    "Complaint",
    "EnforcementAction",
    "RejectedRow",
    "SeriesSource",
    "SourceCoverage",
    "ApiKey",
    "ForecastRun",
    "SeriesIssue",
    "FittedModel",
    "ForecastPoint",
    "ForecastWeek",
    "Peak",
    "DecisionBacktest",
    "NAMING",
    "utcnow",
    "new_id",
]

class Category(Base):
    """A violation category configured for the deployment (or registered by an import)."""

    __tablename__ = "categories"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    aliases: Mapped[list[Any]] = mapped_column(default=list)
    sector: Mapped[str | None] = mapped_column(String(100))
    lead_days: Mapped[int] = mapped_column(Integer, default=14)
    legal_basis: Mapped[list[Any]] = mapped_column(default=list)
    requirements: Mapped[str | None] = mapped_column(Text)
    advice: Mapped[str | None] = mapped_column(Text)
    templates: Mapped[dict[str, Any]] = mapped_column(default=dict)
    registered_by_import: Mapped[bool] = mapped_column(Boolean, default=False)
    #: ``{enabled, delay_weeks, min_regions}``: the department lets the planner randomise
    #: reminder timing (service.campaigns.randomised); empty = off.
    randomised_timing: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # how its warnings are judged (models.decision.CategoryRule): F-beta's beta, or the
    # cost/loss rule when both costs are set; the longest campaign window in weeks
    beta: Mapped[float] = mapped_column(Float, default=1.0, server_default=text("1"))
    reminder_cost: Mapped[float | None] = mapped_column(Float)
    miss_cost: Mapped[float | None] = mapped_column(Float)
    max_campaign_weeks: Mapped[int] = mapped_column(Integer, default=6,
                                                    server_default=text("6"))

class Region(Base):
    """An administrative region (GB/T 2260 code) with its parent for roll-ups."""

    __tablename__ = "regions"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    parent: Mapped[str | None] = mapped_column(ForeignKey("regions.code"))
    level: Mapped[str] = mapped_column(String(32), default="league")
    population: Mapped[int | None] = mapped_column(Integer)
    aliases: Mapped[list[Any]] = mapped_column(default=list)
    registered_by_import: Mapped[bool] = mapped_column(Boolean, default=False)

class ImportBatch(Base):
    """One import of one file (or JSON body); counts and status.

    ``status``: queued (API background import waiting), running, completed (some or all rows
    imported), rejected (every row rejected), failed (the file as a whole; ``error`` says
    why). ``file_sha256`` fingerprints the uploaded bytes (a second import of the same file is
    refused unless forced); ``owner`` (host:pid:token) and ``heartbeat_at`` let a later start
    tell a batch left running by a crash; ``progress`` holds rows and bytes read so far.
    """

    __tablename__ = "import_batches"
    __table_args__ = (Index("ix_import_batches_file_sha256", "file_sha256"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))  # complaints | enforcement
    source: Mapped[str | None] = mapped_column(String(100))
    filename: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="running")
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    warnings: Mapped[list[Any] | None] = mapped_column(JSON)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    owner: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    received: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

class _Record:
    """The columns every imported record has: its key in its source, the series it counts
    towards (local ``day``, category, region) and its import batch; unique per source and
    external id, indexed by series and day. Each table adds its timestamp and its own fields
    (the migrations create the tables; the order of the columns here does not matter)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(200))
    day: Mapped[dt.date] = mapped_column(Date)
    category: Mapped[str] = mapped_column(ForeignKey("categories.code"))
    region: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("import_batches.id"))

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        name = cls.__tablename__  # type: ignore[attr-defined]
        return (UniqueConstraint("source", "external_id", name=f"uq_{name}_source_external_id"),
                Index(f"ix_{name}_series_day", "category", "region", "day"))


class Complaint(_Record, Base):
    """A public complaint (text redacted before storage)."""

    __tablename__ = "complaints"
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    sector: Mapped[str | None] = mapped_column(String(100))
    channel: Mapped[str | None] = mapped_column(String(50))
    text: Mapped[str | None] = mapped_column(Text)

class EnforcementAction(_Record, Base):
    """An enforcement action (inspection, warning, correction order, penalty, ...)."""

    __tablename__ = "enforcement_actions"
    occurred_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    action: Mapped[str] = mapped_column(String(50))
    violation_found: Mapped[bool] = mapped_column(Boolean, default=False)
    entity_id: Mapped[str | None] = mapped_column(String(100))
    sector: Mapped[str | None] = mapped_column(String(100))

class RejectedRow(Base):
    """A row an import refused, with its 1-based row number, field and problem.

    ``raw`` keeps the row's values after redaction, without personal columns.
    """

    __tablename__ = "rejected_rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("import_batches.id"), index=True)
    row_number: Mapped[int] = mapped_column(Integer)
    field: Mapped[str | None] = mapped_column(String(100))
    problem: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)

class _SeriesParts:
    """The parts of a row's ``series_id`` as columns, to filter on: signal, category, region."""

    signal: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(64))


class SeriesSource(_SeriesParts, Base):
    """Series summary, maintained at import (:mod:`service.store.summary`): one row per
    (series, source) with the first and last record day and the record count. ``violations``
    rows count enforcement actions that found a violation."""

    __tablename__ = "series_sources"
    __table_args__ = (Index("ix_series_sources_signal_source", "signal", "source"),)
    series_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    first_day: Mapped[dt.date] = mapped_column(Date)
    last_day: Mapped[dt.date] = mapped_column(Date)
    total: Mapped[int] = mapped_column(Integer)


class SourceCoverage(Base):
    """Days a source covers for a signal, one row per import batch and source: the batch's
    first to last record day, or the coverage the import declared (DESIGN.md "Sources and
    coverage"). A source covers the union of its rows' intervals; rows are only added."""

    __tablename__ = "source_coverage"
    __table_args__ = (Index("ix_source_coverage_signal_source", "signal", "source"),
                      {"sqlite_autoincrement": True})  # ids are never reused (a version)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    signal: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(100))
    day_from: Mapped[dt.date] = mapped_column(Date)
    day_to: Mapped[dt.date] = mapped_column(Date)
    declared: Mapped[bool] = mapped_column(Boolean, default=False)
    batch_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ApiKey(Base):
    """An API key, stored as a SHA-256 hash with a public lookup prefix."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())



class ForecastRun(Base):
    """One forecast run: parameters, engine, data cut-off, progress, durations, outcome.

    ``owner`` (host:pid:token of the process that queued or runs it) and ``heartbeat_at``
    (its last progress) let a later start tell a run left behind by a crash
    (:func:`service.forecasting.runs.recover_interrupted_runs`)."""

    __tablename__ = "forecast_runs"
    __table_args__ = (Index("ix_forecast_runs_status_finished", "status", "finished_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    engine: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    train_until: Mapped[dt.date | None] = mapped_column(Date)
    horizon_days: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    durations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # the decision thresholds of the run, per category, with their backtest evidence
    # (service.forecasting.decisions.decision_document)
    decisions: Mapped[dict[str, Any]] = mapped_column(default=dict,
                                                      server_default=text("'{}'"))
    requested_by: Mapped[str | None] = mapped_column(String(100))
    owner: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class SeriesIssue(Base):
    """A per-series failure or flag of a run (fallback model, short history, ...)."""

    __tablename__ = "forecast_series_issues"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("forecast_runs.id", ondelete="CASCADE"),
                                        index=True)
    series_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # failure | flag
    code: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")


class FittedModel(Base):
    """Model registry: one fitted model per (run, series) as Prophet JSON (never a pickle)."""

    __tablename__ = "fitted_models"
    __table_args__ = (UniqueConstraint("run_id", "series_id",
                                       name="uq_fitted_models_run_id_series_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("forecast_runs.id", ondelete="CASCADE"),
                                        index=True)
    series_id: Mapped[str] = mapped_column(String(200), index=True)
    model_type: Mapped[str] = mapped_column(String(32))
    artifact: Mapped[str] = mapped_column(Text)
    fit_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class _RunSeriesKey:
    """The key a forecast row starts with: its run and series (``sort_order`` keeps them the
    first columns of the primary key)."""

    run_id: Mapped[str] = mapped_column(ForeignKey("forecast_runs.id", ondelete="CASCADE"),
                                        primary_key=True, sort_order=-2)
    series_id: Mapped[str] = mapped_column(String(200), primary_key=True, sort_order=-1)


class ForecastPoint(_RunSeriesKey, Base):
    """Daily forecast of a series in a run (80 % interval)."""

    __tablename__ = "forecast_points"
    ds: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    yhat: Mapped[float] = mapped_column(Float)
    yhat_lower: Mapped[float] = mapped_column(Float)
    yhat_upper: Mapped[float] = mapped_column(Float)
    model: Mapped[str] = mapped_column(String(32))


class ForecastWeek(_RunSeriesKey, Base):
    """Weekly expected count, P(spike) and threshold of a series in a run.

    ``samples`` keeps the weekly sums of the sample paths, so a frozen forecast can serve as a
    counterfactual later.
    """

    __tablename__ = "forecast_weeks"
    week: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    expected: Mapped[float] = mapped_column(Float)
    p_spike: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    samples: Mapped[list[Any]] = mapped_column(default=list)


class Peak(_SeriesParts, Base):
    """A campaign window of a series (DESIGN.md), with its evidence.

    ``start``/``end`` bound the campaign window; a predicted window longer than the
    category's ``max_campaign_weeks`` is several peaks (``part`` of ``parts``) sharing
    ``window_start``/``window_end``. ``onset`` is the Monday of the expected onset week from
    the sample paths (on or before ``start``); ``p_min`` the decision threshold the run used
    for the series' category (old runs: NULL).
    """

    __tablename__ = "peaks"
    __table_args__ = (Index("ix_peaks_run_start", "run_id", "start"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("forecast_runs.id", ondelete="CASCADE"))
    series_id: Mapped[str] = mapped_column(String(200), index=True)
    start: Mapped[dt.date] = mapped_column(Date)
    end: Mapped[dt.date] = mapped_column(Date)
    peak_week: Mapped[dt.date] = mapped_column(Date)
    expected_count: Mapped[float] = mapped_column(Float)
    expected_excess: Mapped[float] = mapped_column(Float)
    max_probability: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    onset: Mapped[dt.date | None] = mapped_column(Date)
    p_min: Mapped[float | None] = mapped_column(Float)
    window_start: Mapped[dt.date | None] = mapped_column(Date)
    window_end: Mapped[dt.date | None] = mapped_column(Date)
    part: Mapped[int | None] = mapped_column(Integer)
    parts: Mapped[int | None] = mapped_column(Integer)


class DecisionBacktest(Base):
    """The decision backtest of one series at one origin, kept for later runs.

    ``fingerprint`` hashes what the result depends on (the series' counts up to the end of
    the origin's horizon, the forecaster parameters, the backtest definitions and the code of
    the models); a later run with the same fingerprint reuses ``weeks`` (``[week, expected,
    p_spike, threshold, y, spike]``) and ``windows`` (actual windows ``[start, end,
    eligible]``) instead of fitting again (service.forecasting.decisions).
    """

    __tablename__ = "decision_backtests"
    series_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    origin: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    weeks: Mapped[list[Any]] = mapped_column(default=list)
    windows: Mapped[list[Any]] = mapped_column(default=list)
    run_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
