"""Operator commands: ``forewarn recipients …``, ``forewarn dispatches list`` and
``forewarn dispatch run-once``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from service.cli.support import (
    cli_actor,
    cli_session,
    cli_settings,
    command_group,
    echo_json,
    local_time,
)

__all__ = ["recipients_app", "dispatches_app", "dispatch_app"]

recipients_app = command_group("Recipients of reminders: department webhooks, e-mail contacts.")
dispatches_app = command_group("Deliveries in the outbox.")
dispatch_app = command_group("Send due deliveries now.")


def _row(r: Any) -> dict[str, Any]:
    from service.campaigns.recipients import recipient_channels

    return {"id": r.id, "name": r.name, "kind": r.kind, "region": r.region,
            "categories": list(r.categories or []), "sectors": list(r.sectors or []),
            "may_contact": r.may_contact, "webhook_url": r.webhook_url, "email": r.email,
            "channels": recipient_channels(r), "active": r.active,
            "secrets": [{k: v for k, v in s.items() if k != "secret"}
                        for s in r.webhook_secrets or []],
            "created_at": r.created_at, "disabled_at": r.disabled_at}


@recipients_app.command("add")
def recipients_add(
    name: Annotated[str, typer.Option(help="Who receives the reminders")],
    webhook: Annotated[str | None, typer.Option(
        help="Webhook URL (checked by the SSRF guard); gets its own signing secret")] = None,
    email: Annotated[str | None, typer.Option(help="E-mail address")] = None,
    kind: Annotated[str, typer.Option(help="department, entity or subscriber")
                    ] = "department",
    region: Annotated[str | None, typer.Option(
        help="Region code (default: every region)")] = None,
    category: Annotated[list[str] | None, typer.Option(
        help="Only this category (repeatable; default: every one)")] = None,
    sector: Annotated[list[str] | None, typer.Option(
        help="Only this sector (repeatable; default: every one)")] = None,
    may_contact: Annotated[bool | None, typer.Option(
        "--may-contact/--no-may-contact",
        help="Recorded consent to be contacted (default: yes for departments)")] = None,
) -> None:
    """Register a recipient; prints its id and, for a webhook, its signing secret (once)."""
    from service.campaigns.recipients import register_recipient

    settings = cli_settings()
    with cli_session(settings) as session:
        row, secret = register_recipient(
            session=session, settings=settings, actor=cli_actor(), name=name, kind=kind,
            region=region, categories=category or [], sectors=sector or [],
            may_contact=may_contact, webhook_url=webhook, email=email)
    typer.echo(f"recipient {row.id} registered ({', '.join(_row(row)['channels']) or 'no '}"
               " channel)")
    if secret:
        typer.echo(f"webhook signing secret (shown once): {secret}")


@recipients_app.command("list")
def recipients_list(
    show_all: Annotated[bool, typer.Option("--all", help="Also disabled recipients")] = True,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the recipients (never their secrets) as JSON")] = False,
) -> None:
    """Recipients with their channel, scope and state."""
    from service.campaigns.recipients import list_recipients

    settings = cli_settings()
    with cli_session(settings) as session:
        rows = [_row(r) for r in list_recipients(session=session,
                                                 active=None if show_all else True,
                                                 limit=100_000)]
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        scope = (f"region {r['region'] or 'all'}, categories "
                 f"{','.join(r['categories']) or 'all'}, "
                 f"sectors {','.join(r['sectors']) or 'all'}")
        state = "active" if r["active"] else "disabled"
        contact = r["webhook_url"] or r["email"] or "-"
        typer.echo(f"{r['id']}  {state:<8} {'+'.join(r['channels']) or '-':<13} {r['name']}"
                   f"  [{scope}]  {contact}")
    typer.echo(f"{len(rows)} recipients")


@recipients_app.command("disable")
def recipients_disable(recipient_id: str, reason: Annotated[str | None, typer.Option(
        help="Why (kept in the audit trail)")] = None) -> None:
    """Stop sending to a recipient."""
    from service.campaigns.recipients import disable_recipient

    with cli_session(cli_settings()) as session:
        row = disable_recipient(session=session, actor=cli_actor(), recipient_id=recipient_id,
                                reason=reason)
    typer.echo(f"recipient {row.id} disabled")


@recipients_app.command("rotate-secret")
def recipients_rotate(recipient_id: str, grace_hours: Annotated[float, typer.Option(
        help="How long the previous secret keeps signing")] = 24.0) -> None:
    """Give a webhook recipient a new signing secret (printed once); the previous one keeps
    signing for the grace period, so the receiver can switch without losing a message."""
    from service.campaigns.recipients import rotate_webhook_secret

    settings = cli_settings()
    with cli_session(settings) as session:
        _, secret = rotate_webhook_secret(session=session, actor=cli_actor(),
                                          recipient_id=recipient_id, grace_hours=grace_hours)
    typer.echo(f"new webhook signing secret (shown once): {secret}")
    typer.echo(f"the previous secret keeps signing for {grace_hours:g} h", err=True)


@dispatches_app.command("list")
def dispatches_list(
    status: Annotated[str | None, typer.Option(
        help="pending, sending, retrying, delivered, dead or cancelled")] = None,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign")] = None,
    channel: Annotated[str | None, typer.Option(help="Only this channel")] = None,
    limit: int = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print the deliveries as JSON")
                       ] = False,
) -> None:
    """Deliveries (oldest first) with their state, attempts and last error."""
    from service.dispatch.outbox import list_dispatches

    settings = cli_settings()
    with cli_session(settings) as session:
        rows, _ = list_dispatches(session=session, status=status, campaign=campaign,
                                  channel=channel, limit=limit)
        items: list[dict[str, Any]] = [
            {"id": r.id, "campaign_id": r.campaign_id, "channel": r.channel,
             "recipient_id": r.recipient_id, "destination": r.destination, "status": r.status,
             "attempts": r.attempts, "next_attempt_at": r.next_attempt_at,
             "last_error": r.last_error} for r in rows]
    if as_json:
        echo_json(items)
        return
    for i in items:
        nxt = local_time(i["next_attempt_at"], settings.timezone)
        typer.echo(f"{i['id']:>6}  {i['status']:<9} {i['channel']:<8} {i['attempts']:>2}×  "
                   f"campaign {i['campaign_id']}  next {nxt}  {(i['last_error'] or '')[:80]}")
    hint = "; POST /v1/dispatches/ID/retry sends one again" if status == "dead" and items \
        else ""
    typer.echo(f"{len(items)} deliveries{hint}")


@dispatch_app.command("run-once")
def dispatch_run_once(
    retry: Annotated[bool, typer.Option(
        "--retry/--no-retry", help="Also send failed deliveries whose backoff passed")] = True,
) -> None:
    """Schedule approved campaigns and send every due delivery once, in this process (what
    the scheduler's dispatch tick does; safe beside a running scheduler)."""
    from service.channels.registry import load_channels
    from service.db import make_engine, make_sessionmaker
    from service.dispatch.campaign_link import CampaignHooks, schedule_approved
    from service.dispatch.dispatcher import Dispatcher
    from service.migrate import upgrade

    settings = cli_settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    channels = load_channels(settings)
    try:
        scheduled = schedule_approved(session_factory=factory, settings=settings,
                                      actor=cli_actor())
        d = Dispatcher(session_factory=factory, settings=settings, channels=channels,
                       hooks=CampaignHooks())
        stats = d.run(statuses=("pending", "retrying") if retry else ("pending",))
    finally:
        for ch in channels.values():
            ch.close()
        engine.dispose()
    s = stats.as_dict()
    typer.echo(f"scheduled {scheduled} campaigns; claimed {s['claimed']}: delivered "
               f"{s['delivered']}, retrying {s['retrying']}, dead {s['dead']}, cancelled "
               f"{s['cancelled']} in {s['seconds']} s")
