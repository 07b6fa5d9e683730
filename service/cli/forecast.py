"""``forewarn forecast`` and ``forewarn peaks``: forecast runs and their campaign windows."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from service.cli.support import cli_session, cli_settings, echo_json

__all__ = ["forecast", "peaks", "parse_horizon"]

_PEAKS_JSON = Annotated[bool, typer.Option("--json", help="Print the peak windows as JSON")]


def parse_horizon(value: str) -> int:
    """``26w`` → 182 days, ``90d`` or ``90`` → 90 days."""
    v = value.strip().lower()
    try:
        if v.endswith("w"):
            return int(v[:-1]) * 7
        return int(v[:-1]) if v.endswith("d") else int(v)
    except ValueError as exc:
        raise typer.BadParameter(f"horizon '{value}' is not like 26w or 90d") from exc


def forecast(
    horizon: Annotated[str, typer.Option(help="Horizon, e.g. 26w or 180d")] = "26w",
    train_until: Annotated[str | None, typer.Option(
        help="Use only records up to this day (YYYY-MM-DD)")] = None,
    engine: Annotated[str | None, typer.Option(help="local, dask or serial")] = None,
    jobs: Annotated[int | None, typer.Option(help="Worker processes (-1 = all cores)")] = None,
    signal: Annotated[list[str] | None, typer.Option(
        help="complaints and/or violations (repeatable; default both)")] = None,
    if_none: Annotated[bool, typer.Option(
        "--if-none", help="Do nothing when a finished run exists (first start)")] = False,
) -> None:
    """Fit every series, forecast, and store forecasts and predicted peaks (progress bar)."""
    from rich.progress import Progress

    from service.db import make_engine, make_sessionmaker
    from service.errors import ServiceError
    from service.forecasting import create_run, execute_run, latest_run, recover_interrupted_runs

    settings = cli_settings()
    if if_none:
        with cli_session(settings) as session:
            existing = latest_run(session=session)
        if existing is not None:
            typer.echo(f"forecast run {existing.id} exists; not forecasting again")
            return
    days = parse_horizon(horizon)
    until = dt.date.fromisoformat(train_until) if train_until else None
    if engine not in (None, "local", "dask", "serial"):
        raise typer.BadParameter("engine must be local, dask or serial")
    db = make_engine(settings.database_url)
    try:
        factory = make_sessionmaker(db)
        recover_interrupted_runs(factory)  # runs a dead process left "running": failed
        with cli_session(settings) as session:
            try:
                run = create_run(session=session, settings=settings, horizon_days=days,
                                 train_until=until, engine=engine, jobs=jobs, signals=signal,
                                 requested_by="cli")
            except ServiceError as exc:
                raise typer.BadParameter(exc.detail) from exc
        with Progress(transient=True) as bar:
            task = bar.add_task("fitting series", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                done = execute_run(session_factory=factory, run_id=run.id, settings=settings,
                                   on_progress=progress)
            except ServiceError as exc:
                typer.echo(f"error: {exc.detail}", err=True)
                raise typer.Exit(2) from exc
    finally:
        db.dispose()  # the run's own engine: no connection left open
    typer.echo(f"run {done.id}: {done.status}, {done.total} series, {done.failed} failed, "
               f"data until {done.train_until}, {done.durations.get('total_seconds')} s")
    from service.forecasting.decisions import summary_lines

    for line in summary_lines(done.decisions):
        typer.echo(line)


def peaks(
    as_json: _PEAKS_JSON = False,
    min_probability: Annotated[float | None, typer.Option(help="Only peaks at least this likely")
                               ] = None,
    category: str | None = None,
    region: str | None = None,
    lang: Annotated[str, typer.Option(help="Language of the explanations: en or zh")] = "en",
) -> None:
    """Campaign windows of the latest forecast run, with the decision threshold and expected
    onset of each, and why the run warns at that threshold (per category)."""
    from service.forecasting import latest_run, list_peaks
    from service.forecasting.decisions import public_decision

    if lang not in ("en", "zh"):
        raise typer.BadParameter("lang must be en or zh")
    with cli_session(cli_settings()) as session:
        found = list_peaks(session=session, category=category, region=region,
                           min_probability=min_probability)
        run = latest_run(session=session)
        document = run.decisions if run is not None else {}
    decisions = {c: public_decision(document, c, language=lang)
                 for c in sorted({p.category for p in found})}
    rows: list[dict[str, Any]] = [
            {"series_id": p.series_id, "start": p.start, "end": p.end, "onset": p.onset,
             "peak_week": p.peak_week, "expected_count": round(p.expected_count, 1),
             "expected_excess": round(p.expected_excess, 1),
             "max_probability": round(p.max_probability, 3),
             "threshold": round(p.threshold, 1),
             "p_min": None if p.p_min is None else round(p.p_min, 4),
             "window_start": p.window_start, "window_end": p.window_end, "part": p.part,
             "parts": p.parts, "run_id": p.run_id, "decision": decisions.get(p.category)}
            for p in found]
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        part = f"  part {r['part']}/{r['parts']}" if (r["parts"] or 1) > 1 else ""
        p_min = "   n/a" if r["p_min"] is None else f"{r['p_min']:.3f}"
        typer.echo(f"{r['series_id']:<42} {r['start']} … {r['end']}  onset "
                   f"{r['onset'] or '—'}  P={r['max_probability']:.2f} >= p_min {p_min}  "
                   f"expected {r['expected_count']:.0f} (T={r['threshold']:.0f}){part}")
    typer.echo(f"{len(rows)} campaign windows")
    for code, d in decisions.items():
        if d is not None:
            typer.echo(f"{code}: {d['explanation']}")
