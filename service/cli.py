"""The ``forewarn`` command line."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from service.cli_support import (
    cli_session,
    cli_settings,
    command_group,
    echo_json,
    set_verbosity,
)

__all__ = ["app"]

app = command_group("Forewarn: forecast violation spikes and send reminders before them.")
db_app = command_group("Database migrations.")
samples_app = command_group("The synthetic Inner Mongolia sample data.")
series_app = command_group("Series of daily counts.")
import_app = command_group("Import complaint or enforcement records.")
keys_app = command_group("API keys.")
reference_app = command_group("Categories and regions.")
app.add_typer(db_app, name="db")
app.add_typer(samples_app, name="samples")
app.add_typer(series_app, name="series")
app.add_typer(import_app, name="import")
app.add_typer(keys_app, name="keys")
app.add_typer(reference_app, name="reference")


@app.callback()
def _main(verbose: Annotated[int, typer.Option(
        "--verbose", "-v", count=True,
        help="Log progress to stderr (-v info, -vv debug); quiet by default")] = 0) -> None:
    """Forewarn: forecast violation spikes and send reminders before them."""
    set_verbosity(verbose)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from service.db import make_engine
    from service.migrate import current_revision, upgrade

    settings = cli_settings()
    engine = make_engine(settings.database_url)
    upgrade(engine, revision)
    typer.echo(f"database at revision {current_revision(engine)}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's current revision and the head revision."""
    from service.db import make_engine
    from service.migrate import current_revision, head_revision

    engine = make_engine(cli_settings().database_url)
    typer.echo(f"current {current_revision(engine)} head {head_revision()}")


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    with_scheduler: Annotated[bool, typer.Option(
        "--with-scheduler",
        help="Also run the scheduler in this process (only the lease holder acts).")] = False,
) -> None:
    """Run the API (applies migrations first)."""
    import uvicorn

    if with_scheduler:
        os.environ["FOREWARN_SCHEDULER__ENABLED"] = "true"
    settings = cli_settings()
    from service.db import make_engine
    from service.migrate import upgrade

    upgrade(make_engine(settings.database_url))
    uvicorn.run("service.api.main:app", host=host, port=port, workers=workers,
                log_config=None, access_log=False)


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
    factory = make_sessionmaker(make_engine(settings.database_url))
    samples: tuple[tuple[Literal["complaints", "enforcement"], str], ...] = (
        ("complaints", "complaints.csv.gz"), ("enforcement", "enforcement.csv.gz"))
    for kind, name in samples:
        summary = import_file(session_factory=factory, kind=kind,
                              path=settings.samples_dir / name, filename=name,
                              chunk_rows=settings.import_chunk_rows, tz=settings.timezone,
                              force=True, pause_gc=True)
        typer.echo(f"{kind}: received {summary.received}, inserted {summary.inserted}, "
                   f"duplicates {summary.duplicates}, rejected {summary.rejected}")


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
        summary = import_file(session_factory=factory, kind=kind, path=path,
                              filename=path.name, source=source, mapping=mapping or None,
                              register_new=register_new, chunk_rows=settings.import_chunk_rows,
                              tz=settings.timezone, force=force, date_order=date_order,
                              encoding=encoding, coverage=coverage,
                              limits=ImportLimits.from_settings(settings.imports),
                              pause_gc=True)
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
    if summary.status == "rejected":
        typer.echo(f"error: every row of the file was rejected; nothing was imported "
                   f"(batch {summary.batch_id})", err=True)
        raise typer.Exit(1)


_SOURCE = Annotated[str | None, typer.Option(help="Source name when the file has none")]
_MAP = Annotated[list[str] | None, typer.Option("--map", help="FIELD=COLUMN, repeatable")]
_MAPPING = Annotated[Path | None, typer.Option("--mapping", help="YAML/JSON mapping file")]
_REGISTER = Annotated[bool, typer.Option("--register-new",
                                         help="Register unknown categories and regions")]
_JSON = Annotated[bool, typer.Option("--json", help="Print the batch summary as JSON")]
_SERIES_JSON = Annotated[bool, typer.Option("--json", help="Print the series as JSON")]
_PEAKS_JSON = Annotated[bool, typer.Option("--json", help="Print the peak windows as JSON")]
_BACKTEST_JSON = Annotated[bool, typer.Option(
    "--json", help="Print the scores by model (and the p_min curve) as JSON")]
_KEYS_JSON = Annotated[bool, typer.Option(
    "--json", help="Print the keys (never their secrets) as JSON")]
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


