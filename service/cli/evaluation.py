"""``forewarn evaluate``: a campaign's effect, or the guidance-work scorecard."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from service.cli.support import cli_session, cli_settings, echo_json, parse_date

__all__ = ["evaluate"]


def _f(x: Any, digits: int = 1) -> str:
    return "—" if x is None else f"{float(x):.{digits}f}"


def _print_effect(e: dict[str, Any]) -> None:
    typer.echo(f"campaign {e['campaign_id']} ({e['campaign_status']})  {e['series_id']}  "
               f"window {e['window_start']} … {e['window_end']}")
    typer.echo(f"evaluation: {e['evaluation']}  ({e['weeks_observed']} of "
               f"{e['weeks_in_window']} weeks observed)"
               + (f" — {e['reason']}" if e.get("reason") else ""))
    cf, cal = e.get("counterfactual"), e.get("calibration")
    if cal:
        if cal["status"] == "calibrated":
            typer.echo(f"calibration: {cal['n_placebos']} placebo windows ({cal['pooled_over']})"
                       f", bias ×{_f(cal['bias_ratio'], 2)} (raw ×{_f(cal['raw_ratio'], 2)}), "
                       f"dispersion ×{_f(cal['dispersion'], 2)}")
        else:
            typer.echo(f"calibration: UNCALIBRATED — {cal['reason']}; the counterfactual below "
                       "is the frozen forecast as stored and is not counted in the scorecard")
    if cf:
        rel = "—" if cf["relative_effect"] is None else f"{100 * cf['relative_effect']:+.0f} %"
        label = "counterfactual" if cf.get("calibrated") else "counterfactual (uncalibrated)"
        typer.echo(f"{label}: actual {_f(cf['actual'], 0)} vs frozen forecast "
                   f"{_f(cf['counterfactual'])}; effect {_f(cf['effect'])} ({rel}), "
                   f"80 % [{_f(cf['effect_lower_80'])}, {_f(cf['effect_upper_80'])}], "
                   f"95 % [{_f(cf['effect_lower_95'])}, {_f(cf['effect_upper_95'])}], "
                   f"P(reduced) {_f(cf['p_reduced'], 2)}")
    did = e.get("did")
    if did:
        if did["status"] in ("ok", "no_interval"):
            typer.echo(f"difference-in-differences ({len(did['controls'])} controls): effect "
                       f"{_f(did['effect'])} ({100 * did['relative_effect']:+.0f} %), 95 % "
                       f"[{_f(did.get('effect_lower_95'))}, {_f(did.get('effect_upper_95'))}]"
                       + (f" — {did['reason']}" if did.get("reason") else ""))
        else:
            typer.echo(f"difference-in-differences: {did['status']} — {did.get('reason')}")


def _print_scorecard(sc: dict[str, Any]) -> None:
    head = (f"{'group':<24} {'sent':>5} {'spikes':>6} {'caught':>6} {'lead d':>6} "
            f"{'eval':>4} {'avoided':>8} {'95 % interval':>20} {'failed':>6}")
    typer.echo(f"scorecard by {sc['group_by']} ({sc['signal']}), "
               f"{sc['from'] or '…'} – {sc['to'] or '…'}")
    typer.echo(head)
    for g in [*sc["groups"], sc["total"]]:
        interval = ("" if g["avoided"] is None else
                    f"[{_f(g['avoided_lower_95'])}, {_f(g['avoided_upper_95'])}]")
        typer.echo(f"{g['label'][:24]:<24} {g['campaigns_sent']:>5} {g['spike_windows']:>6} "
                   f"{g['spike_windows_caught']:>6} {_f(g['median_lead_days'], 0):>6} "
                   f"{g['campaigns_evaluated']:>4} {_f(g['avoided']):>8} {interval:>20} "
                   f"{g['deliveries_failed']:>6}")
    t = sc["total"]
    typer.echo(f"counted: {t['counted_counterfactual']} by the calibrated counterfactual, "
               f"{t['counted_did']} by difference-in-differences; {t['not_counted']} sent "
               f"campaign(s) not counted (no calibrated counterfactual and no DiD ok). "
               f"Intervals: {sc['interval_method']}.")


def evaluate(
    campaign: Annotated[str | None, typer.Option(
        help="Show this campaign's effect instead of the scorecard")] = None,
    group_by: Annotated[str, typer.Option(help="category, region or department")] = "category",
    date_from: Annotated[str | None, typer.Option("--from", help="Period start YYYY-MM-DD")
                         ] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Period end YYYY-MM-DD")] = None,
    signal: Annotated[str | None, typer.Option(help="complaints or violations")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the campaign's effect or the scorecard as JSON")] = False,
) -> None:
    """Measure campaigns: one campaign's effect (--campaign ID) or the scorecard per category,
    region or department (campaigns sent, spikes caught in advance, lead time, counts
    avoided with intervals, failed deliveries)."""
    from service.evaluation.effects import campaign_effect_report
    from service.evaluation.scorecards import scorecard

    if group_by not in ("category", "region", "department"):
        raise typer.BadParameter("group-by must be category, region or department")
    start, end = parse_date(date_from, "--from"), parse_date(date_to, "--to")
    settings = cli_settings()
    with cli_session(settings) as session:
        if campaign:
            result = campaign_effect_report(
                session=session, campaign_id=campaign, signal=signal,
                min_probability=settings.campaigns.min_probability)
        else:
            result = scorecard(session=session, settings=settings,
                               group_by=group_by,  # type: ignore[arg-type]
                               date_from=start, date_to=end, signal=signal)
    if as_json:
        echo_json(result)
    elif campaign:
        _print_effect(result)
    else:
        _print_scorecard(result)
