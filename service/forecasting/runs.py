"""Running forecast runs: record a queued run, then execute it (through ``models.runner``).

Workers get frames, never sessions: :func:`execute_run` reads the counts, hands a frame to
:func:`models.runner.run_forecasts`, and :mod:`service.forecasting.storing` writes the results
in one transaction.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import pandas as pd
import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.peaks import peak_windows, spike_probabilities, thresholds
from models.series import to_weekly
from service.config import Settings
from service.errors import Conflict, InsufficientHistory, NotFound, UnprocessableContent
from service.evaluation.masks import mask_sent_campaigns
from service.forecasting.decisions import Decider
from service.forecasting.queries import latest_run
from service.forecasting.storing import store_results
from service.metrics import FORECAST_RUNS
from service.store.owners import owner_gone, process_owner
from service.store.series import SIGNALS, daily_frame
from service.store.tables import FittedModel, ForecastRun, utcnow

if TYPE_CHECKING:
    from models.runner import Engine, RunResult

log = structlog.get_logger(__name__)

__all__ = ["create_run", "execute_run", "recover_interrupted_runs", "QUEUE_STALE"]


def create_run(
    *,
    session: Session,
    settings: Settings,
    horizon_days: int | None = None,
    train_until: dt.date | None = None,
    engine: str | None = None,
    jobs: int | None = None,
    signals: list[str] | None = None,
    requested_by: str | None = None,
    bounded: bool = False,
) -> ForecastRun:
    """Record a queued run with its parameters.

    ``bounded`` (API requests): one run waits at most per deployment -- with a run already
    queued, :class:`~service.errors.Conflict` (409) names it (``queued_run``, and
    ``running_run`` when one runs). Runs older than ``QUEUE_STALE`` (a process that died
    with them) do not count."""
    signals = signals or list(SIGNALS)
    unknown = sorted(set(signals) - set(SIGNALS))
    if unknown:
        raise UnprocessableContent(f"unknown signal(s) {', '.join(unknown)}")
    horizon = horizon_days or settings.forecast.horizon_days
    if not 7 <= horizon <= 730:
        raise UnprocessableContent("horizon must be between 7 and 730 days")
    fc = settings.forecast
    run = ForecastRun(
        status="queued",
        engine=engine or fc.engine,
        horizon_days=horizon,
        train_until=train_until,
        params={"signals": signals, "jobs": jobs if jobs is not None else fc.jobs,
                "n_samples": fc.n_samples, "min_spike_count": fc.min_spike_count,
                "p_min": fc.p_min, "decision_origins": fc.decision_origins,
                "decision_min_windows": fc.decision_min_windows,
                "decision_anchor_weeks": fc.decision_anchor_weeks, "warm_start": True},
        requested_by=requested_by,
        owner=process_owner(),  # queued in this process: it dies, the run is interrupted
        heartbeat_at=utcnow(),
    )
    session.add(run)
    if bounded:
        if session.get_bind().dialect.name == "postgresql":  # concurrent requests: one by one
            session.execute(select(func.pg_advisory_xact_lock(_QUEUE_LOCK_KEY)))
        session.flush()  # SQLite: the insert takes the write lock, so requests serialise
        active = session.execute(select(ForecastRun.id, ForecastRun.status).where(
            ForecastRun.status.in_(("queued", "running")), ForecastRun.id != run.id,
            ForecastRun.created_at >= utcnow() - QUEUE_STALE)
            .order_by(ForecastRun.created_at)).all()
        queued = [r.id for r in active if r.status == "queued"]
        if queued:
            session.rollback()
            running = next((r.id for r in active if r.status == "running"), None)
            raise Conflict(f"forecast run {queued[0]} is already queued (one run runs and one "
                           "waits per deployment); ask again when it has started",
                           queued_run=queued[0], running_run=running)
    session.commit()
    return run


#: A queued or running run older than this no longer blocks the queue (its process died).
QUEUE_STALE = dt.timedelta(hours=12)
_QUEUE_LOCK_KEY = 0x0F0E_3A2F
_INTERRUPTED = ("interrupted: the process running this forecast run stopped (a crash or a "
                "restart) before it finished; none of its forecasts, peaks or thresholds "
                "were stored; request it again")


def recover_interrupted_runs(session_factory: sessionmaker[Session], *,
                             stale_after: dt.timedelta = QUEUE_STALE) -> list[str]:
    """Mark ``failed`` ("interrupted") the runs left ``queued`` or ``running`` by a process
    that is gone: on this host, its pid no longer runs (or is this process's pid under
    another start token); on another host, no sign of life (progress) for ``stale_after``.
    None of such a run's forecasts, peaks or thresholds were stored
    (:func:`~service.forecasting.storing.store_results` writes them and the run's outcome in
    one transaction); the decision backtests it had finished are kept, keyed by their
    fingerprint, for the next run to reuse. Returns their ids; called at API start-up, before
    the scheduler's refit and before a CLI run."""
    now = utcnow()
    with session_factory() as s:
        rows = s.execute(select(ForecastRun.id, ForecastRun.owner, ForecastRun.heartbeat_at,
                                ForecastRun.created_at)
                         .where(ForecastRun.status.in_(("queued", "running")))).all()
        dead = [run_id for run_id, owner, beat, created in rows
                if owner_gone(owner, beat or created, now=now, stale_after=stale_after)]
        if dead:
            s.execute(update(ForecastRun).where(
                ForecastRun.id.in_(dead), ForecastRun.status.in_(("queued", "running")))
                .values(status="failed", finished_at=now, error=_INTERRUPTED))
            s.commit()
            log.warning("forecast_runs_interrupted", count=len(dead))
    return dead


