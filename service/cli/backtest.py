"""``forewarn backtest``: rolling-origin backtests of Prophet and the baselines."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from service.cli.forecast import parse_horizon
from service.cli.support import cli_session, cli_settings, echo_json

__all__ = ["backtest"]

_BACKTEST_JSON = Annotated[bool, typer.Option(
    "--json", help="Print the scores by model (and the p_min curve) as JSON")]

_MODELS = {
    "prophet": ("models.forecast", "ProphetForecaster"),
    "seasonal_naive": ("models.baselines", "SeasonalNaive"),
    "hgb": ("models.baselines", "GlobalHistGradientBoosting"),
}


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
    from models.backtest import p_min_curve
    from models.peaks import DEFAULT_P_MIN
    from service.store.series import daily_frame

    names = _model_names(model)
    weeks = parse_horizon(horizon) // 7
    if weeks < 1:
        raise typer.BadParameter("horizon must be at least one week")
    grid = _p_min_grid(p_min_grid)
    settings = cli_settings()
    with cli_session(settings) as session:
        frame = daily_frame(session=session, signal=signal)
    if frame.empty:
        typer.echo("no records to backtest", err=True)
        raise typer.Exit(2)
    pinned = settings.forecast.p_min
    p_min = DEFAULT_P_MIN if pinned is None else pinned
    result = _run(frame, names, origins=origins, weeks=weeks, lead_days=lead_days,
                  min_spike_count=settings.forecast.min_spike_count, p_min=p_min)
    table = result.summary.pivot_table(index="metric", columns="model", values="value")
    curve = p_min_curve(result, grid, lead_days=lead_days) if grid else None
    learned = _learned_thresholds(result, settings, lead_days) if learn else None
    if as_json:
        echo_json(_document(table, curve, learned))
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
        _print_learned(learned)


def _run(frame: Any, names: list[str], *, origins: int, weeks: int, lead_days: int,
         min_spike_count: float, p_min: float) -> Any:
    """``models.backtest.backtest`` of the named models on ``frame`` (progress on stderr)."""
    import importlib

    import pandas as pd

    from models.backtest import backtest as run_backtest

    specs = {n: getattr(importlib.import_module(_MODELS[n][0]), _MODELS[n][1]) for n in names}

    def progress(name: str, cutoff: Any) -> None:
        typer.echo(f"fitting {name} at origin {cutoff.date()}", err=True)

    ends = {str(u): pd.Timestamp(d)  # the frame is zero-filled over each coverage
            for u, d in frame.groupby("unique_id")["ds"].max().items()}
    return run_backtest(frame, specs, origins=origins, horizon_weeks=weeks,
                        lead_days=lead_days, min_spike_count=min_spike_count,
                        p_min=p_min, ends=ends, on_progress=progress)


def _model_names(model: list[str] | None) -> list[str]:
    """The ``--model`` values (default: every model); an unknown one is a usage error."""
    names = model or list(_MODELS)
    unknown = sorted(set(names) - set(_MODELS))
    if unknown:
        raise typer.BadParameter(f"unknown model(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(_MODELS)}")
    return names


def _p_min_grid(p_min_grid: str | None) -> list[float]:
    """``--p-min-grid`` as numbers in (0, 1] (empty without the option)."""
    if not p_min_grid:
        return []
    try:
        grid = [float(v) for v in p_min_grid.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"--p-min-grid: not a comma list of numbers: "
                                 f"{p_min_grid!r}") from None
    if not grid or not all(0.0 < v <= 1.0 for v in grid):
        raise typer.BadParameter("--p-min-grid: values must be in (0, 1]")
    return grid


def _document(table: Any, curve: Any, learned: dict[str, list[dict[str, Any]]] | None
              ) -> dict[str, Any]:
    """The ``--json`` answer: scores by model and metric (NaN as null), the p_min curve and
    the learned thresholds when asked for."""
    doc: dict[str, Any] = {
        str(m): {str(k): (None if v != v else float(v)) for k, v in col.items()}
        for m, col in table.to_dict().items()}
    if curve is not None:
        doc["p_min_curve"] = [{k: (None if isinstance(v, float) and v != v else v)
                               for k, v in row.items()}
                              for row in curve.to_dict(orient="records")]
    if learned is not None:
        doc["learned_thresholds"] = learned
    return doc


def _print_learned(learned: dict[str, list[dict[str, Any]]]) -> None:
    typer.echo("\nthresholds learned from these origins (in-sample scores):")
    for name, rows in learned.items():
        for r in rows:
            typer.echo(f"{name:<15} {r['category']:<22} p >= {r['threshold']:.3f}  "
                       f"open x{r.get('open_factor') or 1:g}  {r['basis']:<9} recall "
                       f"{_pct(r['recall'])}  precision "
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
    from service.forecasting.decisions import category_rules
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
