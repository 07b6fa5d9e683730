"""Recipients managed without code: register, list, update, disable, rotate webhook secrets.

A recipient (a department's system, a regulated entity, a subscriber) receives reminders
through its own channel: ``webhook`` (a signed POST to ``webhook_url``) and/or ``email``.
Its scope is a region (with the regions above and below it; None = every region) and
optional category and sector lists (empty = every one); see
:func:`service.campaigns.service.resolve_audience`.

Checks at registration (and on every change), each a 422 naming the field and the reason:

* ``webhook_url``: ``http(s)://host/…`` without credentials; the host must resolve, and every
  address it resolves to must pass the SSRF guard (:mod:`service.channels.netguard`: no
  loopback, private, link-local, … unless the deployment allows them) — the same check the
  webhook channel repeats at every send;
* ``email``: one plain address ``local@domain`` (no display name, no spaces);
* region, categories and sectors must be known (``GET /v1/regions``, ``GET /v1/categories``);
* contacts are stored only for recipients that may be contacted (``may_contact``).

Webhook recipients get their own Standard Webhooks signing secret (``whsec_…``), shown once
at registration. :func:`rotate_webhook_secret` adds a new one and keeps the previous ones
valid for a grace period, during which every webhook carries a signature per secret, so the
receiver can switch without losing a message.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Sequence
from email.errors import HeaderParseError
from email.headerregistry import Address
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.audit import record
from service.campaigns.tables import Recipient
from service.errors import NotFound, UnprocessableContent
from service.store.base import as_utc
from service.store.pagination import keyset_after
from service.store.tables import Category, Region, utcnow

if TYPE_CHECKING:
    from service.config import Settings

__all__ = ["KINDS", "new_webhook_secret", "webhook_url_problem", "email_problem",
           "register_recipient", "update_recipient", "disable_recipient",
           "rotate_webhook_secret", "active_secrets", "recipient_channels",
           "get_recipient", "list_recipients", "recipient_signing_secrets",
           "DEFAULT_GRACE_HOURS"]

KINDS = ("department", "entity", "subscriber")
DEFAULT_GRACE_HOURS = 24.0
_EDITABLE = ("name", "region", "categories", "sectors", "entity_id", "may_contact",
             "webhook_url", "email", "active")


def new_webhook_secret() -> str:
    """A fresh Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _aware(t: dt.datetime | str | None) -> dt.datetime | None:
    return as_utc(dt.datetime.fromisoformat(t) if isinstance(t, str) else t)


def webhook_url_problem(url: str, settings: Settings) -> str | None:
    """Why ``url`` may not receive webhooks (None when it may)."""
    import httpx

    from service.channels.netguard import AddressRefused, resolve_vetted

    w = settings.channels.webhook
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"not a URL: {exc}"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "a webhook URL must be http(s)://host/…"
    if parsed.userinfo:
        return "a webhook URL must not carry credentials"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        resolve_vetted(parsed.host, port, allow_loopback=w.allow_loopback,
                       allow_private=w.allow_private)
    except AddressRefused as exc:
        return f"destination refused: {exc}"
    return None


def email_problem(address: str) -> str | None:
    """Why ``address`` is not one plain e-mail address (None when it is)."""
    if len(address) > 320 or any(c.isspace() for c in address):
        return "an e-mail address has no spaces and at most 320 characters"
    try:
        parsed = Address(addr_spec=address)
    except (HeaderParseError, ValueError, IndexError) as exc:
        return f"not an e-mail address: {exc}"
    if not parsed.username or not parsed.domain or parsed.addr_spec != address:
        return "an e-mail address is local@domain, without a display name"
    return None


def active_secrets(row: Recipient, now: dt.datetime | None = None) -> list[str]:
    """The recipient's signing secrets that have not expired, newest first."""
    now = now or utcnow()
    out = []
    for item in row.webhook_secrets or []:
        expires = _aware(item.get("expires_at"))
        if expires is None or expires > now:
            out.append(str(item["secret"]))
    return out


def recipient_channels(row: Recipient) -> list[str]:
    """The channels this recipient receives reminders through."""
    return [name for name, contact in (("webhook", row.webhook_url), ("email", row.email))
            if contact]


