"""Outbox deliveries: list (cursor-paginated) and retry dead ones."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.api import pagination
from service.api.deps import SessionDep, require
from service.api.problems import PROBLEM_RESPONSES, problem_doc
from service.dispatch.outbox import list_dispatches, retry_row
from service.store.base import as_utc
from service.store.tables import ApiKey

__all__ = ["router"]

router = APIRouter(tags=["dispatches"], responses=PROBLEM_RESPONSES)
Status = Literal["pending", "sending", "retrying", "delivered", "dead", "cancelled"]
_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: problem_doc("No such dispatch", 404),
    409: problem_doc("The dispatch is neither dead nor retrying", 409),
}


_DISPATCH_EXAMPLE: dict[str, Any] = {
    "id": 42, "idempotency_key": "msg_02a78e1de19ab44c5c3e672cef24d1ff",
    "campaign_id": "3f2c9a7e5b8d4c1e9a0b6d2f4e8c1a57", "channel": "webhook",
    "recipient_id": "5d8a1c3e7b9f4a2c6e0d8b1a3c5e7f90",
    "destination": "https://hooks.example.gov.cn/forewarn", "status": "pending",
    "attempts": 0, "claims": 0, "max_attempts": 8, "next_attempt_at": "2027-01-18T00:00:00Z",
    "last_error": None, "response_status": None, "created_at": "2027-01-12T03:15:01Z",
    "updated_at": "2027-01-18T00:00:00Z", "delivered_at": None,
}


class DispatchPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True,
                              json_schema_extra={"examples": [_DISPATCH_EXAMPLE]})
    id: int
    idempotency_key: str = Field(description="Sent as `webhook-id`; receivers dedupe on it")
    campaign_id: str
    channel: str
    recipient_id: str
    destination: str
    status: Status
    attempts: int = Field(description="Sends: times a channel was called with this row")
    claims: int = Field(0, description="Times a dispatcher claimed the row (a claim given "
                                       "back unsent, or lost in a crash, is not a send)")
    max_attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    response_status: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    delivered_at: dt.datetime | None

    @field_validator("next_attempt_at", "created_at", "updated_at", "delivered_at")
    @classmethod
    def _utc(cls, v: dt.datetime | None) -> dt.datetime | None:
        return as_utc(v)


class DispatchList(pagination.Page[DispatchPublic]):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [_DISPATCH_EXAMPLE], "next_cursor": None}]})


@router.get("/dispatches", summary="List deliveries (filtered, cursor-paginated)",
            dependencies=[Depends(require("read"))], responses=pagination.PAGINATION_RESPONSES)
def get_dispatches(
    session: SessionDep,
    campaign: Annotated[str | None, Query(description="Campaign id")] = None,
    status: Annotated[Status | None, Query(description="Only this status")] = None,
    channel: Annotated[str | None, Query(description="Only this channel, e.g. `webhook`")
                       ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size (1–1000)")] = 100,
    cursor: Annotated[str | None, Query(
        description="`next_cursor` of the previous page (opaque)")] = None,
) -> DispatchList:
    """One outbox row per campaign, channel and recipient, with its delivery state and
    attempts, oldest first. Needs the ``read`` scope."""
    rows, nxt = list_dispatches(session=session, campaign=campaign, status=status,
                                channel=channel, cursor=cursor, limit=limit)
    return DispatchList(items=[DispatchPublic.model_validate(r) for r in rows], next_cursor=nxt)


@router.post("/dispatches/{dispatch_id}/retry", summary="Send a dead delivery again",
             responses=_RESPONSES)
def post_retry(
    dispatch_id: Annotated[int, Path(ge=1, le=2**63 - 1,
                                     description="Dispatch (outbox row) id")],
    session: SessionDep,
    key: Annotated[ApiKey, Depends(require("approve"))],
) -> DispatchPublic:
    """Put a dead (or retrying) delivery back in the queue, due now, with a fresh attempt
    budget; the idempotency key stays the same. Needs the ``approve`` scope; 409 for any
    other status."""
    row = retry_row(session=session, outbox_id=dispatch_id, actor=f"key:{key.prefix}")
    return DispatchPublic.model_validate(row)