@import_app.command("complaints")
def import_complaints(path: Path, source: _SOURCE = None, map_: _MAP = None,
                      mapping: _MAPPING = None, register_new: _REGISTER = False,
                      as_json: _JSON = False, force: _FORCE = False,
                      date_order: _DATE_ORDER = None, encoding: _ENCODING = None,
                      coverage: _COVERAGE = None) -> None:
    """Import complaint records from CSV, XLSX, JSON or JSON Lines (optionally .gz)."""
    _import("complaints", path, source, map_ or [], mapping, register_new, as_json, force,
            date_order, encoding, coverage)


@import_app.command("enforcement")
def import_enforcement(path: Path, source: _SOURCE = None, map_: _MAP = None,
                       mapping: _MAPPING = None, register_new: _REGISTER = False,
                       as_json: _JSON = False, force: _FORCE = False,
                       date_order: _DATE_ORDER = None, encoding: _ENCODING = None,
                       coverage: _COVERAGE = None) -> None:
    """Import enforcement actions from CSV, XLSX, JSON or JSON Lines (optionally .gz)."""
    _import("enforcement", path, source, map_ or [], mapping, register_new, as_json, force,
            date_order, encoding, coverage)


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


def _parse_horizon(value: str) -> int:
    """``26w`` → 182 days, ``90d`` or ``90`` → 90 days."""
    v = value.strip().lower()
    try:
        if v.endswith("w"):
            return int(v[:-1]) * 7
        return int(v[:-1]) if v.endswith("d") else int(v)
    except ValueError as exc:
        raise typer.BadParameter(f"horizon '{value}' is not like 26w or 90d") from exc


@app.command()
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
    from service.forecasting import create_run, execute_run, latest_run

    settings = cli_settings()
    if if_none:
        with cli_session(settings) as session:
            existing = latest_run(session=session)
        if existing is not None:
            typer.echo(f"forecast run {existing.id} exists; not forecasting again")
            return
    days = _parse_horizon(horizon)
    until = dt.date.fromisoformat(train_until) if train_until else None
    if engine not in (None, "local", "dask", "serial"):
        raise typer.BadParameter("engine must be local, dask or serial")
    with cli_session(settings) as session:
        try:
            run = create_run(session=session, settings=settings, horizon_days=days,
                             train_until=until, engine=engine, jobs=jobs, signals=signal,
                             requested_by="cli")
        except ServiceError as exc:
            raise typer.BadParameter(exc.detail) from exc
    factory = make_sessionmaker(make_engine(settings.database_url))
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
    typer.echo(f"run {done.id}: {done.status}, {done.total} series, {done.failed} failed, "
               f"data until {done.train_until}, {done.durations.get('total_seconds')} s")
    from service.decisions import summary_lines

    for line in summary_lines(done.decisions):
        typer.echo(line)


@app.command()
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
    from service.decisions import public_decision
    from service.forecasting import latest_run, list_peaks

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


_MODELS = {
    "prophet": ("models.forecast", "ProphetForecaster"),
    "seasonal_naive": ("models.baselines", "SeasonalNaive"),
    "hgb": ("models.baselines", "GlobalHistGradientBoosting"),
}


