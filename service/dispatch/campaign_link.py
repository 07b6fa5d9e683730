"""Where dispatch meets campaigns: scheduling, status roll-up, replanning after a refit.

* :func:`schedule_campaign` writes one outbox row per (campaign, channel, recipient) and moves
  the campaign ``approved → scheduled`` in ONE transaction. Channels: the public reminder
  through ``settings.dispatch.public_channel`` (``file`` by default), and every contactable
  recipient's webhook and e-mail. Rows are due at the campaign's send date,
  ``settings.dispatch.send_time`` local time.
* :class:`CampaignHooks` is what the dispatcher calls: rows of campaigns that left the
  schedule (cancelled, superseded, back under review) are cancelled instead of sent;
  ``scheduled``/``partially_failed`` campaigns become ``dispatching`` when their rows go out,
  and ``sent`` or ``partially_failed`` once none of their rows is open.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.campaigns.status import SENDABLE
from service.channels.netguard import AddressRefused, ResolutionFailed, resolve_vetted
from service.dispatch.outbox import campaign_counts, enqueue, idempotency_key
from service.errors import Conflict, NotFound

if TYPE_CHECKING:
    from service.config import Settings

__all__ = ["schedule_campaign", "schedule_approved", "CampaignHooks", "replan_after_refit",
           "outbox_rows_for", "due_at", "rollup_status"]

log = structlog.get_logger(__name__)
ACTOR = "scheduler"


def _settings(settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    from service.config import Settings

    return Settings(_env_file=None)


def due_at(send_date: dt.date, settings: Settings) -> dt.datetime:
    """The UTC moment a campaign's rows become due: send date at ``send_time`` local."""
    local = dt.datetime.combine(send_date, settings.dispatch.send_time,
                                tzinfo=ZoneInfo(settings.timezone))
    return local.astimezone(dt.UTC)


def _webhook_problem(url: str, settings: Settings) -> str | None:
    import httpx

    w = settings.channels.webhook
    try:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            return "a webhook URL must be http(s)://host/…"
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        resolve_vetted(parsed.host, port, allow_loopback=w.allow_loopback,
                       allow_private=w.allow_private)
    except ResolutionFailed:  # DNS down now: the send re-checks and retries with backoff
        return None
    except (httpx.InvalidURL, AddressRefused) as exc:
        return f"webhook destination refused: {exc}"
    return None


def outbox_rows_for(*, session: Session, campaign: Any, settings: Settings
                    ) -> list[dict[str, Any]]:
    """The outbox rows of a campaign (public reminder + each recipient's channels)."""
    from service.campaigns.service import render_message, resolve_audience

    d = settings.dispatch
    due = due_at(campaign.send_date, settings)
    audience = resolve_audience(session=session, campaign=campaign)
    base = {"campaign_id": campaign.id, "next_attempt_at": due, "max_attempts": d.max_attempts}
    data = {"category": campaign.category, "region": campaign.region,
            "window_start": campaign.window_start.isoformat(),
            "window_end": campaign.window_end.isoformat(),
            "send_date": campaign.send_date.isoformat(), "title": campaign.title}
    rows: list[dict[str, Any]] = []
    enabled = set(settings.channels.enabled)

    def add(channel: str, render_as: str, recipient: str, destination: str,
            problem: str | None = None) -> None:
        msg = render_message(session=session, campaign=campaign, channel=render_as)
        row = {**base, "channel": channel, "recipient_id": recipient,
               "destination": destination,
               "payload": {"subject": msg.subject, "body": msg.body,
                           # every language variant, frozen at approval (body is Chinese)
                           "data": {**data, "channel": render_as, "texts": list(msg.texts)}},
               "idempotency_key": idempotency_key(campaign.id, channel, recipient)}
        if problem:  # visible at once as a dead letter rather than silently skipped
            row.update(status="dead", last_error=problem)
        rows.append(row)

    if audience.public and d.public_channel in enabled:
        add(d.public_channel, "public", "public", d.public_destination)
    for r in audience.recipients:
        if r.webhook_url and "webhook" in enabled:
            add("webhook", "webhook", r.id, r.webhook_url,
                _webhook_problem(r.webhook_url, settings))
        if r.email and "email" in enabled:
            add("email", "email", r.id, r.email)
    return rows


