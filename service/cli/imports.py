"""``forewarn import …``: complaint or enforcement records from files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from service.cli.support import cli_settings, command_group, echo_json, paused_gc

if TYPE_CHECKING:
    from service.ingest import BatchSummary

__all__ = ["import_app"]

import_app = command_group("Import complaint or enforcement records.")


def _import(kind: Literal["complaints", "enforcement"], path: Path, source: str | None,
            maps: list[str], mapping_file: Path | None, register_new: bool, as_json: bool,
            force: bool = False, date_order: str | None = None,
            encoding: str | None = None, coverage: str | None = None) -> None:
    """One import from the command line: exit 0 when records were imported (or the file had
    none: a warning), 1 when every row was rejected, 2 when the file as a whole failed (one
    ``error:`` line naming the batch); never a traceback."""
    from service.errors import ServiceError
    from service.ingest import (
        ImportLimits,
        import_file,
        load_mapping_file,
        parse_mapping_pairs,
        recover_interrupted,
    )

    try:
        extra = parse_mapping_pairs(maps)
        mapping = {**(load_mapping_file(mapping_file) if mapping_file else {}), **extra}
    except ServiceError as exc:
        raise typer.BadParameter(exc.detail) from exc
    settings = cli_settings()
    from service.db import make_engine, make_sessionmaker
    from service.migrate import upgrade

    engine = make_engine(settings.database_url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    try:
        recover_interrupted(factory,
                            stale_after_seconds=settings.imports.stale_after_seconds)
        with paused_gc():
            summary = import_file(
                session_factory=factory, kind=kind, path=path, filename=path.name,
                source=source, mapping=mapping or None, register_new=register_new,
                chunk_rows=settings.import_chunk_rows, tz=settings.timezone, force=force,
                date_order=date_order, encoding=encoding, coverage=coverage,
                limits=ImportLimits.from_settings(settings.imports))
    except ServiceError as exc:
        batch = exc.extensions.get("batch_id")
        typer.echo(f"error: {exc.detail}" + (f" (batch {batch})" if batch else ""), err=True)
        raise typer.Exit(2) from exc
    except KeyboardInterrupt as exc:
        typer.echo("error: interrupted; nothing of this import was published", err=True)
        raise typer.Exit(130) from exc
    except Exception as exc:  # one clear line, never a traceback
        typer.echo(f"error: the import failed ({type(exc).__name__}: {str(exc)[:300]}); "
                   "nothing of it was published", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    for warning in summary.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        echo_json(summary.model_dump(mode="json"))
    else:
        _print_summary(summary)
    if summary.status == "rejected":
        typer.echo(f"error: every row of the file was rejected; nothing was imported "
                   f"(batch {summary.batch_id})", err=True)
        raise typer.Exit(1)


def _print_summary(summary: BatchSummary) -> None:
    """The batch's counts and its first 20 rejected rows."""
    typer.echo(f"batch {summary.batch_id} {summary.status}: received {summary.received}, "
               f"inserted {summary.inserted}, duplicates {summary.duplicates}, rejected "
               f"{summary.rejected}")
    if summary.errors:
        typer.echo("  (rows are data rows, counted from 1 after the header)")
    for err in summary.errors[:20]:
        typer.echo(f"  data row {err.row}: {err.field or '-'}: {err.problem}: "
                   f"{err.detail}")
    if summary.rejected > 20:
        typer.echo(f"  … {summary.rejected - 20} more; GET /v1/import-batches/"
                   f"{summary.batch_id}/rejected lists all")


_SOURCE = Annotated[str | None, typer.Option(help="Source name when the file has none")]
_MAP = Annotated[list[str] | None, typer.Option("--map", help="FIELD=COLUMN, repeatable")]
_MAPPING = Annotated[Path | None, typer.Option("--mapping", help="YAML/JSON mapping file")]
_REGISTER = Annotated[bool, typer.Option("--register-new",
                                         help="Register unknown categories and regions")]
_JSON = Annotated[bool, typer.Option("--json", help="Print the batch summary as JSON")]
_COVERAGE = Annotated[str | None, typer.Option(
    "--coverage", metavar="FROM..TO",
    help="Days the file's sources cover, e.g. 2014-01-01..2014-12-31 (every record must fall "
         "inside; default: first to last record day)")]
_FORCE = Annotated[bool, typer.Option(
    "--force", help="Import a file that was imported before (and records already stored "
    "under another source)")]
_DATE_ORDER = Annotated[str | None, typer.Option(
    "--date-order", help="How dates with the year last (01/02/2013) are read: dmy, mdy or "
    "ymd (not accepted); default: the file decides (a day above 12)")]
_ENCODING = Annotated[str | None, typer.Option(
    "--encoding", help="Text encoding of the file (default: detected among UTF-8, UTF-16 "
    "with BOM, GB18030/GBK and Big5)")]


def _import_command(kind: Literal["complaints", "enforcement"], what: str
                    ) -> Callable[..., None]:
    """The ``forewarn import <kind>`` command (one per kind, the same options)."""

    def command(path: Path, source: _SOURCE = None, map_: _MAP = None,
                mapping: _MAPPING = None, register_new: _REGISTER = False,
                as_json: _JSON = False, force: _FORCE = False,
                date_order: _DATE_ORDER = None, encoding: _ENCODING = None,
                coverage: _COVERAGE = None) -> None:
        _import(kind, path, source, map_ or [], mapping, register_new, as_json, force,
                date_order, encoding, coverage)

    command.__name__ = f"import_{kind}"
    command.__doc__ = f"Import {what} from CSV, XLSX, JSON or JSON Lines (optionally .gz)."
    return command


import_app.command("complaints")(_import_command("complaints", "complaint records"))
import_app.command("enforcement")(_import_command("enforcement", "enforcement actions"))
