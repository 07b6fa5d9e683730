"""API keys without the CLI: create (the secret is shown once), list, revoke. ``admin`` scope."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import SessionDep, require
from service.api.problems import BODY_RESPONSES, PROBLEM_RESPONSES, problem_doc
from service.api.schema_types import UtcDatetime
from service.errors import NotFound, UnprocessableContent
from service.store.keys import SCOPES, create_key, list_keys, revoke_key
from service.store.tables import ApiKey, utcnow

__all__ = ["router"]

router = APIRouter(tags=["keys"], responses=PROBLEM_RESPONSES)
Scope = Literal["read", "import", "plan", "approve", "admin"]
_EXAMPLE: dict[str, Any] = {
    "prefix": "9c41e07a", "name": "呼和浩特市局 值班", "scopes": ["approve", "read"],
    "state": "active", "created_at": "2027-01-05T02:00:00Z",
    "expires_at": "2027-04-05T02:00:00Z", "revoked_at": None,
    "last_used_at": "2027-01-12T01:31:07Z"}


class KeyPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})
    prefix: str = Field(description="Public part of the key (`fw_<prefix>_…`); names it")
    name: str
    scopes: list[str]
    state: Literal["active", "expired", "revoked"]
    created_at: UtcDatetime
    expires_at: UtcDatetime | None
    revoked_at: UtcDatetime | None
    last_used_at: UtcDatetime | None = Field(
        description="Last authenticated request (recorded at most once a minute)")


class KeyCreated(KeyPublic):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {**_EXAMPLE, "last_used_at": None,
         "key": "fw_9c41e07a_Q2hlY2sgdGhlIGRvY3MgZm9yIGRldGFpbHMgb24ga2V5cw"}]})
    key: str = Field(description="The key itself, shown only in this answer")


class KeyList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [_EXAMPLE]}]})
    items: list[KeyPublic]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "呼和浩特市局 值班", "scopes": ["read", "approve"], "expires_days": 90}]})
    name: str = Field(min_length=1, max_length=200, description="Who or what uses the key")
    scopes: list[Scope] = Field(min_length=1, description=f"Of {', '.join(SCOPES)}; "
                                "`admin` implies every scope")
    expires_days: int | None = Field(None, ge=1, le=3650,
                                     description="Expire after this many days (default never)")


def key_state(row: ApiKey, now: dt.datetime | None = None) -> Literal["active", "expired",
                                                                         "revoked"]:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def _public(row: ApiKey) -> KeyPublic:
    return KeyPublic(prefix=row.prefix, name=row.name, scopes=[str(s) for s in row.scopes],
                     state=key_state(row), created_at=row.created_at,
                     expires_at=row.expires_at, revoked_at=row.revoked_at,
                     last_used_at=row.last_used_at)


_ADMIN = [Depends(require("admin"))]


@router.post("/keys", status_code=201, summary="Create an API key (shown once)",
             dependencies=_ADMIN, responses=BODY_RESPONSES)
def post_key(body: KeyCreate, session: SessionDep) -> KeyCreated:
    """Create a key with the given scopes and optional expiry. The key is in this answer
    only (the service keeps its hash). Needs the ``admin`` scope."""
    expires = utcnow() + dt.timedelta(days=body.expires_days) if body.expires_days else None
    try:
        row, plaintext = create_key(session=session, name=body.name.strip(),
                                    scopes=list(body.scopes), expires_at=expires)
    except ValueError as exc:
        raise UnprocessableContent(str(exc), field="scopes") from exc
    return KeyCreated(**_public(row).model_dump(), key=plaintext)


@router.get("/keys", summary="List API keys with expiry and last use", dependencies=_ADMIN)
def get_keys(session: SessionDep) -> KeyList:
    """Every key, oldest first, with its scopes, state, expiry and last use (never the key).
    Times are UTC (``Z``). Needs the ``admin`` scope."""
    return KeyList(items=[_public(k) for k in list_keys(session=session)])


@router.post("/keys/{prefix}/revoke", summary="Revoke an API key", dependencies=_ADMIN,
             responses={404: problem_doc("No key with this prefix", 404)})
def post_revoke(prefix: Annotated[str, Path(max_length=16, description="The key's prefix")],
                session: SessionDep) -> KeyPublic:
    """Revoke the key; it stops working within ``FOREWARN_API__KEY_CACHE_SECONDS`` (5 s by
    default) in every API process. Revoking twice is harmless. Needs the ``admin`` scope."""
    row = revoke_key(session=session, prefix=prefix)
    if row is None:
        raise NotFound(f"no key with prefix {prefix}")
    return _public(row)
