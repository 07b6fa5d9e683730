"""The ``forewarn`` command line: the top-level app and its command groups.

One module per command group (``db``, ``samples``, ``series``, ``imports``, ``keys``,
``reference``, ``campaigns``, ``operators``) or per top-level command (``serve``,
``forecast``/``peaks``, ``backtest``, ``scheduler``, ``evaluation``); ``support`` holds what
every command needs. Start-up stays light: these modules import only ``typer`` at module
level, everything else inside the commands (``tests/service/test_cli_startup.py``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli.backtest import backtest
from service.cli.campaigns import campaigns_app, plan
from service.cli.db import db_app
from service.cli.evaluation import evaluate
from service.cli.forecast import forecast, peaks
from service.cli.imports import import_app
from service.cli.keys import keys_app
from service.cli.operators import dispatch_app, dispatches_app, recipients_app
from service.cli.reference import reference_app
from service.cli.samples import samples_app
from service.cli.scheduler import scheduler
from service.cli.series import series_app
from service.cli.serve import serve
from service.cli.support import command_group, set_verbosity

__all__ = ["app"]

app = command_group("Forewarn: forecast violation spikes and send reminders before them.")


@app.callback()
def _main(verbose: Annotated[int, typer.Option(
        "--verbose", "-v", count=True,
        help="Log progress to stderr (-v info, -vv debug); quiet by default")] = 0) -> None:
    """Forewarn: forecast violation spikes and send reminders before them."""
    set_verbosity(verbose)


# commands, then groups, in the order ``forewarn --help`` lists them
app.command()(serve)
app.command()(forecast)
app.command()(peaks)
app.command()(backtest)
app.command(help="Run the scheduler as its own process (one acts; others stand by).")(scheduler)
app.command("plan")(plan)
app.command("evaluate")(evaluate)
app.add_typer(db_app, name="db")
app.add_typer(samples_app, name="samples")
app.add_typer(series_app, name="series")
app.add_typer(import_app, name="import")
app.add_typer(keys_app, name="keys")
app.add_typer(reference_app, name="reference")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(recipients_app, name="recipients")
app.add_typer(dispatches_app, name="dispatches")
app.add_typer(dispatch_app, name="dispatch")
