"""Settings, read from the environment (``FOREWARN_`` prefix, nested with ``__``) and ``.env``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_TIMEZONE", "Settings", "ForecastSettings", "ApiSettings", "ImportSettings",
           "SchedulerSettings", "CampaignSettings", "DispatchSettings", "EvaluationSettings",
           "ChannelSettings", "WebhookSettings", "EmailSettings", "PROJECT_ROOT",
           "SHUTDOWN_WAIT_SECONDS"]

#: The deployment's time zone unless ``FOREWARN_TIMEZONE`` says otherwise: naive timestamps are
#: local time there, records count towards its calendar days, "today" is its today.
DEFAULT_TIMEZONE = "Asia/Shanghai"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = PROJECT_ROOT / "data" / "samples"
#: How long the app's shutdown waits for a background job (an import, the evaluation
#: refresh) to reach its next stop point before the engine is disposed.
SHUTDOWN_WAIT_SECONDS = 30.0


class ForecastSettings(BaseModel):
    engine: Literal["serial", "local", "dask"] = "local"
    dask_address: str | None = None
    jobs: int = -1
    horizon_days: int = 182
    n_samples: int = Field(
        1000, ge=1, description="Sample paths per series; P(spike) and the onset are read from "
        "them (1,000 rather than 200: less Monte Carlo noise in P, higher AP and event F1 on "
        "Chicago and Boston 311, docs/benchmarks.md)")
    stored_samples: int = Field(
        200, ge=0, description="Weekly sample paths stored per forecast week (the first ones; "
        "the paths are exchangeable); the frozen counterfactual of effects reads them")
    min_spike_count: float = 5.0
    p_min: float | None = Field(
        None, gt=0, le=1, description="Decision threshold: None (default) learns one per "
        "category from backtests before each run's cut-off; a number pins that constant")
    decision_origins: int = Field(
        2, ge=0, le=8, description="Most rolling origins of the decision backtest "
        "(0: no backtest, every category gets the default threshold)")
    decision_min_windows: int = Field(
        8, ge=1, description="Fewest backtest spike windows for a category's own threshold; "
        "fewer: the threshold pooled over all categories (models.decision.DEFAULT_MIN_WINDOWS)")
    decision_anchor_weeks: int = Field(
        13, ge=0, le=52, description="The newest backtest origin lies on a grid of Sundays "
        "this many weeks apart, so consecutive weekly runs share origins and reuse their "
        "stored backtests; 0: the origin follows the cut-off")


class ApiSettings(BaseModel):
    max_body_bytes: int = 200 * 1024 * 1024
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int = 600
    rate_limit_storage: str = Field(
        "memory://", pattern=r"^(memory|redis|rediss|unix)://",
        description="Where the rate-limit counts live: memory:// in each API process; a Redis "
        "URL (redis://host:6379/0) shared by every API process using it (one combined limit "
        "per key and address)")
    rate_limit_key_prefix: str = Field(
        "forewarn", min_length=1, description="Starts every rate-limit counter's key (keeps "
        "deployments sharing one Redis apart)")
    key_cache_seconds: float = 5.0  # a revoked key stops working within this time
    # overload answers 503 + Retry-After at once instead of queueing (issue 13):
    # requests in progress per process beyond this, a database connection not free within
    # pool_timeout_seconds, a lock not granted within lock_timeout_seconds
    max_in_flight: int = Field(64, ge=1)
    pool_size: int = Field(5, ge=1)
    pool_max_overflow: int = Field(10, ge=0)
    pool_timeout_seconds: float = Field(3.0, gt=0)
    lock_timeout_seconds: float = Field(10.0, gt=0)
    retry_after_seconds: int = Field(2, ge=1)
    # repeated identical reads of GET /v1/peaks and /v1/series/{id}/forecast answered before
    # FastAPI parses them (service/api/read_cache.py); keyed by the data version, the TTL is
    # a safety net; 0 seconds turns it off
    read_cache_seconds: float = Field(5.0, ge=0)
    read_cache_max_bytes: int = Field(64 * 1024**2, ge=0)


class ImportSettings(BaseModel):
    """Limits of one import (see service/ingest/limits.py) and background imports (API)."""

    max_bytes: int = Field(2 * 1024**3, ge=1, description="Bytes read after decompression")
    max_compression_ratio: float = Field(200.0, gt=1, description="Decompressed / compressed "
                                         "bytes (checked past 64 MiB): gzip and zip bombs")
    max_line_bytes: int = Field(64 * 1024**2, ge=1024, description="One CSV / JSON Lines line "
                                "or JSON record")
    max_rows: int = Field(10_000_000, ge=1, description="Rows of one file (XLSX: rows scanned)")
    max_columns: int = Field(1_000, ge=1, description="Columns of one file")
    max_text_chars: int = Field(20_000, ge=100, description="A longer complaint text is cut "
                                "(with a marker); other fields reject a too long value")
    max_seconds: float = Field(1800.0, gt=0, description="Wall time of one import")
    background_above_bytes: int = Field(8 * 1024**2, ge=0, description="API uploads larger "
                                        "than this run in the background (202 + batch URL)")
    background_workers: int = Field(1, ge=1, description="Background imports run at once")
    max_queued: int = Field(8, ge=1, description="Background imports waiting or running; "
                            "more answer 503")
    max_json_body_bytes: int = Field(32 * 1024**2, ge=1024, description="A JSON body of "
                                     "records (held in memory); larger: upload a file")
    stale_after_seconds: float = Field(900.0, gt=0, description="A running batch whose "
                                       "process gave no sign of life for this long is "
                                       "marked failed (interrupted)")


class SchedulerSettings(BaseModel):
    """The scheduler: jobs, their misfire handling and leadership (one acting scheduler)."""

    enabled: bool = False
    refit_cron: str = "0 2 * * mon"
    #: Zone of the cron expressions; None (the default): the deployment's ``timezone``.
    timezone: str | None = None
    refit_enabled: bool = True
    dispatch_interval_seconds: float = 60.0
    retry_interval_seconds: float = 60.0
    # a refit late by less than this still runs; a dispatch tick late by more is just recorded
    refit_misfire_grace_seconds: int = 6 * 3600
    dispatch_misfire_grace_seconds: int = 60
    # catch_up: a run missed while no scheduler was up runs once at take-over; skip: recorded only
    missed_policy: Literal["catch_up", "skip"] = "catch_up"
    # leadership: lease row (SQLite) or session advisory lock (PostgreSQL)
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 10.0
    standby_poll_seconds: float = 5.0
    advisory_lock_key: int = 0x0F0E_3A2E
    threads: int = 4


class EvaluationSettings(BaseModel):
    """The materialised evaluation (scorecards, campaign effects): who recomputes it, how."""

    # process: each refresh in a spawned child process (no GIL shared with the API's event
    # loop or the scheduler's dispatch ticks); thread: on the calling background thread
    worker: Literal["process", "thread"] = "process"
    # the API process starts a refresh when a request finds its answer missing or stale
    background: bool = True
    interval_seconds: float = 60.0  # the scheduler leader's check for stale answers
    claim_seconds: float = 1800.0  # a refresh longer than this is presumed dead
    retry_after_seconds: int = 5  # Retry-After of a 202 (nothing computed yet)


class DispatchSettings(BaseModel):
    """The outbox dispatcher: batch size, concurrency, retries with backoff and jitter."""

    batch_size: int = 200
    concurrency: int = 8
    max_attempts: int = 8
    backoff_base_seconds: float = 30.0
    backoff_max_seconds: float = 6 * 3600.0
    backoff_jitter: float = 0.5  # share of the delay drawn at random (0 = none, 1 = full)
    claim_timeout_seconds: float = 300.0  # a row claimed longer ago is re-claimed (crash)
    tick_budget_seconds: float = 50.0  # one dispatch tick stops claiming after this
    send_time: dt.time = dt.time(9, 0)  # local time of day a campaign's send date starts
    public_channel: str = "file"  # the channel that carries reminders to the public
    public_destination: str = "public"
    schedule_approved: bool = True  # the dispatch job schedules approved campaigns itself


class WebhookSettings(BaseModel):
    # Standard Webhooks secrets ("whsec_<base64>"); every one signs, so receivers can rotate
    secrets: list[SecretStr] = Field(default_factory=list)
    connect_timeout_seconds: float = 3.0
    read_timeout_seconds: float = 5.0
    max_response_bytes: int = 64 * 1024
    allow_loopback: bool = False  # tests and `make run` only
    allow_private: bool = False
    user_agent: str = "Forewarn-Webhook/1"


class EmailSettings(BaseModel):
    host: str | None = None
    port: int = 587
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "forewarn@localhost"
    message_id_domain: str = "forewarn.local"
    timeout_seconds: float = 10.0
    verify_tls: bool = True


class ChannelSettings(BaseModel):
    """Delivery channels (webhook, e-mail, file); ``file`` needs no external service."""

    enabled: list[str] = Field(default_factory=lambda: ["file", "webhook", "email"])
    file_dir: Path = Path("var/outbox")
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)


class CampaignSettings(BaseModel):
    """Campaign planning: which peaks become reminders and the constraints on send dates."""

    signals: list[Literal["complaints", "violations"]] = Field(
        default_factory=lambda: ["complaints"],  # type: ignore[arg-type]
        description="Signals whose predicted peak windows are planned")
    min_probability: float = Field(
        0.0, ge=0, le=1, description="Also ignore predicted peak windows whose highest weekly "
        "P(spike) is below this; 0 plans every window of the run (each already has P(spike) "
        ">= the run's decision threshold for its category, learned or pinned by "
        "FOREWARN_FORECAST__P_MIN)")
    default_lead_days: int = Field(14, ge=0, le=365,
                                   description="Lead days of a category that sets none")
    min_spacing_days: int = Field(
        7, ge=0, description="Minimum days between reminders to the same audience "
        "(region and sector); 0 turns the constraint off")
    weekly_capacity_per_region: int | None = Field(
        5, ge=1, description="Reminders a region may send per ISO week; None = unlimited")
    blackout_holiday_blocks: list[str] = Field(
        default_factory=lambda: ["spring_festival"],
        description="Holiday blocks of models.calendar during which nothing is sent")
    blackout_dates: list[dt.date] = Field(default_factory=list,
                                          description="Further days on which nothing is sent")
    max_advance_days: int = Field(
        14, ge=0, description="How many days earlier than planned a constraint may move a send")
    min_notice_days: int = Field(
        1, ge=0, description="A send moved by a constraint stays this many days before the window")
    window_match_days: int = Field(
        21, ge=0, description="Replanning matches a window to the nearest campaign of the same "
        "category and region whose window overlaps it within ±this many days")
    review_shift_days: int = Field(
        7, ge=0, description="An approved campaign whose window moved more than this is flagged")
    channels: list[str] = Field(default_factory=lambda: ["public", "email", "webhook"],
                                description="Channels rendered and frozen on approval")


class Settings(BaseSettings):
    """All settings of a Forewarn deployment.

    Tests build one explicitly: ``Settings(_env_file=None, database_url=...)``.
    """

    model_config = SettingsConfigDict(
        env_prefix="FOREWARN_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    database_url: str = "sqlite:///var/forewarn.db"
    categories_file: Path = SAMPLES_DIR / "categories.yaml"
    regions_file: Path = SAMPLES_DIR / "regions.yaml"
    samples_dir: Path = SAMPLES_DIR
    timezone: str = DEFAULT_TIMEZONE
    log_level: str = "INFO"
    log_json: bool = True
    import_chunk_rows: int = 50_000
    imports: ImportSettings = Field(default_factory=ImportSettings)
    forecast: ForecastSettings = Field(default_factory=ForecastSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    channels: ChannelSettings = Field(default_factory=ChannelSettings)
    campaigns: CampaignSettings = Field(default_factory=CampaignSettings)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
