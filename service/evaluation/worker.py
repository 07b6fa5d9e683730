"""The evaluation worker: recomputes stored answers whose inputs changed, off the request path.

:func:`refresh` computes, in the calling process, every registered answer older than the
input generation (plus the defaults: the scorecard by category, region and department, and
the effect of every sent campaign), one short transaction per answer. One worker at a time
across processes (a claim on ``evaluation_state``). A week that closed since the last run
marks everything stale (the clock is injectable).

Who calls it: the scheduler leader's ``evaluation`` job (every
``FOREWARN_EVALUATION__INTERVAL_SECONDS``) and the API process's :class:`EvaluationExecutor`
when a request finds its answer missing or stale -- both in a **child process** by default
(``FOREWARN_EVALUATION__WORKER=process``), so neither the event loop nor the scheduler's
dispatch ticks share a GIL with pandas; ``thread`` runs it on the calling background thread.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pandas as pd
import structlog
from pydantic import BaseModel
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.series import SeriesId
from service.campaigns.tables import Campaign
from service.config import SHUTDOWN_WAIT_SECONDS, Settings
from service.db import make_engine, make_sessionmaker
from service.errors import ServiceError
from service.evaluation.common import (
    PLACEBO_LOOKBACK_DAYS,
    SENT_STATUSES,
    _campaign_signal,
    weekly_panel,
)
from service.evaluation.effects import campaign_effect_report
from service.evaluation.placebos import placebo_windows
from service.evaluation.pooling import annotate_effect
from service.evaluation.schema import EffectOut, Scorecard
from service.evaluation.scorecards import scorecard
from service.evaluation.storage import effect_key, mark_stale, request, scorecard_key, state
from service.evaluation.tables import STATE_ID, EvaluationResult, EvaluationState
from service.rounding import round_floats
from service.store.tables import utcnow

__all__ = ["refresh", "refresh_in_child", "needs_refresh", "default_signal",
           "EvaluationExecutor", "DEFAULT_GROUPS", "run_refresh"]

log = structlog.get_logger(__name__)
DEFAULT_GROUPS = ("category", "region", "department")
_UNUSED_DAYS = 7  # a query nobody asked for in this long is forgotten (not the defaults)


def default_signal(settings: Settings) -> str:
    return settings.campaigns.signals[0] if settings.campaigns.signals else "complaints"


def _week(now: dt.datetime, settings: Settings) -> dt.date:
    day = now.astimezone(ZoneInfo(settings.timezone)).date()
    return day - dt.timedelta(days=day.weekday())


def needs_refresh(session: Session, settings: Settings, *, now: dt.datetime | None = None
                  ) -> bool:
    """Cheap check (two indexed reads): is any stored answer older than its inputs, or did a
    week close since the last run?"""
    st = state(session)
    if st.week != _week(now or utcnow(), settings):
        return True
    return session.execute(select(EvaluationResult.key).where(
        EvaluationResult.generation < st.generation).limit(1)).first() is not None


def _claim(factory: sessionmaker[Session], holder: str, seconds: float,
           now: dt.datetime) -> bool:
    with factory() as s:
        if s.get(EvaluationState, STATE_ID) is None:
            mark_stale(s, "first evaluation")
        done = s.execute(update(EvaluationState).where(
            EvaluationState.id == STATE_ID,
            or_(EvaluationState.worker_until.is_(None), EvaluationState.worker_until < now,
                EvaluationState.worker == holder)).values(
            worker=holder, worker_until=now + dt.timedelta(seconds=seconds)))
        s.commit()
        return bool(done.rowcount)  # type: ignore[attr-defined]


def _release(factory: sessionmaker[Session], holder: str) -> None:
    with factory() as s:
        s.execute(update(EvaluationState).where(EvaluationState.id == STATE_ID,
                                                EvaluationState.worker == holder)
                  .values(worker=None, worker_until=None))
        s.commit()


def _json(model: BaseModel) -> str:
    """What the route sent before, rendered once: the model's JSON with floats rounded as
    every API answer is (:mod:`service.rounding`), non-finite floats as null."""
    body = model.model_dump(mode="json", by_alias=True, exclude={"materialised"})
    return orjson.dumps(round_floats(body)).decode()  # the route adds ``materialised``


def _store(factory: sessionmaker[Session], kind: str, key: str, generation: int, *,
           body: str | None = None, error: str | None = None) -> None:
    with factory() as s:
        s.execute(update(EvaluationResult).where(
            EvaluationResult.kind == kind, EvaluationResult.key == key).values(
            body=body, error=error, generation=generation, computed_at=utcnow()))
        s.commit()


def _register_defaults(s: Session, settings: Settings) -> None:
    sig = default_signal(settings)
    for group_by in DEFAULT_GROUPS:
        request(s, "scorecard", scorecard_key(group_by=group_by, date_from=None, date_to=None,
                                              signal=sig, pooled_by="category"),
                {"group_by": group_by, "signal": sig, "pooled_by": "category"})
    for cid in s.scalars(select(Campaign.id).where(Campaign.status.in_(SENT_STATUSES))):
        request(s, "effect", effect_key(cid, None), {"campaign_id": cid, "signal": None})


class _EffectInputs:
    """Panels and placebo candidates shared by the effects of one refresh."""

    def __init__(self, session: Session, settings: Settings) -> None:
        self.s, self.settings = session, settings
        self.panels: dict[str, pd.DataFrame] = {}
        self.by_category: dict[tuple[str, str], pd.DataFrame] = {}
        self.placebos: dict[str, pd.DataFrame] = {}
        self.windows: dict[str, list[dt.date]] = {}

    def plan(self, campaigns: Iterable[tuple[Campaign, str]]) -> None:
        for c, sig in campaigns:
            self.windows.setdefault(sig, []).append(c.window_start)

    def panel(self, sig: str, category: str) -> pd.DataFrame:
        if sig not in self.panels:
            self.panels[sig] = weekly_panel(session=self.s, signal=sig)
        key = (sig, category)
        if key not in self.by_category:
            p = self.panels[sig]
            self.by_category[key] = p[SeriesId.part(p["unique_id"], "category") == category]
        return self.by_category[key]

    def placebo(self, sig: str) -> pd.DataFrame:
        if sig not in self.placebos:
            starts = self.windows.get(sig) or [dt.date.today()]
            self.placebos[sig] = placebo_windows(
                session=self.s, signal=sig, panel=self.panels.get(sig), before=max(starts),
                since=min(starts) - dt.timedelta(days=PLACEBO_LOOKBACK_DAYS),
                min_probability=self.settings.campaigns.min_probability)
        return self.placebos[sig]


@dataclass
class _Tally:
    """What one refresh did: answers computed and stored, answers that failed (their error
    stored instead), and whether it was asked to stop before the end."""

    computed: int = 0
    failed: int = 0
    stopped: bool = False

    def store(self, factory: sessionmaker[Session], kind: str, key: str, generation: int,
              answer: Callable[[], str]) -> None:
        """Store ``answer()``, or the service error it raised, as the answer of ``key``."""
        try:
            body = answer()
        except ServiceError as exc:
            self.fail(factory, kind, key, generation, exc)
        else:
            _store(factory, kind, key, generation, body=body)
            self.computed += 1

    def fail(self, factory: sessionmaker[Session], kind: str, key: str, generation: int,
             exc: ServiceError) -> None:
        """Store ``exc`` as the answer of ``key``."""
        _store(factory, kind, key, generation, error=str(exc))
        self.failed += 1


def refresh(*, session_factory: sessionmaker[Session], settings: Settings,
            now: dt.datetime | None = None, holder: str | None = None,
            should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Recompute every stale or missing answer; returns counts (a job-run summary)."""
    now = now or utcnow()
    holder = holder or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    t0 = time.perf_counter()
    if not _claim(session_factory, holder, settings.evaluation.claim_seconds, now):
        return {"skipped": "another worker is recomputing"}
    tally = _Tally()
    stop = should_stop or (lambda: False)
    try:
        generation, todo = _pending(session_factory, settings, now)
        _refresh_effects(session_factory, settings, generation, todo, tally, stop)
        if not tally.stopped:
            _refresh_scorecards(session_factory, settings, generation, todo, tally, stop)
    finally:
        _release(session_factory, holder)
    if tally.stopped:
        return {"stopped": True, "computed": tally.computed, "failed": tally.failed}
    out = {"generation": generation, "computed": tally.computed, "failed": tally.failed,
           "seconds": round(time.perf_counter() - t0, 3)}
    log.info("evaluation_refreshed", **out)
    return out


