"""The API process's background runner of queued forecast runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.forecasting.runs import execute_run

__all__ = ["RunExecutor"]


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
        """Block until every submitted run has finished (tests, shutdown)."""
        from concurrent.futures import wait

        wait(self._futures, timeout=timeout)
        self._futures = [f for f in self._futures if not f.done()]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