def _known(session: Session, *, region: str | None, categories: Sequence[str],
           sectors: Sequence[str]) -> None:
    if region is not None and session.get(Region, region) is None:
        raise UnprocessableContent(
            f"region: unknown region '{region}'; GET /v1/regions lists the known codes",
            field="region", value=region)
    cats = {c.code: c.sector for c in session.scalars(select(Category))}
    unknown = sorted(set(categories) - set(cats))
    if unknown:
        raise UnprocessableContent(
            f"categories: unknown category {', '.join(repr(u) for u in unknown)}; "
            "GET /v1/categories lists the known codes", field="categories", value=unknown)
    known_sectors = {s for s in cats.values() if s}
    bad = sorted(set(sectors) - known_sectors)
    if bad:
        raise UnprocessableContent(
            f"sectors: unknown sector {', '.join(repr(b) for b in bad)}; known: "
            f"{', '.join(sorted(known_sectors))} (the sectors of GET /v1/categories)",
            field="sectors", value=bad)


def _check_contacts(settings: Settings, *, may_contact: bool, webhook_url: str | None,
                    email: str | None) -> None:
    if (webhook_url or email) and not may_contact:
        raise UnprocessableContent("contacts are stored only for recipients that may be "
                                   "contacted; set may_contact or leave the contacts out",
                                   field="may_contact")
    if webhook_url:
        why = webhook_url_problem(webhook_url, settings)
        if why:
            raise UnprocessableContent(f"webhook_url: {why}", field="webhook_url")
    if email:
        why = email_problem(email)
        if why:
            raise UnprocessableContent(f"email: {why}", field="email")


