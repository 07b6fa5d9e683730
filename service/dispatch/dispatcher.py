"""Send claimed outbox rows through their channels, concurrently, and mark each one.

Each row is marked in its own short transaction as soon as its channel answers, so a crash
in the middle of a batch loses at most the rows in flight (they are claimed again when their
claim expires and sent with the same idempotency key: at-least-once, deduped by receivers).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Protocol

import structlog
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.campaigns.recipients import recipient_signing_secrets
from service.campaigns.scope import evaluation_scope
from service.channels.base import Channel, DeliveryError, Message, PermanentDeliveryError
from service.dispatch import outbox
from service.dispatch.tables import Outbox
from service.store.base import utcnow
from service.store.freshness import mark_stale

if TYPE_CHECKING:
    from service.config import Settings

__all__ = ["Dispatcher", "DispatchStats", "DispatchHooks", "message_for"]

log = structlog.get_logger(__name__)


class DispatchHooks(Protocol):
    """How the dispatcher tells campaigns what happens (see ``service.dispatch.campaign_link``)."""

    def blocked(self, session_factory: sessionmaker[Session], campaign_ids: set[str]
                ) -> set[str]:
        """Campaigns whose rows must not go out any more (cancelled, superseded)."""
        ...

    def started(self, session_factory: sessionmaker[Session], campaign_ids: set[str]
                ) -> set[str]:
        """Rows of these campaigns are being sent (scheduled → dispatching); returns those
        that turned unsendable since :meth:`blocked` looked (a cancel that won the race)."""
        ...

    def settled(self, session_factory: sessionmaker[Session], campaign_ids: set[str]) -> None:
        """Rows of these campaigns changed; roll their status up (sent, partially_failed)."""
        ...


@dataclass
class DispatchStats:
    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    cancelled: int = 0
    lost: int = 0  # claim taken over by another dispatcher before the mark
    skipped: int = 0  # not sent: too little of the claim left (claimed again later)
    batches: int = 0
    seconds: float = 0.0
    campaigns: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, float | int]:
        return {"claimed": self.claimed, "delivered": self.delivered,
                "retrying": self.retrying, "dead": self.dead, "cancelled": self.cancelled,
                "lost": self.lost, "skipped": self.skipped, "batches": self.batches,
                "seconds": round(self.seconds, 3)}


def message_for(row: outbox.ClaimedRow) -> Message:
    """The channel message of an outbox row (payload keys ``subject``, ``body``, ``data``)."""
    p = row.payload
    return Message(idempotency_key=row.idempotency_key, destination=row.destination,
                   subject=str(p.get("subject", "")), body=str(p.get("body", "")),
                   campaign_id=row.campaign_id, recipient_id=row.recipient_id,
                   data=dict(p.get("data") or {}))


class Dispatcher:
    """Claims due rows in batches and delivers them with ``concurrency`` threads."""

    def __init__(self, *, session_factory: sessionmaker[Session], settings: Settings,
                 channels: dict[str, Channel], hooks: DispatchHooks | None = None,
                 on_sent: Callable[[outbox.ClaimedRow], None] | None = None,
                 holder: str | None = None,
                 should_stop: Callable[[], bool] | None = None) -> None:
        self.factory = session_factory
        # asked before each claim and each send (the scheduler stepped down): claimed rows
        # not yet sent are given back, due at once for whoever leads next
        self.should_stop = should_stop or (lambda: False)
        self.holder = holder  # the scheduler's leadership id, kept on its claims
        self.settings = settings
        self.channels = channels
        secrets = partial(recipient_signing_secrets, session_factory)
        for channel in channels.values():
            channel.attach(secrets)
        self.hooks = hooks
        self.on_sent = on_sent

    def _deliver(self, row: outbox.ClaimedRow) -> str:
        d = self.settings.dispatch
        if self.should_stop() or (
                row.deadline and row.deadline - time.monotonic() < d.claim_timeout_seconds / 2):
            # stopping, or the batch ran long: a send starting now could outlive the claim
            # and race the dispatcher that takes it over; give the row back to be claimed
            with self.factory() as s:
                outbox.release(session=s, row=row)
            return "skipped"
        with self.factory() as s:  # a send is counted before it starts
            sending = outbox.begin_send(session=s, row=row)
        if sending is None:
            return "lost"
        row = sending
        channel = self.channels.get(row.channel)
        try:
            if channel is None:
                raise PermanentDeliveryError(f"channel '{row.channel}' is not enabled here")
            receipt = channel.send(message_for(row))
        except DeliveryError as exc:
            permanent = isinstance(exc, PermanentDeliveryError)
            error, status = exc.detail, exc.status
        except Exception as exc:  # a bug in a channel must not stop the batch
            permanent, error, status = False, f"{type(exc).__name__}: {exc}", None
        else:
            if self.on_sent is not None:
                self.on_sent(row)
            with self.factory() as s:
                ok = outbox.mark_delivered(session=s, row=row, response_status=receipt.status)
            return "delivered" if ok else "lost"
        with self.factory() as s:
            new = outbox.mark_failed(session=s, row=row, error=error, permanent=permanent,
                                     response_status=status, base=d.backoff_base_seconds,
                                     cap=d.backoff_max_seconds, jitter=d.backoff_jitter)
        if new == "dead":
            log.warning("dispatch_dead", outbox_id=row.id, channel=row.channel,
                        attempts=row.attempts, error=error[:200])
        return new or "lost"

    def _cancel(self, rows: Iterable[outbox.ClaimedRow]) -> int:
        n = 0
        with self.factory() as s:
            for row in rows:
                res = s.execute(update(Outbox).where(
                    Outbox.id == row.id, Outbox.claim_token == row.claim_token,
                    Outbox.status == "sending").values(status="cancelled", updated_at=utcnow(),
                                                       claimed_until=None))
                n += int(res.rowcount)  # type: ignore[attr-defined]
            s.commit()
        return n

    def run(self, *, statuses: Iterable[str] = ("pending",), include_expired: bool = True,
            budget_seconds: float | None = None, max_batches: int | None = None
            ) -> DispatchStats:
        """Claim and send until nothing is due, the time budget is spent or ``max_batches``."""
        d = self.settings.dispatch
        wanted = tuple(statuses)
        budget = d.tick_budget_seconds if budget_seconds is None else budget_seconds
        stats = DispatchStats()
        changed: set[str] = set()  # campaigns with rows delivered or dead-lettered
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=max(1, d.concurrency),
                                thread_name_prefix="dispatch") as pool:
            while time.monotonic() - t0 < budget and not self.should_stop():
                if max_batches is not None and stats.batches >= max_batches:
                    break
                rows = outbox.claim(session_factory=self.factory, limit=d.batch_size,
                                    statuses=wanted, include_expired=include_expired,
                                    claim_timeout=d.claim_timeout_seconds, holder=self.holder)
                if not rows:
                    break
                stats.batches += 1
                stats.claimed += len(rows)
                campaigns = {r.campaign_id for r in rows}
                stats.campaigns |= campaigns
                if self.hooks is not None:
                    blocked = self.hooks.blocked(self.factory, campaigns)
                    blocked |= self.hooks.started(self.factory, campaigns - blocked)
                    if blocked:
                        stats.cancelled += self._cancel(
                            r for r in rows if r.campaign_id in blocked)
                        rows = [r for r in rows if r.campaign_id not in blocked]
                for row, outcome in zip(rows, pool.map(self._deliver, rows), strict=True):
                    setattr(stats, outcome, getattr(stats, outcome) + 1)
                    if outcome in ("delivered", "dead"):
                        changed.add(row.campaign_id)
                if self.hooks is not None:
                    self.hooks.settled(self.factory, campaigns)
        stats.seconds = time.monotonic() - t0
        if stats.delivered or stats.dead:  # the evaluation worker recomputes what changed:
            with self.factory() as s:  # the scorecards, the effects of these categories
                mark_stale(s, "dispatch delivered or dead-lettered rows",
                           only_effects_of=evaluation_scope(s, changed))
                s.commit()
        if stats.claimed:
            log.info("dispatch_tick", statuses=list(wanted), **stats.as_dict())
        return stats