_Todo = list[tuple[str, str, dict[str, Any] | None]]


def _pending(factory: sessionmaker[Session], settings: Settings, now: dt.datetime
             ) -> tuple[int, _Todo]:
    """The input generation and the answers to recompute: those of an older generation and
    those never answered. Closing a week makes every answer stale; the default answers are
    requested; scorecards nobody asked for in ``_UNUSED_DAYS`` are dropped."""
    with factory() as s:
        week = _week(now, settings)
        if state(s).week not in (None, week):
            mark_stale(s, "a week closed")
        s.execute(update(EvaluationState).where(EvaluationState.id == STATE_ID)
                  .values(week=week))
        _register_defaults(s, settings)
        s.execute(delete(EvaluationResult).where(
            EvaluationResult.kind == "scorecard",
            EvaluationResult.requested_at < now - dt.timedelta(days=_UNUSED_DAYS),
            EvaluationResult.key.notin_([scorecard_key(
                group_by=g, date_from=None, date_to=None, signal=default_signal(settings),
                pooled_by="category") for g in DEFAULT_GROUPS])))
        s.commit()
        generation = state(s).generation
        todo = s.execute(select(EvaluationResult.kind, EvaluationResult.key,
                                EvaluationResult.params).where(
            or_(EvaluationResult.generation < generation,
                EvaluationResult.body.is_(None) & EvaluationResult.error.is_(None)))
            .order_by(EvaluationResult.kind, EvaluationResult.key)).all()
    return generation, [(kind, key, params) for kind, key, params in todo]


