"""Outbox deliveries: list (cursor-paginated) and retry dead ones."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.api.deps import SessionDep, require
from service.api.pagination import PAGINATION_RESPONSES
from service.api.problems import PROBLEM_RESPONSES, problem_doc
from service.dispatch.outbox import aware, list_dispatches, retry_row
from service.store.tables import ApiKey

__all__ = ["router"]

router = APIRouter(tags=["dispatches"], responses=PROBLEM_RESPONSES)
Status = Literal["pending", "sending", "retrying", "delivered", "dead", "cancelled"]
_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: problem_doc("No such dispatch"),
    409: problem_doc("The dispatch is delivered or cancelled"),
}


class DispatchPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    idempotency_key: str = Field(description="Sent as `webhook-id`; receivers dedupe on it")
    campaign_id: str
    channel: str
    recipient_id: str
    destination: str
    status: Status
    attempts: int
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
        return aware(v)


class DispatchList(BaseModel):
    items: list[DispatchPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


@router.get("/dispatches", summary="List deliveries (filtered, cursor-paginated)",
            dependencies=[Depends(require("read"))], responses=PAGINATION_RESPONSES)
def get_dispatches(
    session: SessionDep,
    campaign: Annotated[str | None, Query(description="Campaign id")] = None,
    status: Status | None = None,
    channel: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> DispatchList:
    rows, nxt = list_dispatches(session=session, campaign=campaign, status=status,
                                channel=channel, cursor=cursor, limit=limit)
    return DispatchList(items=[DispatchPublic.model_validate(r) for r in rows], next_cursor=nxt)


@router.post("/dispatches/{dispatch_id}/retry", summary="Send a dead delivery again",
             responses=_RESPONSES)
def post_retry(
    dispatch_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    session: SessionDep,
    key: Annotated[ApiKey, Depends(require("approve"))],
) -> DispatchPublic:
    row = retry_row(session=session, outbox_id=dispatch_id, actor=f"key:{key.prefix}")
    return DispatchPublic.model_validate(row)
