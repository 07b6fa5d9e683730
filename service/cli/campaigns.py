"""Command-line access to campaigns: ``forewarn plan`` and ``forewarn campaigns …``.

The actor recorded for approvals and cancellations is ``cli:<login name>``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from service.cli.support import (
    cli_actor,
    cli_session,
    cli_settings,
    command_group,
    echo_json,
    parse_date,
)

__all__ = ["campaigns_app", "plan", "plan_summary"]

campaigns_app = command_group("Reminder campaigns (执法事项提示).")

_PLAN_JSON = Annotated[bool, typer.Option(
    "--json", help="Print the planning result (campaign ids by outcome) as JSON")]
_LIST_JSON = Annotated[bool, typer.Option("--json", help="Print the campaigns as JSON")]
_SHOW_JSON = Annotated[bool, typer.Option(
    "--json", help="Print the campaign and its rendered message as JSON")]


def plan_summary(result: dict[str, Any]) -> list[str]:
    """Human lines of a planning result whose numbers add up.

    Every window ends in exactly one of created / updated / unchanged / flagged (its approved
    campaign's window moved) / left alone (a manual campaign, or one already sending);
    ``dropped`` counts those of them that constraints kept from being sent. Campaigns whose
    window the run no longer predicts are counted apart (superseded drafts, flagged approved
    campaigns).
    """
    n = {k: len(result[k]) for k in ("created", "updated", "unchanged", "untouched",
                                     "flagged", "superseded", "dropped")}
    windows = int(result["windows"])
    moved = windows - n["created"] - n["updated"] - n["unchanged"] - n["untouched"]
    vanished = n["flagged"] - moved
    lines = [f"run {result['run_id']}, as of {result['today']}: {windows} windows = "
             f"{n['created']} created + {n['updated']} updated + {n['unchanged']} unchanged + "
             f"{moved} flagged for review (window moved) + {n['untouched']} left alone "
             "(manual or already sending)"]
    if n["dropped"]:
        lines.append(f"  of these, {n['dropped']} dropped by constraints (not sent unless a "
                     "send date is set by hand)")
    lines.append(f"no longer predicted: {n['superseded']} drafts superseded, {vanished} "
                 "approved campaigns flagged for review")
    return lines


def plan(
    today: Annotated[str | None, typer.Option(help="Plan as of this day (YYYY-MM-DD)")] = None,
    run_id: Annotated[str | None, typer.Option(help="Forecast run (default: latest)")] = None,
    category: Annotated[list[str] | None, typer.Option(help="Only this category (repeatable)")
                        ] = None,
    as_json: _PLAN_JSON = False,
) -> None:
    """(Re)plan reminder campaigns from the latest forecast run's predicted peaks."""
    from service.campaigns.service import plan_campaigns

    settings = cli_settings()
    with cli_session(settings, conflict_exit=3) as session:
        result = plan_campaigns(session=session, settings=settings,
                                today=parse_date(today, "today"), run_id=run_id,
                                categories=category, actor=cli_actor())
    if as_json:
        echo_json(result.as_dict())
        return
    for line in plan_summary(result.as_dict()):
        typer.echo(line)
    for err in result.errors:
        typer.echo(f"  not planned: {err['category']}: {err['detail']}", err=True)


@campaigns_app.command("list")
def list_(
    status: Annotated[list[str] | None, typer.Option(help="Status (repeatable)")] = None,
    category: str | None = None,
    region: str | None = None,
    date_from: Annotated[str | None, typer.Option("--from", help="Send date ≥")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Send date ≤")] = None,
    limit: int = 200,
    as_json: _LIST_JSON = False,
) -> None:
    """List campaigns by send date."""
    from service.campaigns.service import list_campaigns

    with cli_session(cli_settings(), conflict_exit=3) as session:
        rows, _next = list_campaigns(session=session, status=status, category=category,
                                     region=region, date_from=parse_date(date_from, "--from"),
                                     date_to=parse_date(date_to, "--to"), limit=limit)
        items = [{"id": c.id, "status": c.status, "send_date": c.send_date,
                  "category": c.category, "region": c.region, "window_start": c.window_start,
                  "window_end": c.window_end, "rank": c.rank,
                  "probability": c.probability, "title": c.title} for c in rows]
    if as_json:
        echo_json(items)
        return
    for i in items:
        p = f"P={i['probability']:.2f}" if i["probability"] is not None else "manual"
        typer.echo(f"{i['id']}  {i['status']:<16} send {i['send_date']}  window "
                   f"{i['window_start']}…{i['window_end']}  {p:<7} {i['title']}")
    typer.echo(f"{len(items)} campaigns")


@campaigns_app.command("show")
def show(campaign_id: str, channel: Annotated[str, typer.Option(
        help="Also render this channel's message")] = "public",
         as_json: _SHOW_JSON = False) -> None:
    """Show one campaign with its constraint notes and the message to be sent (every
    language of its category)."""
    from service.campaigns.service import get_campaign, preview

    settings = cli_settings()
    with cli_session(settings, conflict_exit=3) as session:
        c = get_campaign(session=session, campaign_id=campaign_id)
        msg = preview(session=session, settings=settings, campaign_id=campaign_id,
                      channel=channel)
        data: dict[str, Any] = {
                "id": c.id, "status": c.status, "origin": c.origin, "category": c.category,
                "region": c.region, "window_start": c.window_start,
                "window_end": c.window_end, "send_date": c.send_date,
                "planned_send_date": c.planned_send_date, "lead_days": c.lead_days,
                "probability": c.probability, "expected_excess": c.expected_excess,
                "constraint_notes": c.constraint_notes, "review": c.review,
                "audience": c.audience, "approved_by": c.approved_by,
                "approved_at": c.approved_at, "cancelled_by": c.cancelled_by,
                "cancelled_at": c.cancelled_at, "message": msg.as_dict()}
    if as_json:
        echo_json(data)
        return
    for k, v in data.items():
        if k not in ("message", "constraint_notes", "review"):
            typer.echo(f"{k:<18} {v}")
    for note in data["constraint_notes"]:
        typer.echo(f"constraint         {note['constraint']} ({note['action']}): {note['reason']}")
    if data["review"]:
        typer.echo(f"review             {data['review'].get('detail', '')}")
    typer.echo("")
    typer.echo(msg.body)
    for t in msg.texts[1:]:  # the category's other language variants
        mark = "" if t["status"] == "official" else "  (placeholder, not an official text)"
        typer.echo(f"--- {t['tag']}{mark}")
        typer.echo(t["body"])


@campaigns_app.command("approve")
def approve(campaign_id: str,
            note: Annotated[str | None, typer.Option(help="Why it is approved")] = None) -> None:
    """Approve a draft (or a campaign under review); records who and when."""
    from service.campaigns.service import approve_campaign

    settings = cli_settings()
    with cli_session(settings, conflict_exit=3) as session:
        c = approve_campaign(session=session, settings=settings, campaign_id=campaign_id,
                             actor=cli_actor(), note=note)
        typer.echo(f"approved {c.id} by {c.approved_by} at {c.approved_at}; "
                   f"send date {c.send_date}")


@campaigns_app.command("cancel")
def cancel(campaign_id: str,
           reason: Annotated[str | None, typer.Option(help="Why it is cancelled")] = None) -> None:
    """Cancel a campaign that has not started sending."""
    from service.campaigns.service import cancel_campaign

    with cli_session(cli_settings(), conflict_exit=3) as session:
        c = cancel_campaign(session=session, campaign_id=campaign_id, actor=cli_actor(),
                            reason=reason)
        typer.echo(f"cancelled {c.id} by {c.cancelled_by} at {c.cancelled_at}")
