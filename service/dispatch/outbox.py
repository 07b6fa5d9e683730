"""Outbox rows: enqueue idempotently, claim atomically, mark, back off, dead-letter, retry.

Claims are one statement: ``UPDATE outbox … WHERE id IN (SELECT id … FOR UPDATE SKIP LOCKED
LIMIT n) RETURNING …`` on PostgreSQL, the same without the lock clause on SQLite (≥ 3.35), where
one statement is atomic and is the first of its transaction. A claim carries a random token and
an expiry; marks only apply while the token matches, and a claim that expired (its dispatcher
died) is taken over. A row marked ``delivered`` is never claimed again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from service.dispatch.tables import STATUSES, Outbox
from service.errors import Conflict, NotFound, UnprocessableContent
from service.store.base import utcnow
from service.store.pagination import keyset_page, where_given

__all__ = [
    "ClaimedRow",
    "idempotency_key",
    "enqueue",
    "claim",
    "mark_delivered",
    "mark_failed",
    "release",
    "begin_send",
    "reclaim_orphans",
    "backoff_delay",
    "retry_row",
    "campaign_counts",
    "list_dispatches",
    "get_dispatch",
]

_T: Table = Outbox.__table__  # type: ignore[assignment]




def idempotency_key(campaign_id: str, channel: str, recipient_id: str) -> str:
    """Stable key of one (campaign, channel, recipient): ``msg_`` + 32 hex digits."""
    digest = hashlib.sha256(f"{campaign_id}|{channel}|{recipient_id}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def enqueue(*, session: Session, rows: Sequence[dict[str, Any]],
            revive_cancelled: bool = True) -> int:
    """Insert outbox rows, skipping keys that exist (``INSERT … ON CONFLICT DO NOTHING``).

    Each row needs ``campaign_id``, ``channel``, ``recipient_id``, ``destination``,
    ``payload`` and ``next_attempt_at``; ``idempotency_key`` defaults to
    :func:`idempotency_key`. With ``revive_cancelled`` a conflicting row that was
    ``cancelled`` (its campaign went back to review and is scheduled again) is reset to
    ``pending`` with the new content; live, delivered and dead rows are never touched.
    Does not commit: the caller's transaction decides. Returns rows inserted or revived.
    """
    if not rows:
        return 0
    now = utcnow()
    values = []
    for r in rows:
        # every row carries every key: a multi-row VALUES takes its columns from the first
        v = {"status": "pending", "attempts": 0, "max_attempts": 8, "created_at": now,
             "updated_at": now, "last_error": None, **r}
        v.setdefault("idempotency_key",
                     idempotency_key(v["campaign_id"], v["channel"], v["recipient_id"]))
        values.append(v)
    dialect = session.get_bind().dialect.name
    ins = postgresql.insert(_T) if dialect == "postgresql" else sqlite.insert(_T)
    inserted = 0
    for i in range(0, len(values), 1000):
        base = ins.values(values[i:i + 1000])
        if revive_cancelled:
            ex = base.excluded
            stmt = base.on_conflict_do_update(
                index_elements=["idempotency_key"],
                set_={"status": "pending", "payload": ex.payload,
                      "destination": ex.destination, "next_attempt_at": ex.next_attempt_at,
                      "max_attempts": ex.max_attempts, "attempts": 0, "last_error": None,
                      "claim_token": None, "claimed_until": None, "updated_at": now},
                where=_T.c.status == "cancelled").returning(_T.c.id)
        else:
            stmt = base.on_conflict_do_nothing(
                index_elements=["idempotency_key"]).returning(_T.c.id)
        inserted += len(session.execute(stmt).all())
    return inserted


@dataclass(frozen=True)
class ClaimedRow:
    """A row this dispatcher holds until ``claimed_until``; marks need ``claim_token``."""

    id: int
    idempotency_key: str
    campaign_id: str
    channel: str
    recipient_id: str
    destination: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    claim_token: str
    deadline: float = 0.0  # time.monotonic() at which the claim expires


def claim(*, session_factory: sessionmaker[Session], limit: int,
          statuses: Iterable[str] = ("pending",), include_expired: bool = True,
          claim_timeout: float = 300.0, now: dt.datetime | None = None,
          holder: str | None = None) -> list[ClaimedRow]:
    """Atomically take up to ``limit`` due rows (and expired claims) for this dispatcher.

    Counts a claim (``claims``), not a send: :func:`begin_send` counts ``attempts``.
    ``holder`` (the scheduler's leadership id) lets a later leader give the rows back at
    once if this one dies (:func:`reclaim_orphans`)."""
    now = now or utcnow()
    token = uuid.uuid4().hex
    deadline = time.monotonic() + claim_timeout
    wanted = list(statuses)
    due = and_(_T.c.status.in_(wanted), _T.c.next_attempt_at <= now)
    if include_expired:
        due = or_(due, and_(_T.c.status == "sending", _T.c.claimed_until < now))
    with session_factory() as s:
        pg = s.get_bind().dialect.name == "postgresql"
        sub = select(_T.c.id).where(due).order_by(_T.c.next_attempt_at, _T.c.id).limit(limit)
        if pg:
            # a CTE evaluated once: as a plain IN subquery PostgreSQL may rescan the LIMIT
            # subquery per row and claim more than ``limit`` rows (4 for a limit of 2)
            picked = (sub.with_for_update(skip_locked=True).cte("picked")
                      .prefix_with("MATERIALIZED"))
            ids: Any = select(picked.c.id).scalar_subquery()
        else:
            ids = sub.scalar_subquery()
        stmt = (update(_T).where(_T.c.id.in_(ids)).where(due)
                .values(status="sending", claim_token=token,
                        claimed_until=now + dt.timedelta(seconds=claim_timeout),
                        claims=_T.c.claims + 1, claimed_by=holder, updated_at=now)
                .returning(_T.c.id, _T.c.idempotency_key, _T.c.campaign_id, _T.c.channel,
                           _T.c.recipient_id, _T.c.destination, _T.c.payload, _T.c.attempts,
                           _T.c.max_attempts))
        rows = s.execute(stmt).all()
        s.commit()
    out = [ClaimedRow(id=r.id, idempotency_key=r.idempotency_key, campaign_id=r.campaign_id,
                      channel=r.channel, recipient_id=r.recipient_id,
                      destination=r.destination,
                      payload=r.payload if isinstance(r.payload, dict) else json.loads(r.payload),
                      attempts=r.attempts, max_attempts=r.max_attempts, claim_token=token,
                      deadline=deadline)
           for r in rows]
    out.sort(key=lambda r: r.id)
    return out


def mark_delivered(*, session: Session, row: ClaimedRow, response_status: int | None = None,
                   detail: str | None = None) -> bool:
    """Record the receiver's acknowledgement; False if the claim was lost meanwhile."""
    now = utcnow()
    res = session.execute(
        update(_T).where(_T.c.id == row.id, _T.c.claim_token == row.claim_token,
                         _T.c.status == "sending")
        .values(status="delivered", delivered_at=now, updated_at=now, claimed_until=None,
                response_status=response_status, last_error=None))
    session.commit()
    return bool(res.rowcount)  # type: ignore[attr-defined]


def begin_send(*, session: Session, row: ClaimedRow) -> ClaimedRow | None:
    """Count a send (``attempts``) just before the channel is called; commits. Returns the
    row with its new count, None if the claim was lost meanwhile."""
    got = session.execute(
        update(_T).where(_T.c.id == row.id, _T.c.claim_token == row.claim_token,
                         _T.c.status == "sending")
        .values(attempts=_T.c.attempts + 1, updated_at=utcnow())
        .returning(_T.c.attempts)).first()
    session.commit()
    return None if got is None else dataclasses.replace(row, attempts=int(got.attempts))


def release(*, session: Session, row: ClaimedRow) -> bool:
    """Give an unsent claimed row back at once (no send was counted)."""
    res = session.execute(
        update(_T).where(_T.c.id == row.id, _T.c.claim_token == row.claim_token,
                         _T.c.status == "sending")
        .values(status=_unsent_status(), claim_token=None, claimed_until=None,
                claimed_by=None, next_attempt_at=utcnow(), updated_at=utcnow()))
    session.commit()
    return bool(res.rowcount)  # type: ignore[attr-defined]


def _unsent_status() -> Any:
    return case((_T.c.attempts == 0, "pending"), else_="retrying")


def reclaim_orphans(*, session_factory: sessionmaker[Session], holder: str,
                    before: dt.datetime) -> int:
    """Give back at once the rows other schedulers claimed before ``before`` (the moment
    ``holder`` became leader): only the leader dispatches, so their claimer lost the lease --
    it died -- and need not be waited for until its claims expire. Rows without a
    ``claimed_by`` (a manual ``forewarn dispatch run``) keep their expiry. Returns the
    count; a row it returns may have been sent already (at-least-once; receivers dedupe on
    ``webhook-id``), its ``attempts`` says so."""
    with session_factory() as s:
        res = s.execute(update(_T).where(
            _T.c.status == "sending", _T.c.claimed_by.is_not(None),
            _T.c.claimed_by != holder, _T.c.updated_at < before)
            .values(status=_unsent_status(), claim_token=None, claimed_until=None,
                    claimed_by=None, next_attempt_at=utcnow(), updated_at=utcnow()))
        s.commit()
        return int(res.rowcount)  # type: ignore[attr-defined]


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: float,
                  rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    ``min(cap, base · 2^(attempt-1))``, of which the share ``jitter`` is drawn uniformly at
    random, so retries of many rows that failed together spread out.
    """
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    jitter = min(max(jitter, 0.0), 1.0)
    return float(delay * (1 - jitter) + (rng or random).uniform(0, delay * jitter))


def mark_failed(*, session: Session, row: ClaimedRow, error: str, permanent: bool,
                response_status: int | None = None, base: float = 30.0,
                cap: float = 6 * 3600.0, jitter: float = 0.5) -> str | None:
    """Schedule a retry with backoff, or dead-letter the row; returns the new status
    (None if the claim was lost meanwhile)."""
    now = utcnow()
    dead = permanent or row.attempts >= row.max_attempts
    values: dict[str, Any] = {"last_error": error[:2000], "response_status": response_status,
                              "updated_at": now, "claimed_until": None}
    if dead:
        values["status"] = "dead"
    else:  # attempts counts sends: the backoff grows with them
        values["status"] = "retrying"
        values["next_attempt_at"] = now + dt.timedelta(
            seconds=backoff_delay(row.attempts, base=base, cap=cap, jitter=jitter))
    res = session.execute(
        update(_T).where(_T.c.id == row.id, _T.c.claim_token == row.claim_token,
                         _T.c.status == "sending").values(**values))
    session.commit()
    return str(values["status"]) if res.rowcount else None  # type: ignore[attr-defined]


def get_dispatch(*, session: Session, outbox_id: int) -> Outbox:
    row = session.get(Outbox, outbox_id)
    if row is None:
        raise NotFound(f"dispatch {outbox_id} does not exist")
    return row


def retry_row(*, session: Session, outbox_id: int, actor: str = "system",
              max_extra_attempts: int | None = None) -> Outbox:
    """Send a dead (or waiting) row again as soon as a dispatcher runs; commits.

    Delivered and cancelled rows cannot be retried (409). The attempt budget is extended so the
    row gets its full number of attempts again.
    """
    row = get_dispatch(session=session, outbox_id=outbox_id)
    if row.status not in ("dead", "retrying"):
        raise Conflict(f"dispatch {outbox_id} is {row.status}; only dead or retrying "
                       "deliveries can be retried", status_now=row.status)
    now = utcnow()
    extra = max_extra_attempts or 8
    session.execute(update(_T).where(_T.c.id == outbox_id, _T.c.status.in_(("dead", "retrying")))
                    .values(status="retrying", next_attempt_at=now, updated_at=now,
                            max_attempts=_T.c.attempts + extra, claim_token=None))
    from service.audit import record

    record(session=session, actor=actor, action="dispatch.retry", entity_type="dispatch",
           entity_id=str(outbox_id), detail={"from": row.status, "campaign": row.campaign_id,
                                             "channel": row.channel})
    session.commit()
    session.refresh(row)
    return row


def campaign_counts(*, session: Session, campaign_ids: Iterable[str]
                    ) -> dict[str, dict[str, int]]:
    """Rows per status for each campaign."""
    ids = list(set(campaign_ids))
    out: dict[str, dict[str, int]] = {c: {} for c in ids}
    if not ids:
        return out
    for cid, status, n in session.execute(
            select(_T.c.campaign_id, _T.c.status, func.count())
            .where(_T.c.campaign_id.in_(ids)).group_by(_T.c.campaign_id, _T.c.status)):
        out[cid][status] = int(n)
    return out


def list_dispatches(*, session: Session, campaign: str | None = None,
                    status: str | None = None, channel: str | None = None,
                    cursor: str | None = None, limit: int = 100
                    ) -> tuple[list[Outbox], str | None]:
    """Rows by id (oldest first) after ``cursor``; returns the page and the next cursor."""
    if status is not None and status not in STATUSES:
        raise UnprocessableContent(f"status must be one of {', '.join(STATUSES)}")
    stmt = where_given(select(Outbox), (Outbox.campaign_id, "==", campaign),
                       (Outbox.status, "==", status), (Outbox.channel, "==", channel))
    return keyset_page(session, stmt, ((Outbox.id, False),), types=(int,), cursor=cursor,
                       limit=limit)


