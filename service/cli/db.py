"""``forewarn db …``: database migrations."""

from __future__ import annotations

import typer

from service.cli.support import cli_settings, command_group

__all__ = ["db_app"]

db_app = command_group("Database migrations.")


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from service.db import make_engine
    from service.migrate import current_revision, upgrade

    settings = cli_settings()
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine, revision)
        typer.echo(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()


@db_app.command("current")
def db_current() -> None:
    """Print the database's current revision and the head revision."""
    from service.db import make_engine
    from service.migrate import current_revision, head_revision

    engine = make_engine(cli_settings().database_url)
    try:
        typer.echo(f"current {current_revision(engine)} head {head_revision()}")
    finally:
        engine.dispose()
