"""Reminder campaigns: plan, list, inspect, create, edit, approve, cancel, preview, audit."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import SessionDep, SettingsDep, require
from service.api.pagination import (
    PAGINATION_RESPONSES,
    CursorQuery,
    decode_cursor,
    encode_cursor,
)
from service.api.problems import BODY_RESPONSES, PROBLEM_RESPONSES, problem_doc
from service.api.schema_types import UtcDatetime
from service.audit import list_entries
from service.campaigns.service import (
    STATUSES,
    approve_campaign,
    campaign_peak,
    cancel_campaign,
    create_campaign,
    get_campaign,
    list_campaigns,
    local_today,
    plan_campaigns,
    preview,
    update_campaign,
)
from service.errors import UnprocessableContent
from service.store.tables import ApiKey

__all__ = ["router"]

router = APIRouter(tags=["campaigns"], responses=PROBLEM_RESPONSES)
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_doc("Not found")}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    404: problem_doc("Not found"),
    409: problem_doc("The campaign's status does not allow this"),
    **BODY_RESPONSES,
}
Status = Literal["draft", "dropped", "approved", "scheduled", "dispatching", "sent",
                 "partially_failed", "cancelled", "superseded", "needs_review"]
assert set(get_args(Status)) == set(STATUSES)


def _actor(key: ApiKey) -> str:
    return f"key:{key.prefix}"


class ConstraintNote(BaseModel):
    constraint: str = Field(description="not_in_past, blackout, min_spacing, weekly_capacity")
    action: str = Field(description="moved, dropped, or kept (a date set by hand)")
    reason: str
    from_: str | None = Field(None, alias="from")
    to: str | None = None
    model_config = ConfigDict(populate_by_name=True)


class CampaignSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    status: Status
    origin: Literal["planned", "manual"]
    category: str
    region: str
    title: str
    window_start: dt.date
    window_end: dt.date
    send_date: dt.date
    planned_send_date: dt.date = Field(description="Send date before constraints moved it")
    lead_days: int
    rank: int | None = Field(description="1 = most expected excess in its planning pass")
    probability: float | None
    expected_excess: float | None
    public: bool
    approved_by: str | None
    approved_at: UtcDatetime | None
    cancelled_by: str | None
    cancelled_at: UtcDatetime | None
    updated_at: UtcDatetime


class PeakOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    run_id: str
    series_id: str
    signal: str
    start: dt.date
    end: dt.date
    peak_week: dt.date
    expected_count: float
    expected_excess: float
    max_probability: float
    threshold: float


class CampaignDetail(CampaignSummary):
    signal: str | None
    peak_week: dt.date | None
    expected_count: float | None
    threshold: float | None
    run_id: str | None = Field(description="Forecast run the campaign was planned from")
    last_run_id: str | None = Field(description="Latest run that still predicted its window")
    approved_run_id: str | None = Field(description="Run frozen at approval (counterfactual)")
    peak: PeakOut | None = None
    evidence: list[dict[str, Any]] = Field(
        description="Peak windows (and their weekly P(spike)) behind the campaign")
    constraint_notes: list[ConstraintNote]
    review: dict[str, Any] = Field(description="Why it needs review, and the new proposal")
    audience: dict[str, Any] = Field(description="public, number of entities and recipients")
    notify_entities: bool
    content_overrides: dict[str, Any]
    locked_fields: list[str]
    notes: str | None
    cancel_reason: str | None
    created_by: str
    created_at: UtcDatetime


class CampaignList(BaseModel):
    items: list[CampaignSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class PlanRequest(BaseModel):
    run_id: str | None = Field(None, description="Plan from this run (default: the latest)")
    categories: list[str] | None = Field(None, description="Only these categories")
    today: dt.date | None = Field(None, description="Plan as of this day (default: today)")


class PlanError(BaseModel):
    category: str
    detail: str


class PlanOut(BaseModel):
    run_id: str
    today: dt.date
    windows: int
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    flagged: list[str] = Field(description="Approved campaigns now needing review")
    superseded: list[str]
    dropped: list[str] = Field(description="Campaigns a constraint left without a send date")
    untouched: list[str]
    errors: list[PlanError] = Field(description="Categories that could not be planned")


class CampaignCreate(BaseModel):
    category: str
    region: str
    window_start: dt.date
    window_end: dt.date
    send_date: dt.date | None = Field(None, description="Default: window start − lead days")
    title: str | None = Field(None, max_length=300)
    content_overrides: dict[str, str] = Field(
        default_factory=dict, description="Jinja2 template per channel (or `default`)")
    public: bool = True
    notify_entities: bool = True
    notes: str | None = Field(None, max_length=5000)


class CampaignPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(None, max_length=300)
    content_overrides: dict[str, str | None] | None = Field(
        None, description="Template per channel; null removes an override")
    public: bool | None = None
    notify_entities: bool | None = None
    notes: str | None = Field(None, max_length=5000)
    send_date: dt.date | None = None


class ApproveRequest(BaseModel):
    note: str | None = Field(None, max_length=2000)
    apply_proposal: bool = Field(
        True, description="For a campaign under review: adopt the new window and send date")


class CancelRequest(BaseModel):
    reason: str | None = Field(None, max_length=2000)


class PreviewOut(BaseModel):
    channel: str
    subject: str
    body: str
    template: str = Field(description="Which template produced the body")
    frozen: bool = Field(description="True once approved: the copy that will be sent")


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: UtcDatetime
    actor: str
    action: str
    detail: dict[str, Any]


class AuditList(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")


def _detail(session: Any, campaign_id: str) -> CampaignDetail:
    c = get_campaign(session=session, campaign_id=campaign_id)
    out = CampaignDetail.model_validate(c)
    peak = campaign_peak(session=session, campaign=c)
    out.peak = PeakOut.model_validate(peak) if peak is not None else None
    return out


@router.get("/campaigns", summary="List campaigns (filtered, cursor-paginated)",
            dependencies=[Depends(require("read"))])
def get_campaigns(
    session: SessionDep,
    status: Annotated[list[Status] | None, Query(description="Repeatable")] = None,
    category: str | None = None,
    region: str | None = None,
    date_from: Annotated[dt.date | None, Query(alias="from", description="Send date ≥")] = None,
    date_to: Annotated[dt.date | None, Query(alias="to", description="Send date ≤")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> CampaignList:
    rows, nxt = list_campaigns(session=session, status=status, category=category,
                               region=region, date_from=date_from, date_to=date_to,
                               limit=limit, cursor=cursor)
    return CampaignList(items=[CampaignSummary.model_validate(r) for r in rows],
                        next_cursor=nxt)


@router.post("/campaigns/plan", summary="(Re)plan campaigns from the latest forecast run",
             responses=_NOT_FOUND | BODY_RESPONSES)
def post_plan(
    session: SessionDep, settings: SettingsDep,
    key: Annotated[ApiKey, Depends(require("plan"))], body: PlanRequest | None = None,
) -> PlanOut:
    body = body or PlanRequest()
    if body.today is not None and body.today < local_today(settings):
        raise UnprocessableContent("today cannot be in the past: reminders are never planned "
                                   "for dates that have gone (replay history with the CLI)")
    result = plan_campaigns(session=session, settings=settings, today=body.today,
                            run_id=body.run_id, categories=body.categories,
                            actor=_actor(key))
    return PlanOut.model_validate(result.as_dict())


@router.post("/campaigns", status_code=201, summary="Create a campaign by hand (a draft)",
             responses=BODY_RESPONSES)
def post_campaign(
    body: CampaignCreate, response: Response, session: SessionDep, settings: SettingsDep,
    key: Annotated[ApiKey, Depends(require("plan"))],
) -> CampaignDetail:
    c = create_campaign(session=session, settings=settings, actor=_actor(key),
                        **body.model_dump())
    response.headers["Location"] = f"/v1/campaigns/{c.id}"
    return _detail(session, c.id)


@router.get("/campaigns/{campaign_id}", summary="A campaign with its peak and evidence",
            dependencies=[Depends(require("read"))], responses=_NOT_FOUND)
def get_campaign_detail(campaign_id: str, session: SessionDep) -> CampaignDetail:
    return _detail(session, campaign_id)


@router.patch("/campaigns/{campaign_id}", summary="Edit a campaign before approval",
              responses=_CONFLICT)
def patch_campaign(
    campaign_id: str, body: CampaignPatch, session: SessionDep, settings: SettingsDep,
    key: Annotated[ApiKey, Depends(require("plan"))],
) -> CampaignDetail:
    update_campaign(session=session, settings=settings, campaign_id=campaign_id,
                    actor=_actor(key), changes=body.model_dump(exclude_unset=True))
    return _detail(session, campaign_id)


@router.post("/campaigns/{campaign_id}/approve", summary="Approve a campaign",
             responses=_CONFLICT)
def post_approve(
    campaign_id: str, session: SessionDep, settings: SettingsDep,
    key: Annotated[ApiKey, Depends(require("approve"))], body: ApproveRequest | None = None,
) -> CampaignDetail:
    body = body or ApproveRequest()
    approve_campaign(session=session, settings=settings, campaign_id=campaign_id,
                     actor=_actor(key), note=body.note, apply_proposal=body.apply_proposal)
    return _detail(session, campaign_id)


@router.post("/campaigns/{campaign_id}/cancel", summary="Cancel a campaign",
             responses=_CONFLICT)
def post_cancel(
    campaign_id: str, session: SessionDep,
    key: Annotated[ApiKey, Depends(require("approve"))], body: CancelRequest | None = None,
) -> CampaignDetail:
    cancel_campaign(session=session, campaign_id=campaign_id, actor=_actor(key),
                    reason=(body.reason if body else None))
    return _detail(session, campaign_id)


@router.get("/campaigns/{campaign_id}/preview",
            summary="Render a channel's message exactly as it will be sent",
            dependencies=[Depends(require("read"))], responses=_NOT_FOUND)
def get_preview(campaign_id: str, session: SessionDep, settings: SettingsDep,
                channel: str = "public") -> PreviewOut:
    msg = preview(session=session, settings=settings, campaign_id=campaign_id, channel=channel)
    return PreviewOut(channel=msg.channel, subject=msg.subject, body=msg.body,
                      template=msg.template, frozen=msg.frozen)


@router.get("/campaigns/{campaign_id}/audit", summary="The campaign's audit trail (oldest "
            "first, cursor-paginated)", dependencies=[Depends(require("read"))],
            responses=_NOT_FOUND | PAGINATION_RESPONSES)
def get_audit(
    campaign_id: str, session: SessionDep,
    after_id: Annotated[int | None, Query(description="Entries after this id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    cursor: CursorQuery = None,
) -> AuditList:
    get_campaign(session=session, campaign_id=campaign_id)
    if cursor is not None:
        after_id = max(after_id or 0, int(decode_cursor(cursor, (int,))[0]))
    rows = list_entries(session=session, entity_type="campaign", entity_id=campaign_id,
                        after_id=after_id, limit=limit + 1)
    nxt = encode_cursor((rows[limit - 1].id,)) if len(rows) > limit else None
    return AuditList(items=[AuditOut.model_validate(r) for r in rows[:limit]], next_cursor=nxt)