def _refresh_effects(factory: sessionmaker[Session], settings: Settings, generation: int,
                     todo: _Todo, tally: _Tally, should_stop: Callable[[], bool]) -> None:
    """Recompute the pending campaign effects, sharing panels and placebo candidates; the
    answers of campaigns that no longer exist or were never sent are deleted."""
    with factory() as s:
        effects: list[tuple[str, Campaign, str | None]] = []
        for kind, key, params in todo:
            if kind != "effect":
                continue
            p = params or {}
            c = s.get(Campaign, p.get("campaign_id"))
            if c is None or c.status not in SENT_STATUSES:
                s.execute(delete(EvaluationResult).where(
                    EvaluationResult.kind == kind, EvaluationResult.key == key))
                s.commit()
                continue
            effects.append((key, c, p.get("signal")))
        inputs = _EffectInputs(s, settings)
        signals: dict[str, str] = {}
        for key, c, sig in effects:
            try:
                signals[key] = _campaign_signal(c, sig)
            except ServiceError as exc:
                tally.fail(factory, "effect", key, generation, exc)
        inputs.plan((c, signals[key]) for key, c, _ in effects if key in signals)
        for key, c, sig in effects:
            if should_stop():
                tally.stopped = True
                return
            if key not in signals:
                continue

            def answer(c: Campaign = c, sig: str | None = sig, key: str = key) -> str:
                report = campaign_effect_report(
                    session=s, campaign_id=c.id, signal=sig,
                    panel=inputs.panel(signals[key], c.category),
                    placebos=inputs.placebo(signals[key]),
                    min_probability=settings.campaigns.min_probability)
                return _json(EffectOut.model_validate(annotate_effect(report)))

            tally.store(factory, "effect", key, generation, answer)