class _Progress:
    """Writes progress to the run row at most once a second (own short transactions)."""

    def __init__(self, factory: sessionmaker[Session], run_id: str, offset: int) -> None:
        self.factory, self.run_id, self.offset = factory, run_id, offset
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 1.0 and done < total:
            return
        self.last = now
        with self.factory() as s:
            s.execute(update(ForecastRun).where(ForecastRun.id == self.run_id)
                      .values(done=self.offset + done, heartbeat_at=utcnow()))
            s.commit()


class _Queued(NamedTuple):
    """What a run was asked to do (read from its row when it starts)."""

    params: dict[str, Any]
    engine: str
    horizon: int
    train_until: dt.date | None


def execute_run(
    *,
    session_factory: sessionmaker[Session],
    run_id: str,
    settings: Settings,
    on_progress: Callable[[int, int], None] | None = None,
) -> ForecastRun:
    """Run a queued forecast run to the end; the run row records success or failure."""
    from models.runner import run_forecasts  # loaded before the run's clock starts

    queued = _start(session_factory, run_id)
    t0 = time.perf_counter()
    try:
        _forecast_and_store(session_factory, run_id, settings, queued, t0=t0,
                            on_progress=on_progress, run_forecasts=run_forecasts)
    except Exception as exc:
        FORECAST_RUNS.labels("failed").inc()
        with session_factory() as s:
            s.execute(update(ForecastRun).where(ForecastRun.id == run_id).values(
                status="failed", error=f"{type(exc).__name__}: {exc}"[:2000],
                finished_at=utcnow(),
                durations={"total_seconds": round(time.perf_counter() - t0, 3)}))
            s.commit()
        raise
    with session_factory() as s:
        done = s.get(ForecastRun, run_id)
        assert done is not None
        return done


def _start(session_factory: sessionmaker[Session], run_id: str) -> _Queued:
    """Mark the run running and read its parameters."""
    with session_factory() as s:
        run = s.get(ForecastRun, run_id)
        if run is None:
            raise NotFound(f"forecast run {run_id} does not exist")
        run.status, run.started_at = "running", utcnow()
        run.owner, run.heartbeat_at = process_owner(), run.started_at
        s.commit()
        return _Queued(dict(run.params), run.engine, run.horizon_days, run.train_until)


