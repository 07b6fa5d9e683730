"""The transactional outbox: one row per (campaign, channel, recipient).

Statuses::

    pending ──claim──► sending ──ack──► delivered
       ▲                 │  └──fail──► retrying ──claim──► sending …
       │                 │                 └──(attempts exhausted)──► dead
       └──retry (API)────┴── dead / retrying           (cancelled: the campaign was withdrawn)

A ``sending`` row whose claim expired (its dispatcher died) is claimed again; a scheduler
that becomes leader gives back at once the rows a previous leader (``claimed_by``) held.
``attempts`` counts sends (a row's channel was called), ``claims`` counts claims.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from service.store.base import Base, UtcDateTime, utcnow

__all__ = ["Outbox", "STATUSES", "TERMINAL", "OPEN"]

STATUSES = ("pending", "sending", "retrying", "delivered", "dead", "cancelled")
TERMINAL = frozenset({"delivered", "dead", "cancelled"})
OPEN = frozenset({"pending", "sending", "retrying"})

_ID = BigInteger().with_variant(Integer, "sqlite")


class Outbox(Base):
    """One delivery: who, through which channel, what, and how it went."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_campaign_status", "campaign_id", "status"),
    )
    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    campaign_id: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(32))
    recipient_id: Mapped[str] = mapped_column(String(64))
    destination: Mapped[str] = mapped_column(String(500))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # sends
    claims: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    claimed_by: Mapped[str | None] = mapped_column(String(100))  # the claiming scheduler
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
