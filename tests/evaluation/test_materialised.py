"""The materialised evaluation: the API reads stored answers; the worker computes them when
their inputs change (a campaign's status, a closed week), in a child process by default; one
worker at a time; ``service.forecasting`` no longer imports the evaluation's computations."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update

from service.api.numbers import round_floats
from service.campaigns.service import transition
from service.campaigns.tables import Campaign
from service.config import Settings
from service.evaluation.effects import campaign_effect_report
from service.evaluation.pooling import annotate_effect
from service.evaluation.schema import EffectOut, Scorecard
from service.evaluation.scorecards import scorecard
from service.evaluation.storage import effect_key, read, scorecard_key, state
from service.evaluation.tables import STATE_ID, EvaluationResult, EvaluationState
from service.evaluation.worker import needs_refresh, refresh, refresh_in_child
from service.store.tables import utcnow
from tests.conftest import ROOT
from tests.evaluation.conftest import Seeded
from tests.evaluation.test_api import Api

MONDAY = dt.datetime(2026, 11, 30, 4, tzinfo=dt.UTC)  # 12:00 on a Monday in Asia/Shanghai


def test_a_status_change_serves_the_previous_figures_until_recomputed(
        api: Api, seeded: Seeded) -> None:
    client, keys = api
    h = {"X-API-Key": keys["read"]}
    first = client.get("/v1/evaluation", headers=h)
    assert first.status_code == 202 and first.headers["Retry-After"] == "5"
    assert first.json()["materialised"]["computed_at"] is None
    client.app.state.evaluation_executor.wait(120)  # type: ignore[attr-defined]
    before = client.get("/v1/evaluation", headers=h).json()
    assert before["materialised"]["recompute_pending"] is False
    assert before["total"]["campaigns"] == 2  # sent + partially_failed; the draft is not one
    with seeded.factory() as s:  # the draft is approved: the scorecard's inputs changed
        draft = s.get(Campaign, seeded.draft_id)
        assert draft is not None
        transition(session=s, campaign=draft, to="approved", actor="test")
        s.commit()
        assert state(s).reason == "campaign approved"
    stale = client.get("/v1/evaluation", headers=h).json()  # served at once, marked pending
    assert stale["materialised"]["recompute_pending"] is True
    assert stale["materialised"]["computed_at"] == before["materialised"]["computed_at"]
    assert stale["total"]["campaigns"] == 2
    client.app.state.evaluation_executor.wait(120)  # type: ignore[attr-defined]
    after = client.get("/v1/evaluation", headers=h).json()
    assert after["materialised"]["recompute_pending"] is False
    assert after["materialised"]["computed_at"] > before["materialised"]["computed_at"]
    assert after["total"]["campaigns"] == 3


def test_refresh_in_a_child_process_stores_the_defaults(seeded: Seeded,
                                                        settings: Settings) -> None:
    out = refresh_in_child(settings)
    assert out["computed"] == 5 and out["failed"] == 0  # 3 scorecards, 2 sent campaigns
    with seeded.factory() as s:
        for cid in (seeded.sent_id, seeded.pending_id):
            got = read(s, "effect", effect_key(cid, None))
            assert got is not None and got.body is not None and not got.pending
            assert json.loads(got.body)["campaign_id"] == cid
        sc = read(s, "scorecard", scorecard_key(group_by="region", date_from=None,
                                                date_to=None, signal="complaints",
                                                pooled_by="category"))
        assert sc is not None and sc.body is not None
        assert json.loads(sc.body)["group_by"] == "region"
        assert not needs_refresh(s, settings)
        assert s.get(EvaluationState, STATE_ID).worker is None  # type: ignore[union-attr]


def test_a_closed_week_marks_everything_stale(seeded: Seeded, settings: Settings) -> None:
    refresh(session_factory=seeded.factory, settings=settings, now=MONDAY)
    with seeded.factory() as s:
        g = state(s).generation
        assert not needs_refresh(s, settings, now=MONDAY + dt.timedelta(days=6))
        assert needs_refresh(s, settings, now=MONDAY + dt.timedelta(days=7))
    out = refresh(session_factory=seeded.factory, settings=settings,
                  now=MONDAY + dt.timedelta(days=7))
    assert out["computed"] == 5
    with seeded.factory() as s:
        st = state(s)
        assert st.generation == g + 1 and st.reason == "a week closed"
        assert st.week == (MONDAY + dt.timedelta(days=7)).date()
        gens = set(s.scalars(select(EvaluationResult.generation)))
        assert gens == {st.generation}


def test_one_worker_at_a_time(seeded: Seeded, settings: Settings) -> None:
    refresh(session_factory=seeded.factory, settings=settings, now=MONDAY)
    with seeded.factory() as s:
        s.execute(update(EvaluationState).where(EvaluationState.id == STATE_ID).values(
            worker="other:1", worker_until=utcnow() + dt.timedelta(minutes=5)))
        s.commit()
    assert refresh(session_factory=seeded.factory, settings=settings) == {
        "skipped": "another worker is recomputing"}
    with seeded.factory() as s:  # a claim that outlived its worker is taken over
        s.execute(update(EvaluationState).where(EvaluationState.id == STATE_ID).values(
            worker_until=utcnow() - dt.timedelta(seconds=1)))
        s.commit()
    assert "computed" in refresh(session_factory=seeded.factory, settings=settings)


def test_forecasting_does_not_import_the_evaluation_computations() -> None:
    code = ("import sys, service.forecasting; "
            "print(sorted(m for m in sys.modules if m.startswith('service.evaluation')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert "service.evaluation.masks" in out  # marking stale is service.store.freshness
    for heavy in ("scorecards", "effects", "placebos", "charts", "worker", "storage"):
        assert f"service.evaluation.{heavy}'" not in out, out


def test_the_stored_answer_is_what_the_route_computed_per_request(
        seeded: Seeded, settings: Settings) -> None:
    refresh(session_factory=seeded.factory, settings=settings, now=MONDAY)
    with seeded.factory() as s:
        stored = read(s, "scorecard", scorecard_key(
            group_by="category", date_from=None, date_to=None, signal="complaints",
            pooled_by="category"))
        assert stored is not None and stored.body is not None
        direct = Scorecard.model_validate(scorecard(session=s, settings=settings))
        effect = read(s, "effect", effect_key(seeded.sent_id, None))
        assert effect is not None and effect.body is not None
        direct_effect = EffectOut.model_validate(annotate_effect(campaign_effect_report(
            session=s, campaign_id=seeded.sent_id,
            min_probability=settings.campaigns.min_probability)))
    for body, model in ((stored.body, direct), (effect.body, direct_effect)):
        expected = json.loads(orjson.dumps(round_floats(model.model_dump(
            mode="json", by_alias=True, exclude={"materialised"}))))
        assert json.loads(body) == expected


def test_shutdown_waits_for_the_background_refresh_to_stop(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app disposes of its engine after the executor's shutdown: a refresh still using a
    session then would leave an open connection behind. Shutdown asks the refresh to stop
    between two answers and returns once it has."""
    from service.evaluation import worker

    started, stopped = threading.Event(), threading.Event()

    def refresh_until_asked(factory: object, s: Settings,
                            should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
        started.set()
        assert should_stop is not None
        while not should_stop():  # the refresh's own check between two answers
            time.sleep(0.01)
        stopped.set()
        return {"stopped": True}

    monkeypatch.setattr(worker, "run_refresh", refresh_until_asked)
    ex = worker.EvaluationExecutor(None, settings)  # type: ignore[arg-type]
    ex.nudge()
    assert started.wait(10)
    ex.shutdown(timeout=10)
    assert stopped.is_set()


def test_shutdown_gives_up_waiting_after_its_timeout(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refresh that does not stop (one in a child process finishes on its own) keeps the
    shutdown no longer than its timeout."""
    from service.evaluation import worker

    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def refresh_that_ignores_stop(factory: object, s: Settings,
                                  should_stop: Callable[[], bool] | None = None
                                  ) -> dict[str, Any]:
        started.set()
        release.wait(30)
        finished.set()
        return {}

    monkeypatch.setattr(worker, "run_refresh", refresh_that_ignores_stop)
    ex = worker.EvaluationExecutor(None, settings)  # type: ignore[arg-type]
    ex.nudge()
    assert started.wait(10)
    t0 = time.monotonic()
    ex.shutdown(timeout=0.2)
    waited = time.monotonic() - t0
    still_running = not finished.is_set()
    release.set()
    assert still_running and waited < 10
    ex.wait(10)
    assert finished.is_set()


def test_a_nudge_as_the_refresh_ends_is_not_lost(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A nudge that arrives after the refresh loop decided to end but before its future
    counts as done starts a new refresh (it used to set a flag nobody read again, leaving the
    answer stale until the next request)."""
    from service.evaluation import worker

    refreshes: list[int] = []
    ex = worker.EvaluationExecutor(None, settings)  # type: ignore[arg-type]

    def counted_refresh(*args: object, **kwargs: object) -> dict[str, Any]:
        refreshes.append(1)
        return {}

    monkeypatch.setattr(worker, "run_refresh", counted_refresh)

    class NudgeAfterTheLoopsLastLook:
        """The executor's lock; on the worker thread's second release (the loop's "anything
        more?" look after its first refresh) it nudges once, as a request would."""

        def __init__(self) -> None:
            self.lock, self.releases, self.fired = threading.Lock(), 0, False

        def __enter__(self) -> None:
            self.lock.acquire()

        def __exit__(self, *exc: object) -> None:
            self.lock.release()
            if threading.current_thread().name.startswith("evaluation"):
                self.releases += 1
                if self.releases == 2 and not self.fired:
                    self.fired = True
                    ex.nudge()

    monkeypatch.setattr(ex, "_lock", NudgeAfterTheLoopsLastLook())
    ex.nudge()
    deadline = time.monotonic() + 30
    while len(refreshes) < 2 and time.monotonic() < deadline:
        ex.wait(10)
    ex.shutdown(timeout=10)
    assert len(refreshes) == 2
