"""The API process's background runner of queued forecast runs."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.forecasting.runs import execute_run
from service.store.base import utcnow
from service.store.tables import ForecastRun

__all__ = ["RunExecutor"]


class RunExecutor:
    """Runs queued forecast runs one at a time on a background thread of the API process."""

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings,
                 on_finished: Callable[[str], None] | None = None) -> None:
        """``on_finished(run_id)`` is called once a run has ended (finished or failed), e.g.
        to forget the API's memo of the newest finished run."""
        self._factory = session_factory
        self._settings = settings
        self._on_finished = on_finished
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forecast-run")
        self._futures: dict[str, Future[None]] = {}

    def submit(self, run_id: str) -> None:
        # finished runs' futures go here (wait() prunes too): the map holds only open runs
        self._futures = {k: f for k, f in self._futures.items() if not f.done()}
        self._futures[run_id] = self._pool.submit(self._run, run_id)

    def _run(self, run_id: str) -> None:
        import structlog

        log = structlog.get_logger("service.forecasting")  # the name its log lines had
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
        """Block until every submitted run has finished (tests, shutdown). A run cancelled
        before it started (:meth:`shutdown`) counts as finished: ``concurrent.futures.wait``
        would wait out the timeout on it, as no worker ever takes it to notify it."""
        wait([f for f in self._futures.values() if not f.cancelled()], timeout=timeout)
        self._futures = {rid: f for rid, f in self._futures.items() if not f.done()}

    def shutdown(self) -> None:
        """Take no more runs. The queued runs this process would have run are marked failed
        ("interrupted", nothing stored), so that none holds the deployment's one waiting place
        (a queued run blocks new ones with 409); a run already running goes on to its end, as
        it has no stop point between fits."""
        cancelled = [rid for rid, f in list(self._futures.items()) if f.cancel()]
        self._pool.shutdown(wait=False, cancel_futures=True)
        if not cancelled:
            return
        with self._factory() as s:
            s.execute(update(ForecastRun).where(ForecastRun.id.in_(cancelled),
                                                ForecastRun.status == "queued").values(
                status="failed", finished_at=utcnow(), error="interrupted: the server stopped "
                "before this run started; nothing was stored; request it again"))
            s.commit()
