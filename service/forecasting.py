"""Forecast runs: record, execute (through ``models.runner``), store, and query results.

Workers get frames, never sessions: this module reads the counts, hands a frame to
:func:`models.runner.run_forecasts`, and writes the results in one transaction.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any, cast

import pandas as pd
from sqlalchemy import Select, desc, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.peaks import peak_windows, spike_probabilities, thresholds
from models.series import to_weekly
from service.config import Settings
from service.decisions import Decider
from service.errors import Conflict, InsufficientHistory, NotFound, UnprocessableContent
from service.evaluation.masks import mask_sent_campaigns
from service.metrics import FORECAST_RUNS, PEAKS_FOUND, SERIES_FIT_SECONDS
from service.store.freshness import mark_stale
from service.store.series import SIGNALS, daily_frame, parse_series_id
from service.store.tables import (
    FittedModel,
    ForecastPoint,
    ForecastRun,
    ForecastWeek,
    Peak,
    SeriesIssue,
    utcnow,
)

__all__ = [
    "create_run",
    "execute_run",
    "latest_run",
    "get_run",
    "series_forecast",
    "list_peaks",
    "peaks_query",
    "FINISHED",
    "RunExecutor",
]

FINISHED = ("succeeded", "partial")


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
                      .values(done=self.offset + done))
            s.commit()


def execute_run(
    *,
    session_factory: sessionmaker[Session],
    run_id: str,
    settings: Settings,
    on_progress: Callable[[int, int], None] | None = None,
) -> ForecastRun:
    """Run a queued forecast run to the end; the run row records success or failure."""
    from models.runner import Engine, run_forecasts

    with session_factory() as s:
        run = s.get(ForecastRun, run_id)
        if run is None:
            raise NotFound(f"forecast run {run_id} does not exist")
        run.status, run.started_at = "running", utcnow()
        s.commit()
        params, engine, horizon = dict(run.params), run.engine, run.horizon_days
        train_until = run.train_until
    t0 = time.perf_counter()
    try:
        with session_factory() as s:
            frames = {sig: daily_frame(session=s, signal=sig, until=train_until)
                      for sig in params["signals"]}
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
        # run's cut-off): no record after it is ever seen (service.decisions)
        decider = Decider.prepare(session_factory, params, fit_frame, horizon, fc_params)
        result = run_forecasts(
            fit_frame, horizon=horizon, params=fc_params,
            engine=cast(Engine, engine), n_jobs=params.get("jobs", -1),
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
                             weekly_samples=out.weekly_samples)
        _store(session_factory, run_id, result, probs, peaks, t_load, t_fit, t0, decider,
               settings.forecast.stored_samples)
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


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")  # type: ignore[return-value]


def _day(v: Any) -> dt.date | None:
    return None if v is None or pd.isna(v) else pd.Timestamp(v).date()


def _store(
    factory: sessionmaker[Session], run_id: str, result: Any, probs: pd.DataFrame,
    peaks: pd.DataFrame, t_load: float, t_fit: float, t0: float, decider: Decider,
    stored_samples: int,
) -> None:
    out = result.output
    daily = out.daily.assign(run_id=run_id, series_id=out.daily["unique_id"],
                             ds=pd.to_datetime(out.daily["ds"]).dt.date)
    daily = daily[["run_id", "series_id", "ds", "yhat", "yhat_lower", "yhat_upper", "model"]]
    samples = out.weekly_samples.iloc[:, :stored_samples]
    sample_lists = {
        (uid, pd.Timestamp(week).date()): [round(float(v), 3) for v in row]
        for (uid, week), row in zip(samples.index, samples.to_numpy(), strict=True)
    }
    weeks = probs.assign(run_id=run_id, series_id=probs["unique_id"],
                         week=pd.to_datetime(probs["week"]).dt.date)
    week_rows = _records(weeks[["run_id", "series_id", "week", "expected", "p_spike",
                                "threshold"]])
    for row in week_rows:
        row["samples"] = sample_lists.get((row["series_id"], row["week"]), [])
    peak_rows = []
    for p in _records(peaks):
        sid = parse_series_id(p["unique_id"])
        peak_rows.append({
            "run_id": run_id, "series_id": p["unique_id"], "signal": sid.signal,
            "category": sid.category, "region": sid.region,
            "start": pd.Timestamp(p["start"]).date(), "end": pd.Timestamp(p["end"]).date(),
            "peak_week": pd.Timestamp(p["peak_week"]).date(),
            "expected_count": float(p["expected_count"]),
            "expected_excess": float(p.get("expected_excess", 0.0)),
            "max_probability": float(p["max_probability"]), "threshold": float(p["threshold"]),
            "onset": _day(p["onset"]), "p_min": float(p["p_min"]),
            "window_start": _day(p["window_start"]), "window_end": _day(p["window_end"]),
            "part": int(p["part"]), "parts": int(p["parts"]),
        })
    issues = [{"run_id": run_id, "series_id": r["unique_id"], "kind": "failure",
               "code": "error", "detail": str(r["error"])[:2000]}
              for r in _records(out.failures)]
    issues += [{"run_id": run_id, "series_id": r["unique_id"], "kind": "flag",
                "code": str(r["flag"]), "detail": str(r["detail"])}
               for r in _records(out.flags)]
    fit_seconds: dict[str, float] = getattr(result, "fit_seconds", {}) or {}
    models = [{"run_id": run_id, "series_id": uid, "model_type": "prophet", "artifact": js,
               "fit_seconds": fit_seconds.get(uid)} for uid, js in result.model_json.items()]
    failed = int(out.failures["unique_id"].nunique()) if len(out.failures) else 0
    t_store = time.perf_counter()
    with factory() as s:
        for table, rows in ((ForecastPoint, _records(daily)), (ForecastWeek, week_rows),
                            (Peak, peak_rows), (SeriesIssue, issues), (FittedModel, models)):
            for i in range(0, len(rows), 5000):
                s.execute(insert(table), rows[i:i + 5000])
        run = s.get(ForecastRun, run_id)
        assert run is not None
        run.failed = failed
        run.done = run.total
        run.status = "partial" if failed else "succeeded"
        run.finished_at = utcnow()
        mark_stale(s, "forecast run finished")  # the worker recomputes the evaluation
        FORECAST_RUNS.labels(run.status).inc()
        PEAKS_FOUND.inc(len(peak_rows))
        for seconds in fit_seconds.values():
            SERIES_FIT_SECONDS.observe(seconds)
        run.decisions = decider.document()
        run.durations = {"load_seconds": round(t_load, 3), "fit_seconds": round(t_fit, 3),
                         "store_seconds": round(time.perf_counter() - t_store, 3),
                         "total_seconds": round(time.perf_counter() - t0, 3),
                         "series_fit_seconds_sum": round(sum(fit_seconds.values()), 3),
                         **{k: round(v, 3) for k, v in decider.seconds.items()}}
        s.commit()


def get_run(*, session: Session, run_id: str) -> ForecastRun:
    run = session.get(ForecastRun, run_id)
    if run is None:
        raise NotFound(f"forecast run {run_id} does not exist")
    return run


def latest_run(*, session: Session, series_id: str | None = None) -> ForecastRun | None:
    """The newest finished run (that forecast ``series_id``, when given)."""
    stmt = (select(ForecastRun).where(ForecastRun.status.in_(FINISHED))
            .order_by(desc(ForecastRun.finished_at)))
    if series_id is None:
        return session.scalar(stmt.limit(1))
    # the newest runs usually cover every series: probe them through the primary key
    for run in session.scalars(stmt.limit(20)):
        if session.scalar(select(ForecastWeek.week).where(
                ForecastWeek.run_id == run.id, ForecastWeek.series_id == series_id).limit(1)):
            return run
    return None


def series_forecast(*, session: Session, series_id: str,
                    run_id: str | None = None) -> dict[str, Any]:
    """Daily points and weekly P(spike) of one series from the latest (or a given) run.

    Returns plain dicts (``points``: ds, yhat, yhat_lower, yhat_upper; ``weeks``: week,
    expected, p_spike, threshold; ``flags``) — read with Core selects, no ORM objects.
    """
    parse_series_id(series_id)
    run = get_run(session=session, run_id=run_id) if run_id else latest_run(
        session=session, series_id=series_id)
    if run is None:
        raise NotFound(f"no finished forecast run covers series '{series_id}'")
    fp, fw, si = ForecastPoint, ForecastWeek, SeriesIssue
    points = [r._asdict() for r in session.execute(
        select(fp.ds, fp.yhat, fp.yhat_lower, fp.yhat_upper)
        .where(fp.run_id == run.id, fp.series_id == series_id).order_by(fp.ds))]
    if not points:
        raise NotFound(f"run {run.id} has no forecast for series '{series_id}'")
    weeks = [r._asdict() for r in session.execute(
        select(fw.week, fw.expected, fw.p_spike, fw.threshold)
        .where(fw.run_id == run.id, fw.series_id == series_id).order_by(fw.week))]
    flags = [r._asdict() for r in session.execute(
        select(si.kind, si.code, si.detail).where(si.run_id == run.id,
                                                  si.series_id == series_id))]
    return {"series_id": series_id, "run_id": run.id, "train_until": run.train_until,
            "points": points, "weeks": weeks, "flags": flags}


def peaks_query(*, run_id: str, category: str | None = None, region: str | None = None,
                signal: str | None = None, date_from: dt.date | None = None,
                date_to: dt.date | None = None,
                min_probability: float | None = None) -> Select[Peak]:
    """Peaks of ``run_id`` that match the filters and overlap [from, to] (not yet ordered)."""
    stmt = select(Peak).where(Peak.run_id == run_id)
    if category:
        stmt = stmt.where(Peak.category == category)
    if region:
        stmt = stmt.where(Peak.region == region)
    if signal:
        stmt = stmt.where(Peak.signal == signal)
    if date_from:
        stmt = stmt.where(Peak.end >= date_from)
    if date_to:
        stmt = stmt.where(Peak.start <= date_to)
    if min_probability is not None:
        stmt = stmt.where(Peak.max_probability >= min_probability)
    return stmt


def list_peaks(*, session: Session, run_id: str | None = None, category: str | None = None,
               region: str | None = None, signal: str | None = None,
               date_from: dt.date | None = None, date_to: dt.date | None = None,
               min_probability: float | None = None) -> list[Peak]:
    """Predicted peak windows of the latest (or a given) run that overlap [from, to]."""
    if run_id is None:
        run = latest_run(session=session)
        if run is None:
            return []
        run_id = run.id
    stmt = peaks_query(run_id=run_id, category=category, region=region, signal=signal,
                       date_from=date_from, date_to=date_to, min_probability=min_probability)
    return list(session.scalars(stmt.order_by(Peak.start, desc(Peak.expected_excess))))


class RunExecutor:
    """Runs queued forecast runs one at a time on a background thread of the API process."""

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings,
                 on_finished: Callable[[str], None] | None = None) -> None:
        """``on_finished(run_id)`` is called once a run has ended (finished or failed), e.g.
        to forget the API's memo of the newest finished run."""
        from concurrent.futures import ThreadPoolExecutor

        self._factory = session_factory
        self._settings = settings
        self._on_finished = on_finished
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forecast-run")
        self._futures: list[Any] = []

    def submit(self, run_id: str) -> None:
        self._futures.append(self._pool.submit(self._run, run_id))

    def _run(self, run_id: str) -> None:
        import structlog

        log = structlog.get_logger(__name__)
        try:
            run = execute_run(session_factory=self._factory, run_id=run_id,
                              settings=self._settings)
            log.info("forecast_run_finished", run_id=run_id, status=run.status,
                     series=run.total, failed=run.failed)
        except Exception as exc:  # the run row already records the failure
            log.error("forecast_run_failed", run_id=run_id, error_type=type(exc).__name__)
        finally:
            if self._on_finished is not None:
                self._on_finished(run_id)

    def wait(self, timeout: float | None = None) -> None:
        """Block until every submitted run has finished (tests, shutdown)."""
        from concurrent.futures import wait

        wait(self._futures, timeout=timeout)
        self._futures = [f for f in self._futures if not f.done()]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
