"""What every ``forewarn`` command needs: settings, a migrated session, JSON output, dates."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.errors import ServiceError
from service.logging import configure_logging

__all__ = ["cli_settings", "cli_session", "echo_json", "parse_date"]


def cli_settings() -> Settings:
    """The deployment's settings, with logging configured from them."""
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


@contextmanager
def cli_session(settings: Settings, *, conflict_exit: int = 2) -> Iterator[Session]:
    """A session on a migrated database; the engine is disposed afterwards.

    A :class:`ServiceError` raised inside the block is printed as ``error: <detail>`` and ends
    the command with exit code 2 (``conflict_exit`` for a 409).
    """
    from service.migrate import upgrade

    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        with make_sessionmaker(engine)() as session:
            yield session
    except ServiceError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(conflict_exit if exc.status == 409 else 2) from exc
    finally:
        engine.dispose()


def echo_json(value: Any) -> None:
    """Print ``value`` as indented UTF-8 JSON (dates and other objects via ``str``)."""
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def parse_date(value: str | None, name: str) -> dt.date | None:
    """``YYYY-MM-DD`` → date (``None`` stays ``None``); a bad value is a usage error."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{name} must be YYYY-MM-DD") from exc