def _load_frame(session_factory: sessionmaker[Session], run_id: str, queued: _Queued
                ) -> tuple[pd.DataFrame, pd.Series]:
    """The daily frame of the run's signals up to its ``train_until`` and each series' last
    day; records the number of series and the run's cut-off (the latest series end)."""
    with session_factory() as s:
        frames = {sig: daily_frame(session=s, signal=sig, until=queued.train_until)
                  for sig in queued.params["signals"]}
    frame = pd.concat([f for f in frames.values() if len(f)], ignore_index=True) \
        if any(len(f) for f in frames.values()) else None
    if frame is None:
        raise InsufficientHistory("there are no records to forecast from")
    total = int(frame["unique_id"].nunique())
    # each series ends at min(its coverage end, train_until); the run's cut-off is the
    # latest of them
    ends = frame.groupby("unique_id")["ds"].max()
    cutoff = pd.Timestamp(ends.max())
    with session_factory() as s:
        s.execute(update(ForecastRun).where(ForecastRun.id == run_id).values(
            total=total, train_until=cutoff.date()))
        s.commit()
    return frame, ends


def _forecast_and_store(
    session_factory: sessionmaker[Session], run_id: str, settings: Settings, queued: _Queued,
    *, t0: float, on_progress: Callable[[int, int], None] | None,
    run_forecasts: Callable[..., RunResult],
) -> None:
    """Load, fit with ``models.runner.run_forecasts`` (and the decision backtest on the same
    workers), find the peak windows at the decided thresholds, and store everything."""
    params = queued.params
    frame, ends = _load_frame(session_factory, run_id, queued)
    progress = _Progress(session_factory, run_id, 0)

    def report(done: int, tot: int) -> None:
        progress(done, tot)
        if on_progress is not None:
            on_progress(done, tot)

    init = _warm_start(session_factory, set(frame["unique_id"].unique())) \
        if params.get("warm_start", True) else {}
    t_load = time.perf_counter() - t0
    fit_frame = mask_sent_campaigns(session_factory=session_factory, frame=frame)
    fc_params = {"n_samples": params["n_samples"]}
    # thresholds learned on a backtest of the frame handed to the runner (cut at the
    # run's cut-off): no record after it is ever seen (service.forecasting.decisions)
    decider = Decider.prepare(session_factory, params, fit_frame, queued.horizon, fc_params)
    result = run_forecasts(
        fit_frame, horizon=queued.horizon, params=fc_params,
        engine=cast("Engine", queued.engine), n_jobs=params.get("jobs", -1),
        dask_address=settings.forecast.dask_address, on_progress=report,
        init=init or None, backtest=decider.spec,
    )
    t_fit = time.perf_counter() - t0 - t_load
    out = result.output
    decider.decide(session_factory, run_id, result)
    weekly_hist = to_weekly(frame)
    thr = thresholds(weekly_hist, until=ends + pd.Timedelta(days=1),
                     min_spike_count=params["min_spike_count"])
    probs = spike_probabilities(out.weekly_samples, thr)
    peaks = peak_windows(probs, p_min=decider.thresholds, max_weeks=decider.max_weeks,
                         weekly_samples=out.weekly_samples, open_factor=decider.open_factors)
    store_results(session_factory, run_id, result, probs, peaks, t_load, t_fit, t0, decider,
                  settings.forecast.stored_samples)


def _warm_start(factory: sessionmaker[Session], series: set[str]) -> dict[str, dict[str, Any]]:
    """Warm-start parameters from the latest finished run's registry entries."""
    import json
    from types import SimpleNamespace

    import numpy as np

    from models.forecast import warm_start_params

    with factory() as s:
        prev = latest_run(session=s)
        if prev is None:
            return {}
        rows = s.execute(select(FittedModel.series_id, FittedModel.artifact).where(
            FittedModel.run_id == prev.id, FittedModel.model_type == "prophet")).all()
    init: dict[str, dict[str, Any]] = {}
    for series_id, artifact in rows:
        if series_id not in series:
            continue
        stored = json.loads(artifact).get("params") or {}
        try:
            model = SimpleNamespace(params={k: np.asarray(v) for k, v in stored.items()})
            init[series_id] = warm_start_params(model)
        except (KeyError, IndexError, ValueError):
            continue  # an artefact without usable parameters: fit cold
    return init
