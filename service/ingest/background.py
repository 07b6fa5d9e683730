"""Background imports of the API: large uploads are queued as a batch and run on a worker
thread (like forecast runs); the client polls the batch URL for progress and the outcome.

At most ``imports.max_queued`` imports wait or run at once; one more is refused with 503 and
``Retry-After`` before anything is stored. On shutdown the running import is interrupted at its
next chunk (nothing of it is published; the shutdown waits for it to record that, at most
``SHUTDOWN_WAIT_SECONDS``) and the queued ones are marked failed ("interrupted");
:func:`service.ingest.pipeline.recover_interrupted` does the same at the next start for a
process that died without shutting down.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.config import SHUTDOWN_WAIT_SECONDS, Settings
from service.ingest.batches import _BatchRef
from service.ingest.jobs import ImportJob
from service.ingest.limits import ImportBusy
from service.ingest.pipeline import run_import
from service.store.tables import ImportBatch, utcnow

__all__ = ["ImportExecutor"]

log = structlog.get_logger(__name__)


class ImportExecutor:
    """Runs queued imports on ``imports.background_workers`` threads of the API process."""

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings) -> None:
        self._factory = session_factory
        self._max = settings.imports.max_queued
        self._pool = ThreadPoolExecutor(max_workers=settings.imports.background_workers,
                                        thread_name_prefix="import")
        self._lock = threading.Lock()
        self._pending = 0
        self._cancel = threading.Event()
        self._futures: dict[str, Future[Any]] = {}

    def reserve(self) -> None:
        """Take a place in the queue (503 when it is full); :meth:`submit` or
        :meth:`release` it."""
        with self._lock:
            if self._pending >= self._max:
                raise ImportBusy(f"{self._pending} imports are already waiting or running "
                                 "(imports.max_queued); retry later", retry_after=60)
            self._pending += 1

    def release(self) -> None:
        with self._lock:
            self._pending -= 1

    def submit(self, batch: _BatchRef, job: ImportJob) -> None:
        job.cancel = self._cancel
        self._futures[batch.id] = self._pool.submit(self._run, batch, job)

    def _run(self, batch: _BatchRef, job: ImportJob) -> None:
        try:
            run_import(self._factory, job, batch)
        except Exception as exc:  # the batch row already records the failure
            log.info("background_import_failed", batch_id=batch.id,
                     error_type=type(exc).__name__)
        finally:
            self.release()
            self._futures.pop(batch.id, None)

    def wait(self, timeout: float | None = None) -> None:
        """Block until every submitted import has finished (tests, shutdown); one cancelled
        by :meth:`shutdown` before it ran counts as finished (no worker ever notifies it, so
        ``concurrent.futures.wait`` would wait out the timeout on it)."""
        wait([f for f in self._futures.values() if not f.cancelled()], timeout=timeout)

    def shutdown(self, timeout: float = SHUTDOWN_WAIT_SECONDS) -> None:
        """Interrupt the running import, drop the queued ones (marked failed), and wait up to
        ``timeout`` seconds for the running one to stop at its next chunk and record that it
        was interrupted, so that the app disposes of its engine only after the import's last
        session closed (one still running after ``timeout`` is logged and left to end)."""
        self._cancel.set()
        queued = [bid for bid, fut in list(self._futures.items()) if fut.cancel()]
        running = [fut for fut in list(self._futures.values()) if not fut.done()]
        self._pool.shutdown(wait=False, cancel_futures=True)
        if queued:
            with self._factory() as s:
                s.execute(update(ImportBatch).where(ImportBatch.id.in_(queued)).values(
                    status="failed", finished_at=utcnow(), error="interrupted: the server "
                    "stopped before this import ran; nothing was imported; send it again"))
                s.commit()
        if running and wait(running, timeout=timeout).not_done:
            log.warning("import_still_running", waited_seconds=timeout)
