"""``forewarn series …``: series of daily counts."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli.support import cli_session, cli_settings, command_group, echo_json

__all__ = ["series_app"]

series_app = command_group("Series of daily counts.")

_SERIES_JSON = Annotated[bool, typer.Option("--json", help="Print the series as JSON")]


@series_app.command("list")
def series_list(
    as_json: _SERIES_JSON = False,
    signal: Annotated[str | None, typer.Option(help="complaints or violations")] = None,
) -> None:
    """List series with their first/last record day, total and sources (from the series
    summary kept at import)."""
    from service.store.series import SIGNALS, list_series

    if signal is not None and signal not in SIGNALS:
        raise typer.BadParameter(f"signal must be one of {', '.join(SIGNALS)}")
    with cli_session(cli_settings()) as session:
        items = list_series(session=session, signal=signal)  # page by page, indexed reads
    if as_json:
        echo_json(items)
        return
    for s in items:
        sources = ", ".join(src["name"] for src in s["sources"])
        typer.echo(f"{s['id']:<45} {s['first_date']} … {s['last_date']} {s['total']:>8}  "
                   f"{sources}")
    typer.echo(f"{len(items)} series")