def _refresh_scorecards(factory: sessionmaker[Session], settings: Settings, generation: int,
                        todo: _Todo, tally: _Tally, should_stop: Callable[[], bool]) -> None:
    """Recompute the pending scorecards, each in a session of its own."""
    for kind, key, params in todo:
        if kind != "scorecard":
            continue
        if should_stop():
            tally.stopped = True
            return
        p = params or {}
        with factory() as s:
            def answer(s: Session = s, p: dict[str, Any] = p) -> str:
                result = scorecard(
                    session=s, settings=settings, group_by=p.get("group_by", "category"),
                    date_from=_date(p.get("from")), date_to=_date(p.get("to")),
                    signal=p.get("signal"), pooled_by=p.get("pooled_by", "category"))
                return _json(Scorecard.model_validate(result))

            tally.store(factory, kind, key, generation, answer)


def _date(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(str(value)) if value else None


def _child(settings: Settings) -> dict[str, Any]:
    engine = make_engine(settings.database_url)
    try:
        return refresh(session_factory=make_sessionmaker(engine), settings=settings)
    finally:
        engine.dispose()


def refresh_in_child(settings: Settings) -> dict[str, Any]:
    """:func:`refresh` in a fresh child process (spawned: no state shared with the caller),
    waiting for it; the calling thread holds no GIL meanwhile."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(_child, settings).result()


def run_refresh(session_factory: sessionmaker[Session], settings: Settings,
                should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """One refresh the way the settings ask (child process or this thread)."""
    if settings.evaluation.worker == "process":
        return refresh_in_child(settings)
    return refresh(session_factory=session_factory, settings=settings,
                   should_stop=should_stop)


class EvaluationExecutor:
    """The API process's background worker: :meth:`nudge` (a request found its answer
    missing or stale) starts one refresh on a background thread unless one is running, in
    which case one more follows it. Never on the event loop."""

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings) -> None:
        self._factory, self._settings = session_factory, settings
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evaluation")
        self._lock = threading.Lock()
        self._future: Future[None] | None = None
        self._again = False
        self._running = False  # under the lock; not future.done(), which lags _run's decision
        self._stopping = False

    def nudge(self) -> None:
        if not self._settings.evaluation.background:
            return
        with self._lock:
            if self._running:  # the loop will look at _again before it ends
                self._again = True
                return
            try:
                self._future = self._pool.submit(self._run)
            except RuntimeError:  # shut down (the app is stopping): the scheduler's job runs it
                self._future = None
                return
            self._running = True

    def _run(self) -> None:
        while True:
            with self._lock:
                self._again = False
            if self._stopping:
                break
            try:
                run_refresh(self._factory, self._settings, lambda: self._stopping)
            except Exception as exc:  # logged; the next nudge tries again
                log.error("evaluation_refresh_failed", error_type=type(exc).__name__)
            with self._lock:
                if not self._again:
                    self._running = False
                    return
        with self._lock:
            self._running = False

    def wait(self, timeout: float | None = None) -> None:
        """Block until the refresh in progress (if any) has finished (tests, benchmarks)."""
        f = self._future
        if f is not None:
            f.result(timeout=timeout)

    def shutdown(self, timeout: float = SHUTDOWN_WAIT_SECONDS) -> None:
        """Stop between two answers, and wait up to ``timeout`` seconds for the refresh in
        progress to get there, so that the app disposes of its engine only after the last
        session closed (a refresh in a child process finishes on its own; one still running
        after ``timeout`` is logged and left to end)."""
        self._stopping = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        f = self._future
        if f is None or f.done():
            return
        try:
            f.result(timeout=timeout)
        except FuturesTimeout:
            log.warning("evaluation_refresh_still_running", waited_seconds=timeout)