@app.command()
def backtest(
    origins: Annotated[int, typer.Option(help="Number of rolling origins")] = 3,
    horizon: Annotated[str, typer.Option(help="Horizon per origin, e.g. 13w")] = "13w",
    model: Annotated[list[str] | None, typer.Option(
        help="prophet, seasonal_naive, hgb (repeatable; default all three)")] = None,
    signal: Annotated[str, typer.Option(help="complaints or violations")] = "complaints",
    lead_days: Annotated[int, typer.Option(help="Lead time an alarm needs")] = 14,
    p_min_grid: Annotated[str | None, typer.Option(
        help="Comma list of p_min values, e.g. 0.2,0.3,0.4,0.5: also print spike-window "
             "recall / precision / F1 for each (re-scored without refitting)")] = None,
    learn: Annotated[bool, typer.Option(
        "--learn", help="Also print the decision threshold per category that a forecast "
                        "run would learn from these origins (models.decision), with its "
                        "backtest scores and explanation")] = False,
    as_json: _BACKTEST_JSON = False,
) -> None:
    """Rolling-origin backtest of Prophet and the baselines on the stored records.

    Scored by ``models.scoring`` (DESIGN.md): campaign windows capped at 6 weeks, event
    recall / precision per campaign / F1 / in time / median lead, and the threshold-free
    average precision, ROC AUC and Brier score of weekly P(spike). Event scores use the
    pinned ``FOREWARN_FORECAST__P_MIN``, or 0.5 when runs learn their thresholds;
    ``--learn`` prints the thresholds they would learn from these origins (scores at a
    threshold learned on the same origins are in-sample: check them on later origins), and
    ``--p-min-grid`` how the event scores change with the threshold.
    """
    import importlib

    import pandas as pd

    from models.backtest import backtest as run_backtest
    from models.backtest import p_min_curve
    from models.peaks import DEFAULT_P_MIN
    from service.store.series import daily_frame

    names = model or list(_MODELS)
    unknown = sorted(set(names) - set(_MODELS))
    if unknown:
        raise typer.BadParameter(f"unknown model(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(_MODELS)}")
    weeks = _parse_horizon(horizon) // 7
    if weeks < 1:
        raise typer.BadParameter("horizon must be at least one week")
    grid: list[float] = []
    if p_min_grid:
        try:
            grid = [float(v) for v in p_min_grid.split(",") if v.strip()]
        except ValueError:
            raise typer.BadParameter(f"--p-min-grid: not a comma list of numbers: "
                                     f"{p_min_grid!r}") from None
        if not grid or not all(0.0 < v <= 1.0 for v in grid):
            raise typer.BadParameter("--p-min-grid: values must be in (0, 1]")
    settings = cli_settings()
    with cli_session(settings) as session:
        frame = daily_frame(session=session, signal=signal)
    if frame.empty:
        typer.echo("no records to backtest", err=True)
        raise typer.Exit(2)
    specs = {n: getattr(importlib.import_module(_MODELS[n][0]), _MODELS[n][1]) for n in names}

    def progress(name: str, cutoff: Any) -> None:
        typer.echo(f"fitting {name} at origin {cutoff.date()}", err=True)

    pinned = settings.forecast.p_min
    p_min = DEFAULT_P_MIN if pinned is None else pinned
    ends = {str(u): pd.Timestamp(d)  # the frame is zero-filled over each coverage
            for u, d in frame.groupby("unique_id")["ds"].max().items()}
    result = run_backtest(frame, specs, origins=origins, horizon_weeks=weeks,
                          lead_days=lead_days, min_spike_count=settings.forecast.min_spike_count,
                          p_min=p_min, ends=ends, on_progress=progress)
    table = result.summary.pivot_table(index="metric", columns="model", values="value")
    curve = p_min_curve(result, grid, lead_days=lead_days) if grid else None
    learned = _learned_thresholds(result, settings, lead_days) if learn else None
    if as_json:
        doc: dict[str, Any] = {
            str(m): {str(k): (None if v != v else float(v)) for k, v in col.items()}
            for m, col in table.to_dict().items()}
        if curve is not None:
            doc["p_min_curve"] = [{k: (None if isinstance(v, float) and v != v else v)
                                   for k, v in row.items()}
                                  for row in curve.to_dict(orient="records")]
        if learned is not None:
            doc["learned_thresholds"] = learned
        echo_json(doc)
        return
    how = "pinned by FOREWARN_FORECAST__P_MIN" if pinned is not None else (
        "the default; forecast runs learn theirs per category, see --learn")
    typer.echo(f"p_min {p_min:g} ({how}), lead {lead_days} days")
    typer.echo(table.round(3).to_string())
    if curve is not None:
        typer.echo("\nspike windows by p_min (re-scored without refitting):")
        typer.echo(curve.set_index(["model", "p_min"])[["recall", "precision", "f1",
                                                        "n_predicted"]].round(3).to_string())
    if learned is not None:
        typer.echo("\nthresholds learned from these origins (in-sample scores):")
        for name, rows in learned.items():
            for r in rows:
                typer.echo(f"{name:<15} {r['category']:<22} p >= {r['threshold']:.3f}  "
                           f"{r['basis']:<9} recall {_pct(r['recall'])}  precision "
                           f"{_pct(r['precision'])}  F1 {_pct(r['f1'])}  "
                           f"({r['n_windows'] or 0} windows)")
            for r in rows:
                typer.echo(f"  {r['category']}: {r['explanation']}")


def _pct(v: Any) -> str:
    return "  n/a" if v is None else f"{100 * float(v):3.0f} %"


