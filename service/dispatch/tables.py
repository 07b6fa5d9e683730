"""The transactional outbox: one row per (campaign, channel, recipient).

Statuses::

    pending ──claim──► sending ──ack──► delivered
       ▲                 │  └──fail──► retrying ──claim──► sending …
       │                 │                 └──(attempts exhausted)──► dead
       └──retry (API)────┴── dead / retrying           (cancelled: the campaign was withdrawn)

A ``sending`` row whose claim expired (its dispatcher died) is claimed again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.store.base import Base, utcnow

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
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
