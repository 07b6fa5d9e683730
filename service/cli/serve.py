"""``forewarn serve``: the API (and, on request, the scheduler) in this process."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from service.cli.support import cli_settings

__all__ = ["serve"]


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    with_scheduler: Annotated[bool, typer.Option(
        "--with-scheduler",
        help="Also run the scheduler in this process (only the lease holder acts).")] = False,
) -> None:
    """Run the API (applies migrations first)."""
    import uvicorn

    if with_scheduler:
        os.environ["FOREWARN_SCHEDULER__ENABLED"] = "true"
    settings = cli_settings()
    from service.db import make_engine
    from service.migrate import upgrade

    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()  # the server's workers open their own
    uvicorn.run("service.api.main:app", host=host, port=port, workers=workers,
                log_config=None, access_log=False)
