"""The scheduler inside the API process: the hook for ``forewarn serve --with-scheduler``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from service.scheduler.runner import SchedulerService

__all__ = ["start_embedded", "stop_embedded"]


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