def schedule_campaign(*, session: Session, campaign_id: str, actor: str,
                      settings: Settings | None = None) -> dict[str, Any]:
    """Write the campaign's outbox rows and move it ``approved → scheduled``; one commit.

    Idempotent per row: keys that exist are left alone (``ON CONFLICT DO NOTHING``; a row
    cancelled when the campaign went back to review is revived). 404 if the campaign does not
    exist, 409 unless it is approved.
    """
    from service.campaigns.service import transition
    from service.campaigns.tables import Campaign

    settings = _settings(settings)
    pg = session.get_bind().dialect.name == "postgresql"
    campaign = session.get(Campaign, campaign_id, with_for_update=pg or None)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    if campaign.status != "approved":
        raise Conflict(f"campaign {campaign_id} is {campaign.status}; only approved campaigns "
                       "can be scheduled", status_now=campaign.status)
    rows = outbox_rows_for(session=session, campaign=campaign, settings=settings)
    written = enqueue(session=session, rows=rows)
    transition(session=session, campaign=campaign, to="scheduled", actor=actor,
               detail={"outbox_rows": len(rows), "written": written,
                       "due_at": due_at(campaign.send_date, settings).isoformat()})
    session.commit()
    return {"campaign_id": campaign_id, "rows": len(rows), "written": written,
            "due_at": due_at(campaign.send_date, settings)}


def schedule_approved(*, session_factory: sessionmaker[Session], settings: Settings,
                      actor: str = ACTOR) -> int:
    """Schedule every approved campaign (each in its own transaction); returns how many."""
    from service.campaigns.tables import Campaign

    with session_factory() as s:
        ids = list(s.scalars(select(Campaign.id).where(Campaign.status == "approved")
                             .order_by(Campaign.send_date, Campaign.id)))
    done = 0
    for cid in ids:
        with session_factory() as s:
            try:
                schedule_campaign(session=s, campaign_id=cid, actor=actor, settings=settings)
                done += 1
            except Conflict:  # changed meanwhile (another process, or cancelled)
                s.rollback()
    return done


def rollup_status(counts: dict[str, int]) -> str | None:
    """``sent`` / ``partially_failed`` once no row is open; None while rows are open."""
    if any(counts.get(s, 0) for s in ("pending", "sending", "retrying")):
        return None
    if not any(counts.values()):
        return None
    return "partially_failed" if counts.get("dead", 0) else "sent"


class CampaignHooks:
    """The dispatcher's view of campaign statuses (see :class:`DispatchHooks`)."""

    def blocked(self, session_factory: sessionmaker[Session], campaign_ids: set[str]
                ) -> set[str]:
        from service.campaigns.tables import Campaign

        with session_factory() as s:
            rows = s.execute(select(Campaign.id, Campaign.status)
                             .where(Campaign.id.in_(campaign_ids))).all()
        # rows of unknown campaigns (tests, manual outbox use) are not blocked
        return {str(r.id) for r in rows if r.status not in SENDABLE}

    def _move(self, session_factory: sessionmaker[Session], campaign_id: str,
              wanted: dict[str, str] | None) -> str | None:
        """Move the campaign as ``wanted`` says (None: roll up); returns its status after,
        None for an unknown campaign."""
        from service.campaigns.service import transition
        from service.campaigns.tables import Campaign

        with session_factory() as s:
            pg = s.get_bind().dialect.name == "postgresql"
            c = s.get(Campaign, campaign_id, with_for_update=pg or None)
            if c is None:
                return None
            if wanted is None:  # roll-up
                counts = campaign_counts(session=s, campaign_ids=[campaign_id])[campaign_id]
                to = rollup_status(counts)
                if to is None or to == c.status or c.status not in ("dispatching",
                                                                    "partially_failed"):
                    return c.status
                detail: dict[str, Any] = {"outbox": counts}
            else:
                to = wanted.get(c.status, "")
                if not to:
                    return c.status
                detail = {}
            try:
                transition(session=s, campaign=c, to=to, actor=ACTOR, detail=detail)
                s.commit()
                return to
            except Conflict as exc:  # changed since read (a cancel that won the race)
                s.rollback()
                return str(exc.extensions.get("status_now") or "")

    def started(self, session_factory: sessionmaker[Session], campaign_ids: set[str]
                ) -> set[str]:
        moved = {cid: self._move(session_factory, cid, {"scheduled": "dispatching",
                                                       "partially_failed": "dispatching"})
                 for cid in sorted(campaign_ids)}
        return {cid for cid, status in moved.items()
                if status is not None and status not in SENDABLE}

    def settled(self, session_factory: sessionmaker[Session], campaign_ids: set[str]) -> None:
        for cid in sorted(campaign_ids):
            self._move(session_factory, cid, None)


def replan_after_refit(*, session_factory: sessionmaker[Session], settings: Settings,
                       run_id: str) -> dict[str, Any]:
    """Replan campaigns from a finished refit run (drafts updated, moved windows flagged)."""
    from service.campaigns.service import plan_campaigns

    with session_factory() as s:
        result = plan_campaigns(session=s, settings=settings, run_id=run_id, actor=ACTOR)
        return dict(result.as_dict())
