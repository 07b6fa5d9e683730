"""``forewarn scheduler`` (own process) and the hook for ``forewarn serve --with-scheduler``."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from fastapi import FastAPI

    from service.scheduler.runner import SchedulerService

__all__ = ["scheduler", "start_embedded", "stop_embedded"]


def scheduler(
    run_for: Annotated[float | None, typer.Option(
        help="Stop after this many seconds (tests); default: until SIGTERM/SIGINT")] = None,
) -> None:
    """Run the scheduler: stand by until this process leads, then refit, replan and dispatch."""
    from service.cli_support import cli_settings
    from service.migrate import upgrade
    from service.scheduler.runner import SchedulerService

    settings = cli_settings()
    svc = SchedulerService(settings)
    upgrade(svc.engine)
    done = threading.Event()

    def _stop(_sig: int, _frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    svc.start()
    typer.echo(f"scheduler {svc.holder} started (standing by until it leads)", err=True)
    try:
        done.wait(run_for)
    finally:
        svc.stop()
    typer.echo(f"scheduler {svc.holder} stopped", err=True)


def start_embedded(app: FastAPI) -> SchedulerService | None:
    """Start a scheduler inside the API process when ``settings.scheduler.enabled``.

    Call from the FastAPI lifespan (``serve --with-scheduler`` sets
    ``FOREWARN_SCHEDULER__ENABLED=true``). Several API processes may each embed one: only the
    leader acts.
    """
    settings = app.state.settings
    if not settings.scheduler.enabled:
        return None
    from service.scheduler.runner import SchedulerService

    svc = SchedulerService(settings, engine=app.state.engine)
    svc.start()
    app.state.scheduler = svc
    return svc


def stop_embedded(app: FastAPI) -> None:
    svc: SchedulerService | None = getattr(app.state, "scheduler", None)
    if svc is not None:
        svc.stop()
        app.state.scheduler = None
