"""Recipients of reminders (department webhooks, e-mail contacts): register, list, change,
disable, rotate webhook signing secrets. Every operation needs the ``admin`` scope."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from service.api import pagination
from service.api.deps import SessionDep, SettingsDep, require
from service.api.problems import BODY_RESPONSES, PROBLEM_RESPONSES, problem_doc
from service.api.schema_types import UtcDatetime
from service.campaigns import recipients
from service.campaigns.tables import Recipient
from service.store.tables import ApiKey

__all__ = ["router"]

router = APIRouter(tags=["recipients"], responses=PROBLEM_RESPONSES)
_Id = Annotated[str, Path(description="Recipient id")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_doc("No such recipient", 404)}
Kind = Literal["department", "entity", "subscriber"]
_EXAMPLE: dict[str, Any] = {
    "id": "5d8a1c3e7b9f4a2c6e0d8b1a3c5e7f90", "name": "呼和浩特市市场监督管理局 执法系统",
    "kind": "department", "region": "150100", "categories": ["fireworks"], "sectors": [],
    "entity_id": None, "may_contact": True,
    "webhook_url": "https://hooks.example.gov.cn/forewarn", "email": None,
    "channels": ["webhook"], "active": True,
    "webhook_secrets": [{"created_at": "2027-01-05T02:00:00Z", "expires_at": None}],
    "created_at": "2027-01-05T02:00:00Z", "updated_at": "2027-01-05T02:00:00Z",
    "disabled_at": None}


def _actor(key: ApiKey) -> str:
    return f"key:{key.prefix}"


class SecretInfo(BaseModel):
    created_at: UtcDatetime
    expires_at: UtcDatetime | None = Field(description="None: valid until rotated")


class RecipientPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})
    id: str
    name: str
    kind: Kind
    region: str | None = Field(description="Region code (with the regions above and below "
                                           "it); None = every region")
    categories: list[str] = Field(description="Category codes; empty = every category")
    sectors: list[str] = Field(description="Sectors; empty = every sector")
    entity_id: str | None
    may_contact: bool
    webhook_url: str | None
    email: str | None
    channels: list[Literal["webhook", "email"]] = Field(
        description="Channels this recipient receives reminders through")
    active: bool
    webhook_secrets: list[SecretInfo] = Field(
        description="The signing secrets' dates (never the secrets), newest first")
    created_at: UtcDatetime
    updated_at: UtcDatetime
    disabled_at: UtcDatetime | None


class RecipientCreated(RecipientPublic):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {**_EXAMPLE, "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]})
    webhook_secret: str | None = Field(
        description="The webhook signing secret, shown only in this answer (None without a "
                    "webhook): configure it at the receiver")


class RecipientList(pagination.Page[RecipientPublic]):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [_EXAMPLE], "next_cursor": None}]})


class RecipientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "呼和浩特市市场监督管理局 执法系统", "kind": "department", "region": "150100",
         "categories": ["fireworks"], "webhook_url": "https://hooks.example.gov.cn/forewarn"}]})
    name: str = Field(min_length=1, max_length=200, description="Who receives the reminders")
    kind: Kind = Field("department", description="department (an official system), entity "
                       "(a regulated business) or subscriber")
    region: str | None = Field(None, description="Region code (`GET /v1/regions`); the "
                               "regions above and below it count too; null = every region")
    categories: list[str] = Field([], description="Category codes (`GET /v1/categories`); "
                                  "empty = every category")
    sectors: list[str] = Field([], description="Sectors of the categories; empty = every one")
    entity_id: str | None = Field(None, max_length=100, description="An entity's id in the "
                                  "enforcement records")
    may_contact: bool | None = Field(
        None, description="Consent to be contacted; default true for departments, false "
                          "otherwise (contacts are refused without it)")
    webhook_url: str | None = Field(None, max_length=2000, description="http(s) URL that "
                                    "receives signed reminders (checked by the SSRF guard)")
    email: str | None = Field(None, max_length=320, description="One plain e-mail address")


class RecipientPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"categories": ["fireworks", "food_safety"], "email": "duty@amr.example.gov.cn"}]})
    name: str | None = Field(None, min_length=1, max_length=200, description="New name")
    region: str | None = Field(None, description="Region code; null = every region")
    categories: list[str] | None = Field(None, description="Category codes; [] = every one")
    sectors: list[str] | None = Field(None, description="Sectors; [] = every one")
    entity_id: str | None = Field(None, max_length=100, description="Entity id")
    may_contact: bool | None = Field(None, description="false erases the contacts (null is "
                                     "refused: leave the field out to keep it)")
    webhook_url: str | None = Field(None, max_length=2000, description="Webhook URL; null "
                                    "removes the webhook")
    email: str | None = Field(None, max_length=320, description="E-mail; null removes it")
    active: bool | None = Field(None, description="false disables, true enables again (null "
                                "is refused)")


class DisableRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=500, description="Why (kept in the audit "
                               "trail)")


class RotateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"grace_hours": 24}]})
    grace_hours: float = Field(recipients.DEFAULT_GRACE_HOURS, ge=0, le=24 * 90,
                               description="How long the previous secrets keep signing")


class RotatedSecret(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "recipient": _EXAMPLE, "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "previous_valid_until": "2027-01-06T02:00:00Z"}]})
    recipient: RecipientPublic
    webhook_secret: str = Field(description="The new secret, shown only in this answer")
    previous_valid_until: UtcDatetime = Field(
        description="Until then webhooks also carry signatures of the previous secrets")


def public(row: Recipient) -> RecipientPublic:
    return RecipientPublic(
        id=row.id, name=row.name, kind=row.kind,
        region=row.region, categories=list(row.categories or []),
        sectors=list(row.sectors or []), entity_id=row.entity_id, may_contact=row.may_contact,
        webhook_url=row.webhook_url, email=row.email,
        channels=recipients.recipient_channels(row),
        active=row.active,
        webhook_secrets=[SecretInfo(created_at=dt.datetime.fromisoformat(s["created_at"]),
                                    expires_at=dt.datetime.fromisoformat(s["expires_at"])
                                    if s.get("expires_at") else None)
                         for s in row.webhook_secrets or []],
        created_at=row.created_at, updated_at=row.updated_at, disabled_at=row.disabled_at)


_ADMIN = Annotated[ApiKey, Depends(require("admin"))]


@router.post("/recipients", status_code=201, summary="Register a recipient",
             responses=BODY_RESPONSES)
def post_recipient(body: RecipientCreate, session: SessionDep, settings: SettingsDep,
                   key: _ADMIN) -> RecipientCreated:
    """Register a department endpoint, entity or subscriber with its channel (``webhook_url``
    and/or ``email``) and scope (region, categories, sectors). The webhook URL passes the
    SSRF guard and the e-mail address a syntax check, else 422 with the reason. A webhook
    recipient gets its own signing secret, returned only here. Needs the ``admin`` scope."""
    row, secret = recipients.register_recipient(session=session, settings=settings,
                                                actor=_actor(key), **body.model_dump())
    return RecipientCreated(**public(row).model_dump(), webhook_secret=secret)


@router.get("/recipients", summary="List recipients (filtered, cursor-paginated)",
            dependencies=[Depends(require("admin"))], responses=pagination.PAGINATION_RESPONSES)
def get_recipients(
    session: SessionDep,
    active: Annotated[bool | None, Query(description="Only active (true) or disabled "
                                                     "(false) recipients")] = None,
    kind: Annotated[Kind | None, Query(description="Only this kind")] = None,
    region: Annotated[str | None, Query(description="Recipients of this region or of every "
                                                    "region")] = None,
    category: Annotated[str | None, Query(description="Recipients of this category or of "
                                                      "every category")] = None,
    channel: Annotated[Literal["webhook", "email"] | None, Query(
        description="Only recipients reached through this channel")] = None,
    limit: pagination.LimitQuery = pagination.DEFAULT_LIMIT, cursor: pagination.CursorQuery = None,
) -> RecipientList:
    """Recipients ordered by name, with their channels, scope, state and the dates of their
    signing secrets (never the secrets). Needs the ``admin`` scope."""
    after = pagination.decode_cursor(cursor, (str, str)) if cursor else None
    rows = recipients.list_recipients(session=session, active=active, kind=kind, region=region,
                                      category=category, channel=channel, limit=limit,
                                      after=after)
    page, nxt = pagination.page_of(rows, limit, lambda r: (r.name, r.id))
    return RecipientList(items=[public(r) for r in page], next_cursor=nxt)


@router.get("/recipients/{recipient_id}", summary="One recipient",
            dependencies=[Depends(require("admin"))], responses=_NOT_FOUND)
def get_one(recipient_id: _Id, session: SessionDep) -> RecipientPublic:
    """A recipient with its channels, scope and state. Needs the ``admin`` scope."""
    return public(recipients.get_recipient(session=session, recipient_id=recipient_id))


@router.patch("/recipients/{recipient_id}", summary="Change a recipient",
              responses={**_NOT_FOUND, **BODY_RESPONSES})
def patch_recipient(recipient_id: _Id, body: RecipientPatch, session: SessionDep,
                    settings: SettingsDep, key: _ADMIN) -> RecipientCreated:
    """Change the name, scope, contacts, consent or state (the same checks as registration;
    withdrawing ``may_contact`` erases the contacts). A first webhook URL gets a signing
    secret, returned only here. Needs the ``admin`` scope."""
    row, secret = recipients.update_recipient(session=session, settings=settings,
                                              actor=_actor(key), recipient_id=recipient_id,
                                              changes=body.model_dump(exclude_unset=True))
    return RecipientCreated(**public(row).model_dump(), webhook_secret=secret)


@router.post("/recipients/{recipient_id}/disable", summary="Stop sending to a recipient",
             responses={**_NOT_FOUND, **BODY_RESPONSES})
def post_disable(recipient_id: _Id, session: SessionDep, key: _ADMIN,
                 body: DisableRequest | None = None) -> RecipientPublic:
    """No further campaign is addressed to the recipient (kept for the audit trail;
    ``PATCH {"active": true}`` enables it again). Needs the ``admin`` scope."""
    row = recipients.disable_recipient(session=session, actor=_actor(key),
                                       recipient_id=recipient_id,
                                       reason=body.reason if body else None)
    return public(row)


@router.post("/recipients/{recipient_id}/rotate-secret",
             summary="Rotate a webhook recipient's signing secret",
             responses={**_NOT_FOUND, **BODY_RESPONSES})
def post_rotate(recipient_id: _Id, session: SessionDep, key: _ADMIN,
                body: RotateRequest | None = None) -> RotatedSecret:
    """Create a new signing secret (returned only here); the previous ones keep signing for
    ``grace_hours`` (default 24), so webhooks carry both signatures while the receiver
    switches. 422 for a recipient without a webhook. Needs the ``admin`` scope."""
    grace = body.grace_hours if body else recipients.DEFAULT_GRACE_HOURS
    row, secret = recipients.rotate_webhook_secret(session=session, actor=_actor(key),
                                                   recipient_id=recipient_id,
                                                   grace_hours=grace)
    until = dt.datetime.fromisoformat(str(row.webhook_secrets[1]["expires_at"])) \
        if len(row.webhook_secrets) > 1 else row.updated_at
    return RotatedSecret(recipient=public(row), webhook_secret=secret,
                         previous_valid_until=until)
