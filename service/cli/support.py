"""What every ``forewarn`` command needs: settings, a migrated session, JSON output, dates,
the actor and local times.

Start-up matters here (``forewarn --help`` must answer in well under half a second): this
module and the command modules import only ``typer`` at module level; settings, SQLAlchemy,
structlog, pandas and the rest are imported inside the commands that need them.

Logging of CLI commands goes to stderr in a human format and is quiet by default (warnings
and errors only), so it never mixes with a command's output on stdout; ``forewarn -v …`` or
an explicit ``FOREWARN_LOG_LEVEL`` / ``FOREWARN_LOG_JSON`` changes that. ``forewarn serve``
logs JSON lines (its logging is configured by :mod:`service.api.main`).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from service.gcpause import paused_gc

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from service.config import Settings

__all__ = ["command_group", "cli_settings", "cli_session", "echo_json", "parse_date",
           "set_verbosity", "cli_log_options", "paused_gc", "cli_actor", "local_time"]


def command_group(help: str) -> typer.Typer:
    """A ``typer.Typer`` for a command group: plain click help (no rich import, which alone
    costs ~0.3 s of start-up), usage shown when called without a command."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None,
                       pretty_exceptions_enable=False)


#: 0: warnings only (default); 1: info (``-v``); 2: debug (``-vv``)
_VERBOSITY = 0


def set_verbosity(level: int) -> None:
    """Set by the ``-v`` option of the ``forewarn`` callback."""
    global _VERBOSITY
    _VERBOSITY = level


def cli_log_options(settings: Settings) -> tuple[str, bool]:
    """``(level, json)`` for a CLI command: quiet human logs unless asked otherwise."""
    explicit = settings.model_fields_set
    if _VERBOSITY:
        level = "DEBUG" if _VERBOSITY > 1 else "INFO"
    else:
        level = settings.log_level if "log_level" in explicit else "WARNING"
    as_json = settings.log_json if "log_json" in explicit else False
    return level, as_json


def cli_settings() -> Settings:
    """The deployment's settings, with the CLI's logging configured from them."""
    from service.config import Settings
    from service.logging import configure_logging

    settings = Settings()
    level, as_json = cli_log_options(settings)
    configure_logging(level, json=as_json)
    return settings


@contextmanager
def cli_session(settings: Settings, *, conflict_exit: int = 2) -> Iterator[Session]:
    """A session on a migrated database; the engine is disposed afterwards.

    A :class:`ServiceError` raised inside the block is printed as ``error: <detail>`` and ends
    the command with exit code 2 (``conflict_exit`` for a 409).
    """
    from service.db import make_engine, make_sessionmaker
    from service.errors import ServiceError
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


def cli_actor() -> str:
    """The actor recorded for what a command changes: ``cli:<login name>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"[:100]


def local_time(value: dt.datetime | None, tz: str) -> str:
    """``YYYY-MM-DD HH:MM +08:00`` in the deployment's zone (``never`` for None)."""
    if value is None:
        return "never"
    from zoneinfo import ZoneInfo

    from service.store.base import as_utc  # lazily: --help must not load SQLAlchemy

    return as_utc(value).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %z").replace(
        " +0800", " +08:00")