def register_recipient(
    *,
    session: Session,
    settings: Settings,
    actor: str,
    name: str,
    kind: str = "department",
    region: str | None = None,
    categories: Sequence[str] = (),
    sectors: Sequence[str] = (),
    entity_id: str | None = None,
    may_contact: bool | None = None,
    webhook_url: str | None = None,
    email: str | None = None,
) -> tuple[Recipient, str | None]:
    """Register a recipient after the checks above; returns it and its webhook signing
    secret (only when it has a webhook; shown once, store it at the receiver).

    ``may_contact`` defaults to true for departments (an official system) and false for
    entities and subscribers, whose consent must be recorded explicitly.
    """
    name = name.strip()
    if not name:
        raise UnprocessableContent("name: must not be empty", field="name")
    if kind not in KINDS:
        raise UnprocessableContent(f"kind: must be {', '.join(KINDS)}, not '{kind}'",
                                   field="kind")
    contact = kind == "department" if may_contact is None else may_contact
    _known(session, region=region, categories=categories, sectors=sectors)
    _check_contacts(settings, may_contact=contact, webhook_url=webhook_url, email=email)
    secret = new_webhook_secret() if webhook_url else None
    now = utcnow()
    row = Recipient(name=name[:200], kind=kind, region=region, categories=list(categories),
                    sectors=list(sectors), entity_id=entity_id, may_contact=contact,
                    webhook_url=webhook_url, email=email, active=True,
                    webhook_secrets=[{"secret": secret, "created_at": now.isoformat(),
                                      "expires_at": None}] if secret else [],
                    created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    record(session=session, actor=actor, action="recipient.created", entity_type="recipient",
           entity_id=row.id, detail={"kind": kind, "region": region, "may_contact": contact,
                                     "channels": recipient_channels(row)})
    session.commit()
    return row, secret


def get_recipient(*, session: Session, recipient_id: str) -> Recipient:
    row = session.get(Recipient, recipient_id)
    if row is None:
        raise NotFound(f"recipient {recipient_id} does not exist")
    return row


def update_recipient(*, session: Session, settings: Settings, actor: str, recipient_id: str,
                     changes: dict[str, Any]) -> tuple[Recipient, str | None]:
    """Change a recipient's scope, contacts or state; the same checks as registration.

    Withdrawing ``may_contact`` erases the stored contacts. A recipient that gets its first
    webhook URL gets a signing secret (returned, shown once).
    """
    row = get_recipient(session=session, recipient_id=recipient_id)
    unknown = sorted(set(changes) - set(_EDITABLE))
    if unknown:
        raise UnprocessableContent(f"these fields cannot be changed: {', '.join(unknown)}")
    for flag in ("may_contact", "active"):  # stored flags are never empty
        if flag in changes and changes[flag] is None:
            raise UnprocessableContent(f"{flag}: must be true or false, not null (leave it "
                                       "out to keep the current value)", field=flag)
    new = {k: getattr(row, k) for k in _EDITABLE} | changes
    if not str(new["name"] or "").strip():
        raise UnprocessableContent("name: must not be empty", field="name")
    if "may_contact" in changes and not new["may_contact"]:
        new["webhook_url"] = new["email"] = None
    _known(session, region=new["region"], categories=new["categories"] or [],
           sectors=new["sectors"] or [])
    _check_contacts(settings, may_contact=bool(new["may_contact"]),
                    webhook_url=new["webhook_url"], email=new["email"])
    secret = None
    if new["webhook_url"] and not active_secrets(row):
        secret = new_webhook_secret()
        row.webhook_secrets = [{"secret": secret, "created_at": utcnow().isoformat(),
                                "expires_at": None}]
    if "active" in changes:
        row.disabled_at = None if new["active"] else utcnow()
    for k in _EDITABLE:
        setattr(row, k, new[k])
    row.name = str(row.name).strip()[:200]
    row.categories, row.sectors = list(row.categories or []), list(row.sectors or [])
    row.updated_at = utcnow()
    record(session=session, actor=actor, action="recipient.updated", entity_type="recipient",
           entity_id=row.id, detail={"fields": sorted(changes),
                                     "channels": recipient_channels(row)})
    session.commit()
    return row, secret


def disable_recipient(*, session: Session, actor: str, recipient_id: str,
                      reason: str | None = None) -> Recipient:
    """Stop sending to a recipient (kept for the audit trail; ``active`` false)."""
    row = get_recipient(session=session, recipient_id=recipient_id)
    if row.active:
        row.active = False
        row.disabled_at = row.updated_at = utcnow()
        record(session=session, actor=actor, action="recipient.disabled",
               entity_type="recipient", entity_id=row.id, detail={"reason": reason})
        session.commit()
    return row


def rotate_webhook_secret(*, session: Session, actor: str, recipient_id: str,
                          grace_hours: float = DEFAULT_GRACE_HOURS,
                          now: dt.datetime | None = None) -> tuple[Recipient, str]:
    """Add a new signing secret; the current ones stay valid for ``grace_hours`` (0 = they
    stop at once). Returns the recipient and the new secret (shown once)."""
    if grace_hours < 0:
        raise UnprocessableContent("grace_hours must not be negative", field="grace_hours")
    row = get_recipient(session=session, recipient_id=recipient_id)
    if not row.webhook_url:
        raise UnprocessableContent(f"recipient {row.id} has no webhook; only webhooks are "
                                   "signed", field="webhook_url")
    now = now or utcnow()
    until = now + dt.timedelta(hours=grace_hours)
    kept = []
    for item in row.webhook_secrets or []:
        expires = _aware(item.get("expires_at"))
        if expires is not None and expires <= now:
            continue  # already expired: dropped for good
        if expires is None or expires > until:
            expires = until
        kept.append({**item, "expires_at": expires.isoformat()})
    secret = new_webhook_secret()
    row.webhook_secrets = [{"secret": secret, "created_at": now.isoformat(),
                            "expires_at": None}, *kept]
    row.updated_at = now
    record(session=session, actor=actor, action="recipient.secret_rotated",
           entity_type="recipient", entity_id=row.id,
           detail={"grace_hours": grace_hours, "previous_valid_until": until.isoformat()})
    session.commit()
    return row, secret


def list_recipients(*, session: Session, active: bool | None = None, kind: str | None = None,
                    region: str | None = None, category: str | None = None,
                    channel: str | None = None, limit: int = 100,
                    after: Sequence[Any] | None = None) -> list[Recipient]:
    """Recipients by (name, id), filtered; ``limit + 1`` rows for the caller to page.

    ``category`` keeps recipients whose category list is empty (all) or names it; ``region``
    those of exactly that region or of every region.
    """
    stmt = select(Recipient)
    if active is not None:
        stmt = stmt.where(Recipient.active.is_(active))
    if kind:
        stmt = stmt.where(Recipient.kind == kind)
    if region:
        stmt = stmt.where((Recipient.region == region) | Recipient.region.is_(None))
    if channel == "webhook":
        stmt = stmt.where(Recipient.webhook_url.is_not(None))
    elif channel == "email":
        stmt = stmt.where(Recipient.email.is_not(None))
    if after is not None:
        stmt = stmt.where(keyset_after(((Recipient.name, False), (Recipient.id, False)),
                                       after))
    rows = list(session.scalars(stmt.order_by(Recipient.name, Recipient.id)))
    if category:
        rows = [r for r in rows if not r.categories or category in r.categories]
    return rows[:limit + 1]


def recipient_signing_secrets(session_factory: sessionmaker[Session],
                              recipient_id: str) -> list[str]:
    """The unexpired signing secrets of a recipient (empty for unknown ids, e.g. ``public``)."""
    with session_factory() as s:
        row = s.get(Recipient, recipient_id)
        return active_secrets(row) if row is not None else []
