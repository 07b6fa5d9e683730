"""API keys: creation, verification (hashed, with a lookup prefix), listing, revocation."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.store.tables import ApiKey, utcnow

__all__ = ["SCOPES", "create_key", "verify_key", "list_keys", "revoke_key", "has_scope"]

SCOPES = ("read", "import", "plan", "approve", "admin")
_PREFIX_LEN = 8


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    *,
    session: Session,
    name: str,
    scopes: Sequence[str],
    expires_at: dt.datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the plaintext key (shown once, never stored)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    prefix = secrets.token_hex(_PREFIX_LEN // 2)
    plaintext = f"fw_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        prefix=prefix,
        key_hash=_hash(plaintext),
        name=name,
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
    )
    session.add(row)
    session.commit()
    return row, plaintext


def verify_key(*, session: Session, plaintext: str) -> ApiKey | None:
    """The active key matching ``plaintext``, or None. Records the time of use."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != "fw":
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if row is None or not hmac.compare_digest(row.key_hash, _hash(plaintext)):
        return None
    now = utcnow()
    if row.revoked_at is not None or (row.expires_at and row.expires_at <= now):
        return None
    last = row.last_used_at
    if last is None or now - last > dt.timedelta(minutes=1):
        row.last_used_at = now
        session.commit()
    return row


def has_scope(key: ApiKey, scope: str) -> bool:
    return "admin" in key.scopes or scope in key.scopes


def list_keys(*, session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def revoke_key(*, session: Session, prefix: str) -> ApiKey | None:
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return row
