"""``forewarn scheduler``: the scheduler as its own process (also ``python -m
service.scheduler``). The scheduler embedded in the API is :mod:`service.scheduler.embedded`."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from service.cli.support import cli_settings

__all__ = ["scheduler"]


def scheduler(
    run_for: Annotated[float | None, typer.Option(
        help="Stop after this many seconds (tests); default: until SIGTERM/SIGINT")] = None,
) -> None:
    """Run the scheduler: stand by until this process leads, then refit, replan and dispatch."""
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