def _learned_thresholds(result: Any, settings: Any, lead_days: int
                        ) -> dict[str, list[dict[str, Any]]]:
    """Per model, the thresholds ``models.decision.learn_thresholds`` chooses per category
    on a finished backtest, with the category rules of the deployment."""
    from models.decision import describe, learn_thresholds
    from service.decisions import category_rules
    from service.store.series import parse_series_id

    with cli_session(settings) as session:
        rules = category_rules(session)
    actual = result.windows[result.windows["kind"] == "actual"]
    out: dict[str, list[dict[str, Any]]] = {}
    for model in sorted(set(result.weekly["model"])):
        weekly = result.weekly[result.weekly["model"] == model]
        cats = {str(u): parse_series_id(str(u)).category for u in weekly["unique_id"].unique()}
        table = learn_thresholds(weekly, actual[actual["model"] == model], categories=cats,
                                 rules=rules, lead_days=lead_days,
                                 min_windows=settings.forecast.decision_min_windows)
        rows = []
        for row in table.to_dict(orient="records"):
            clean = {str(k): (None if isinstance(v, float) and v != v else v)
                     for k, v in row.items()}
            clean["origins"] = [str(o) for o in (row.get("origins") or [])]
            clean["explanation"] = describe(clean)
            rows.append(clean)
        out[model] = rows
    return out


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: read,import,plan,approve,admin")],
    expires_days: Annotated[int | None, typer.Option(help="Expire after N days")] = None,
) -> None:
    """Create an API key and print it once."""
    from service.store.base import utcnow
    from service.store.keys import create_key

    expires = utcnow() + dt.timedelta(days=expires_days) if expires_days else None
    with cli_session(cli_settings()) as session:
        try:
            row, plaintext = create_key(session=session, name=name,
                                        scopes=[s.strip() for s in scopes.split(",") if s],
                                        expires_at=expires)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    typer.echo(plaintext)
    typer.echo(f"prefix {row.prefix}, scopes {','.join(row.scopes)}", err=True)


@keys_app.command("list")
def keys_list(as_json: _KEYS_JSON = False) -> None:
    """List keys (never their secrets)."""
    from service.store.keys import list_keys

    settings = cli_settings()
    with cli_session(settings) as session:
        rows: list[dict[str, Any]] = [{"prefix": k.prefix, "name": k.name, "scopes": k.scopes,
                 "created_at": k.created_at, "expires_at": k.expires_at,
                 "revoked_at": k.revoked_at, "last_used_at": k.last_used_at}
                for k in list_keys(session=session)]
    if as_json:
        echo_json(rows)
        return
    from service.operator_cli import local_time
    from service.store.base import as_utc, utcnow

    tz = settings.timezone
    typer.echo(f"times in {tz}")
    for r in rows:
        expired = r["expires_at"] is not None and as_utc(r["expires_at"]) <= utcnow()
        state = "revoked" if r["revoked_at"] else "expired" if expired else "active"
        typer.echo(f"{r['prefix']}  {state:<8} {','.join(r['scopes']):<24} "
                   f"created {local_time(r['created_at'], tz)}  "
                   f"expires {local_time(r['expires_at'], tz)}  "
                   f"last used {local_time(r['last_used_at'], tz)}  {r['name']}")


@keys_app.command("revoke")
def keys_revoke(prefix: str) -> None:
    """Revoke the key with PREFIX."""
    from service.store.keys import revoke_key

    with cli_session(cli_settings()) as session:
        row = revoke_key(session=session, prefix=prefix)
    if row is None:
        typer.echo(f"no key with prefix {prefix}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {prefix}")


@keys_app.command("bootstrap")
def keys_bootstrap(
    key_file: Annotated[Path, typer.Option(help="Where the local admin key is kept")] = Path(
        "var/admin-key.txt"),
) -> None:
    """Create a local admin key on first start (stored in KEY_FILE, mode 0600) and print it."""
    from service.store.keys import create_key, list_keys

    with cli_session(cli_settings()) as session:
        if key_file.exists() and list_keys(session=session):
            typer.echo(f"local admin key: {key_file.read_text().strip()}  (from {key_file})")
            return
        _, plaintext = create_key(session=session, name="local-admin", scopes=["admin"])
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(plaintext + "\n")
    key_file.chmod(0o600)
    typer.echo(f"local admin key: {plaintext}  (saved to {key_file})")


from service.campaigns.cli import campaigns_app, plan  # noqa: E402
from service.evaluation_cli import evaluate  # noqa: E402
from service.operator_cli import dispatch_app, dispatches_app, recipients_app  # noqa: E402
from service.scheduler.cli import scheduler  # noqa: E402

app.command(help="Run the scheduler as its own process (one acts; others stand by).")(scheduler)
app.command("plan")(plan)
app.command("evaluate")(evaluate)
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(recipients_app, name="recipients")
app.add_typer(dispatches_app, name="dispatches")
app.add_typer(dispatch_app, name="dispatch")


if __name__ == "__main__":  # pragma: no cover
    app()
