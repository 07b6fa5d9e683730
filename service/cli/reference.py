"""``forewarn reference …``: categories and regions."""

from __future__ import annotations

from pathlib import Path

import typer

from service.cli.support import cli_session, cli_settings, command_group

__all__ = ["reference_app"]

reference_app = command_group("Categories and regions.")


@reference_app.command("load")
def reference_load(
    categories: Path | None = None, regions: Path | None = None
) -> None:
    """Load categories and regions from YAML (default: the configured files)."""
    from service.store.reference import load_reference

    settings = cli_settings()
    with cli_session(settings) as session:
        try:
            counts = load_reference(session=session,
                                    categories_file=categories or settings.categories_file,
                                    regions_file=regions or settings.regions_file)
        except ValueError as exc:  # a malformed file: nothing was written
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
    typer.echo(f"loaded {counts['categories']} categories and {counts['regions']} regions")
