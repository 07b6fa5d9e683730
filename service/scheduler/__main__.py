"""``python -m service.scheduler``: the same as ``forewarn scheduler``."""

from __future__ import annotations

import typer

from service.cli.scheduler import scheduler

__all__: list[str] = []

if __name__ == "__main__":
    typer.run(scheduler)
