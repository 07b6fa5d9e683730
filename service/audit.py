"""The append-only audit log: who did what to which entity, and when.

Every state change of a campaign, and every use of the ``import``, ``plan``, ``approve`` and
``admin`` scopes, appends one row through :func:`record`. Rows are never updated or deleted: the
ORM refuses both (:class:`AuditViolation`), and nothing in the service issues bulk statements
against the table.

What goes in: the actor (``key:<prefix>`` for an API key, ``cli:<user>`` for the command line,
``planner`` / ``scheduler`` for the service itself), a short action name, the entity's type and
id, and a small JSON ``detail`` of codes, ids, dates and reasons. What never goes in: secrets
(keys, tokens, passwords, signing secrets) and personal data (names, contacts, complaint text).
:func:`record` drops detail keys that look like either, as a second line of defence.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Index, Integer, String, event, select
from sqlalchemy.orm import Mapped, Mapper, Session, mapped_column

from service.store.base import Base, UtcDateTime, utcnow

__all__ = ["AuditEntry", "AuditViolation", "record", "list_entries", "REDACTED_KEYS"]

#: Detail keys (compared lower-case, as substrings) that :func:`record` never stores.
REDACTED_KEYS = ("secret", "password", "token", "api_key", "apikey", "authorization",
                 "contact", "email", "phone", "webhook_url", "url", "name_person", "text",
                 "entity_ids", "recipient_name")


class AuditViolation(RuntimeError):
    """Raised when code tries to change or delete an audit row."""


class AuditEntry(Base):
    """One append-only audit record."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64), index=True)
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    remote_addr: Mapped[str | None] = mapped_column(String(64))


def _refuse_update(_mapper: Mapper[Any], _conn: Any, target: AuditEntry) -> None:
    raise AuditViolation(f"audit entry {target.id} is append-only and cannot be changed")


def _refuse_delete(_mapper: Mapper[Any], _conn: Any, target: AuditEntry) -> None:
    raise AuditViolation(f"audit entry {target.id} is append-only and cannot be deleted")


event.listen(AuditEntry, "before_update", _refuse_update)
event.listen(AuditEntry, "before_delete", _refuse_delete)


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()
                if not any(bad in str(k).lower() for bad in REDACTED_KEYS)}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    detail: dict[str, Any] | None = None,
    remote_addr: str | None = None,
) -> AuditEntry:
    """Append one audit entry to ``session`` (committed with the caller's unit of work).

    Parameters
    ----------
    actor : ``key:<prefix>``, ``cli:<user>``, ``planner``, ``scheduler``, ...
    action : short verb, e.g. ``campaign.approve`` or ``import.file``.
    entity_type, entity_id : what was acted on (``campaign`` and its id, ...).
    detail : codes, ids, dates and reasons only; keys that look like secrets or personal data
        are dropped.
    remote_addr : the client address, when the caller decides it should be kept.
    """
    entry = AuditEntry(actor=actor[:100], action=action[:64], entity_type=entity_type[:64],
                       entity_id=str(entity_id)[:100], detail=_scrub(detail or {}),
                       remote_addr=remote_addr[:64] if remote_addr else None, at=utcnow())
    session.add(entry)
    return entry


def list_entries(
    *,
    session: Session,
    entity_type: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Audit entries in the order they were written (ascending id), filtered."""
    stmt = select(AuditEntry)
    if entity_type is not None:
        stmt = stmt.where(AuditEntry.entity_type == entity_type)
    if entity_id is not None:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor == actor)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    if after_id is not None:
        stmt = stmt.where(AuditEntry.id > after_id)
    return list(session.scalars(stmt.order_by(AuditEntry.id).limit(limit)))
