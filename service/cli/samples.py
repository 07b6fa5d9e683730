"""``forewarn samples …``: the synthetic sample data set."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

import typer

from service.cli.support import cli_session, cli_settings, command_group, echo_json, paused_gc

__all__ = ["samples_app"]

samples_app = command_group("The synthetic Inner Mongolia sample data.")


@samples_app.command("generate")
def samples_generate(
    seed: int = 20201118,
    out: Annotated[Path | None, typer.Option(help="Output folder (default data/samples)")] = None,
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD)")] = "2019-01-01",
    end: Annotated[str, typer.Option(help="Last day (YYYY-MM-DD)")] = "2026-10-31",
) -> None:
    """Generate the deterministic sample data set."""
    from service.samples.generator import generate

    settings = cli_settings()
    summary = generate(out or settings.samples_dir, seed=seed,
                       start=dt.date.fromisoformat(start), end=dt.date.fromisoformat(end))
    echo_json(summary)


@samples_app.command("load")
def samples_load(
    if_empty: Annotated[bool, typer.Option(
        "--if-empty", help="Do nothing when the database already holds records.")] = False,
) -> None:
    """Load the reference data and import the sample complaints and enforcement actions."""
    from sqlalchemy import func, select

    from service.db import make_engine, make_sessionmaker
    from service.ingest import import_file
    from service.store.reference import load_reference
    from service.store.tables import Complaint

    settings = cli_settings()
    with cli_session(settings) as session:
        if if_empty and session.scalar(select(func.count()).select_from(Complaint)):
            typer.echo("database already holds records; sample data not loaded")
            return
        load_reference(session=session, categories_file=settings.categories_file,
                       regions_file=settings.regions_file)
    engine = make_engine(settings.database_url)
    try:
        factory = make_sessionmaker(engine)
        samples: tuple[tuple[Literal["complaints", "enforcement"], str], ...] = (
            ("complaints", "complaints.csv.gz"), ("enforcement", "enforcement.csv.gz"))
        for kind, name in samples:
            with paused_gc():
                summary = import_file(session_factory=factory, kind=kind,
                                      path=settings.samples_dir / name, filename=name,
                                      chunk_rows=settings.import_chunk_rows, tz=settings.timezone,
                                      force=True)
            typer.echo(f"{kind}: received {summary.received}, inserted {summary.inserted}, "
                       f"duplicates {summary.duplicates}, rejected {summary.rejected}")
    finally:
        engine.dispose()
