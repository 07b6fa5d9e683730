"""Reminder campaigns: plan, list, inspect, create, edit, approve, cancel, preview, audit."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from service.api import pagination
from service.api.decision_schema import DECISION_EXAMPLE, DecisionPublic, decision_of
from service.api.deps import LanguageDep, SessionDep, SettingsDep, require
from service.api.peak_schema import PeakKey, PeakWindow
from service.api.problems import BODY_RESPONSES, PROBLEM_RESPONSES, problem_doc
from service.api.routes.public import ReminderText
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
from service.store.tables import ApiKey, ForecastRun

__all__ = ["router"]

router = APIRouter(tags=["campaigns"], responses=PROBLEM_RESPONSES)
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_doc("Not found", 404)}
_CampaignId = Annotated[str, Path(description="Campaign id")]
_CID = "3f2c9a7e5b8d4c1e9a0b6d2f4e8c1a57"
_RUN = "7c4e2b9a1f3d4a6e8b0c2d4f6a8e1b3c"
_SUMMARY_EXAMPLE: dict[str, Any] = {
    "id": _CID, "status": "approved", "origin": "planned", "category": "fireworks",
    "region": "150100", "title": "【执法事项提示】呼和浩特市·烟花爆竹",
    "window_start": "2027-02-01", "window_end": "2027-02-14", "send_date": "2027-01-18",
    "planned_send_date": "2027-01-18", "lead_days": 14, "rank": 1, "probability": 0.91,
    "expected_excess": 109.7, "onset": "2027-02-01", "decision_threshold": 0.25, "part": 1,
    "parts": 1, "decision": DECISION_EXAMPLE, "public": True, "approved_by": "key:9c41e07a",
    "approved_at": "2027-01-12T03:15:00Z", "cancelled_by": None, "cancelled_at": None,
    "updated_at": "2027-01-12T03:15:00Z",
}
_DETAIL_EXAMPLE: dict[str, Any] = {
    **_SUMMARY_EXAMPLE, "signal": "complaints", "series_id": "complaints|fireworks|150100",
    "peak_week": "2027-02-01",
    "expected_count": 301.7, "threshold": 96.0, "run_id": _RUN, "last_run_id": _RUN,
    "approved_run_id": _RUN,
    "peak": {"id": 3071, "run_id": _RUN, "series_id": "complaints|fireworks|150100",
             "signal": "complaints", "start": "2027-02-01", "end": "2027-02-14",
             "peak_week": "2027-02-01", "expected_count": 301.7, "expected_excess": 109.7,
             "max_probability": 0.91, "threshold": 96.0, "onset": "2027-02-01",
             "p_min": 0.25, "window_start": "2027-02-01", "window_end": "2027-02-14",
             "part": 1, "parts": 1},
    "evidence": [{"series_id": "complaints|fireworks|150100", "start": "2027-02-01",
                  "end": "2027-02-14", "max_probability": 0.91,
                  "weeks": [{"series_id": "complaints|fireworks|150100",
                             "week": "2027-02-01", "p_spike": 0.91, "expected": 168.4}]}],
    "constraint_notes": [], "review": {},
    "audience": {"public": True, "entities": 37, "recipients": 52},
    "notify_entities": True, "content_overrides": {}, "locked_fields": [],
    "notes": "春节前重点提示烟花爆竹零售点", "cancel_reason": None,
    "created_by": "scheduler", "created_at": "2026-11-23T02:32:10Z",
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    404: problem_doc("Not found", 404),
    409: problem_doc("The campaign's status does not allow this", 409),
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
    model_config = ConfigDict(from_attributes=True,
                              json_schema_extra={"examples": [_SUMMARY_EXAMPLE]})
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
    onset: dt.date | None = Field(None, description="Expected onset of the window (from the "
                                  "forecast's sample paths); the send date is lead days "
                                  "before it")
    decision_threshold: float | None = Field(None, description="The decision threshold the "
                                             "forecast run used for the category")
    part: int | None = Field(None, description="Position of this campaign window in its "
                             "predicted window (1-based)")
    parts: int | None = Field(None, description="Campaigns the predicted window was split "
                              "into (longer than the category's max_campaign_weeks)")
    decision: DecisionPublic | None = Field(None, description="Why the window was warned "
                                            "of: the run's threshold for the category, its "
                                            "backtest evidence, in plain words")
    public: bool
    approved_by: str | None
    approved_at: UtcDatetime | None
    cancelled_by: str | None
    cancelled_at: UtcDatetime | None
    updated_at: UtcDatetime


# The campaign's peak (its category and region are the campaign's).
class PeakOut(PeakWindow, PeakKey):
    pass


class CampaignDetail(CampaignSummary):
    model_config = ConfigDict(from_attributes=True,
                              json_schema_extra={"examples": [_DETAIL_EXAMPLE]})
    signal: str | None
    series_id: str = Field(description="Series the campaign is evaluated on: signal|category|"
                                       "region (complaints for a campaign made by hand)")
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
    timing: dict[str, Any] = Field(
        default_factory=dict,
        description="Randomised timing (categories that opted in): design, wave, status "
                    "(proposed | assigned), arm (early | delayed), seed and who drew it; "
                    "empty when the campaign is not randomised")
    audience: dict[str, Any] = Field(description="public, number of entities and recipients")
    notify_entities: bool
    content_overrides: dict[str, Any]
    locked_fields: list[str]
    notes: str | None
    cancel_reason: str | None
    created_by: str
    created_at: UtcDatetime


class CampaignList(pagination.Page[CampaignSummary]):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [_SUMMARY_EXAMPLE], "next_cursor": None}]})


class PlanRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"categories": ["fireworks"], "today": "2026-12-01"}]})
    run_id: str | None = Field(None, description="Plan from this run (default: the latest)")
    categories: list[str] | None = Field(None, description="Only these categories")
    today: dt.date | None = Field(None, description="Plan as of this day (default: today)")


class PlanError(BaseModel):
    category: str = Field(description="Category code")
    detail: str = Field(description="Why it could not be planned")


class PlanOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "run_id": _RUN, "today": "2026-12-01", "windows": 6, "created": [_CID],
        "updated": [], "unchanged": [], "flagged": [], "superseded": [], "dropped": [],
        "untouched": [], "errors": []}]})
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
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "category": "fireworks", "region": "150100", "window_start": "2027-02-01",
        "window_end": "2027-02-14", "send_date": "2027-01-18",
        "title": "【执法事项提示】呼和浩特市·烟花爆竹", "public": True,
        "notify_entities": True, "notes": "春节前重点提示烟花爆竹零售点"}]})
    category: str = Field(description="Category code, e.g. `fireworks`")
    region: str = Field(description="Region code (GB/T 2260), e.g. `150100`")
    window_start: dt.date = Field(description="First day of the period the reminder covers")
    window_end: dt.date = Field(description="Last day of the period the reminder covers")
    send_date: dt.date | None = Field(None, description="Default: window start − lead days")
    title: str | None = Field(None, max_length=300,
                              description="Default: 【执法事项提示】region·category")
    content_overrides: dict[str, str] = Field(
        default_factory=dict, description="Jinja2 template per channel (or `default`)")
    public: bool = Field(True, description="Publish on the public reminder list and calendar")
    notify_entities: bool = Field(True, description="Send to the registered entities of the "
                                                    "category and region")
    notes: str | None = Field(None, max_length=5000, description="Internal notes")


class CampaignPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"send_date": "2027-01-15", "notes": "提前至腊八前发送"}]})
    title: str | None = Field(None, max_length=300, description="New title")
    content_overrides: dict[str, str | None] | None = Field(
        None, description="Template per channel; null removes an override")
    public: bool | None = Field(None, description="Publish on the public list and calendar")
    notify_entities: bool | None = Field(None, description="Send to the registered entities")
    notes: str | None = Field(None, max_length=5000, description="Internal notes")
    send_date: dt.date | None = Field(None, description="New send date (kept by later "
                                                        "re-planning)")


class ApproveRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"note": "同意发布", "apply_proposal": True}]})
    note: str | None = Field(None, max_length=2000, description="Approval note (audit trail)")
    apply_proposal: bool = Field(
        True, description="For a campaign under review: adopt the new window and send date")


class CancelRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"reason": "已由市应急管理局统一发布"}]})
    reason: str | None = Field(None, max_length=2000, description="Why it was cancelled")


class PreviewOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "channel": "public", "subject": "【执法事项提示】呼和浩特市·烟花爆竹",
        "body": "春节将至（2027年2月1日至2月14日），烟花爆竹相关投诉预计明显增多。请各经营单位"
                "依照《烟花爆竹安全管理条例》规范经营……",
        "template": "builtin:default", "frozen": True,
        "texts": [{"language": "zh", "tag": "zh-CN", "status": "official", "note": None,
                   "subject": "【执法事项提示】呼和浩特市·烟花爆竹",
                   "body": "春节将至（2027年2月1日至2月14日），烟花爆竹相关投诉预计明显增多。……"},
                  {"language": "mn", "tag": "mn-Mong", "status": "placeholder",
                   "note": "占位文本，非官方译文。Placeholder, not an official translation.",
                   "subject": "【执法事项提示】呼和浩特市·烟花爆竹",
                   "body": "ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ — [占位 PLACEHOLDER]\n呼和浩特市 · 烟花爆竹\n"}]}]})
    channel: str
    subject: str
    body: str = Field(description="The Chinese text (also the first item of `texts`)")
    template: str = Field(description="Which template produced the body")
    frozen: bool = Field(description="True once approved: the copies (every language) that "
                                     "will be sent")
    texts: list[ReminderText] = Field(
        description="The message in every language of the campaign's category, Chinese "
                    "first, each with its BCP 47 tag and whether it is an official text")


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: UtcDatetime
    actor: str
    action: str
    detail: dict[str, Any]


class AuditList(pagination.Page[AuditOut]):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"id": 981, "at": "2027-01-12T03:15:00Z", "actor": "key:9c41e07a",
                   "action": "campaign.approved", "detail": {"note": "同意发布"}}],
        "next_cursor": None}]})


def _documents(session: Any, run_ids: set[str | None]) -> dict[str, dict[str, Any]]:
    """The decision documents of the runs campaigns were planned from."""
    ids = sorted(r for r in run_ids if r)
    if not ids:
        return {}
    return {rid: doc or {} for rid, doc in session.execute(
        select(ForecastRun.id, ForecastRun.decisions).where(ForecastRun.id.in_(ids)))}


def _detail(session: Any, campaign_id: str, language: str = "en") -> CampaignDetail:
    c = get_campaign(session=session, campaign_id=campaign_id)
    out = CampaignDetail.model_validate(c)
    peak = campaign_peak(session=session, campaign=c)
    out.peak = PeakOut.model_validate(peak) if peak is not None else None
    out.decision = decision_of(_documents(session, {c.run_id}).get(c.run_id or ""),
                               c.category, language)
    return out


@router.get("/campaigns", summary="List campaigns (filtered, cursor-paginated)",
            dependencies=[Depends(require("read"))])
def get_campaigns(
    session: SessionDep,
    language: LanguageDep,
    status: Annotated[list[Status] | None, Query(description="Only these statuses "
                                                             "(repeatable)")] = None,
    category: Annotated[str | None, Query(description="Only this category code")] = None,
    region: Annotated[str | None, Query(description="Only this region code")] = None,
    date_from: Annotated[dt.date | None, Query(alias="from", description="Send date ≥")] = None,
    date_to: Annotated[dt.date | None, Query(alias="to", description="Send date ≤")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size (1–500)")] = 100,
    cursor: Annotated[str | None, Query(
        description="`next_cursor` of the previous page (opaque)")] = None,
) -> CampaignList:
    """Campaigns by send date, filtered by status, category, region and send-date range,
    each with the decision of the run it was planned from (explained in Chinese when
    ``Accept-Language`` prefers zh). Needs the ``read`` scope."""
    rows, nxt = list_campaigns(session=session, status=status, category=category,
                               region=region, date_from=date_from, date_to=date_to,
                               limit=limit, cursor=cursor)
    docs = _documents(session, {r.run_id for r in rows})
    items = []
    for r in rows:
        item = CampaignSummary.model_validate(r)
        item.decision = decision_of(docs.get(r.run_id or ""), r.category, language)
        items.append(item)
    return CampaignList(items=items, next_cursor=nxt)


@router.post("/campaigns/plan", summary="(Re)plan campaigns from the latest forecast run",
             responses=_NOT_FOUND | BODY_RESPONSES)
def post_plan(
    session: SessionDep, settings: SettingsDep,
    key: Annotated[ApiKey, Depends(require("plan"))], body: PlanRequest | None = None,
) -> PlanOut:
    """Turn the predicted peak windows of a finished run into draft campaigns: the windows
    of one category × region are merged over signals, a merged window longer than the
    category's ``max_campaign_weeks`` becomes consecutive campaigns, and each is sent lead
    days before its expected onset (never in the past), applying blackout days, minimum
    spacing and weekly capacity. Re-planning updates drafts, flags approved campaigns whose
    window moved (needs_review) and never touches sent ones. Needs the ``plan`` scope."""
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
    """A draft campaign for a window chosen by hand (origin ``manual``); approve it to send.
    Needs the ``plan`` scope; answers 201 with ``Location``."""
    c = create_campaign(session=session, settings=settings, actor=_actor(key),
                        **body.model_dump())
    response.headers["Location"] = f"/v1/campaigns/{c.id}"
    return _detail(session, c.id)


@router.get("/campaigns/{campaign_id}", summary="A campaign with its peak and evidence",
            dependencies=[Depends(require("read"))], responses=_NOT_FOUND)
def get_campaign_detail(campaign_id: _CampaignId, session: SessionDep,
                        language: LanguageDep) -> CampaignDetail:
    """Everything about one campaign: window, expected onset, send date, constraint notes,
    audience size, the forecast runs behind it, the predicted peak and the decision that made
    it a warning (plain words, Chinese when ``Accept-Language`` prefers zh). Needs the
    ``read`` scope."""
    return _detail(session, campaign_id, language)


@router.patch("/campaigns/{campaign_id}", summary="Edit a campaign before approval",
              responses=_CONFLICT)
def patch_campaign(
    campaign_id: _CampaignId, body: CampaignPatch, session: SessionDep, settings: SettingsDep,
    key: Annotated[ApiKey, Depends(require("plan"))],
) -> CampaignDetail:
    """Change title, content, audience flags, notes or send date of a draft, dropped or
    needs_review campaign (409 otherwise). An edited title or send date is kept by later
    re-planning. Needs the ``plan`` scope."""
    update_campaign(session=session, settings=settings, campaign_id=campaign_id,
                    actor=_actor(key), changes=body.model_dump(exclude_unset=True))
    return _detail(session, campaign_id)


@router.post("/campaigns/{campaign_id}/approve", summary="Approve a campaign",
             responses=_CONFLICT)
def post_approve(
    campaign_id: _CampaignId, session: SessionDep, settings: SettingsDep,
    key: Annotated[ApiKey, Depends(require("approve"))], body: ApproveRequest | None = None,
) -> CampaignDetail:
    """Approve a draft (or a campaign under review) for sending on its send date: the content
    and the forecast behind it are frozen. Needs the ``approve`` scope; 409 when the status
    does not allow it."""
    body = body or ApproveRequest()
    approve_campaign(session=session, settings=settings, campaign_id=campaign_id,
                     actor=_actor(key), note=body.note, apply_proposal=body.apply_proposal)
    return _detail(session, campaign_id)


@router.post("/campaigns/{campaign_id}/cancel", summary="Cancel a campaign",
             responses=_CONFLICT)
def post_cancel(
    campaign_id: _CampaignId, session: SessionDep,
    key: Annotated[ApiKey, Depends(require("approve"))], body: CancelRequest | None = None,
) -> CampaignDetail:
    """Withdraw a campaign that has not started dispatching. Needs the ``approve`` scope; 409
    otherwise."""
    cancel_campaign(session=session, campaign_id=campaign_id, actor=_actor(key),
                    reason=(body.reason if body else None))
    return _detail(session, campaign_id)


@router.get("/campaigns/{campaign_id}/preview",
            summary="Render a channel's message exactly as it will be sent, in every language",
            dependencies=[Depends(require("read"))], responses=_NOT_FOUND)
def get_preview(campaign_id: _CampaignId, session: SessionDep, settings: SettingsDep,
                channel: Annotated[str, Query(
                    description="Channel to render (`public`, `email`, `webhook`, … or "
                                "`default`); 422 for an unknown one")] = "public",
                ) -> PreviewOut:
    """Subject and body of one channel rendered from the template that will be used, in every
    language variant of the category (`zh`, and e.g. `mn` in traditional Mongolian script),
    as they will be published (public JSON, iCalendar); once approved, the copies frozen at
    approval (a later template edit changes none of them). Needs the ``read`` scope."""
    msg = preview(session=session, settings=settings, campaign_id=campaign_id, channel=channel)
    return PreviewOut(channel=msg.channel, subject=msg.subject, body=msg.body,
                      template=msg.template, frozen=msg.frozen,
                      texts=[ReminderText.model_validate(t) for t in msg.texts])


@router.get("/campaigns/{campaign_id}/audit", summary="The campaign's audit trail (oldest "
            "first, cursor-paginated)", dependencies=[Depends(require("read"))],
            responses=_NOT_FOUND | pagination.PAGINATION_RESPONSES)
def get_audit(
    campaign_id: _CampaignId, session: SessionDep,
    after_id: Annotated[int | None, Query(ge=0, le=2**63 - 1,
                                          description="Entries after this id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size (1–1000)")] = 500,
    cursor: pagination.CursorQuery = None,
) -> AuditList:
    """Who created, edited, approved, sent or cancelled the campaign, and when. Needs the
    ``read`` scope."""
    get_campaign(session=session, campaign_id=campaign_id)
    if cursor is not None:
        after_id = max(after_id or 0, int(pagination.decode_cursor(cursor, (int,))[0]))
    rows = list_entries(session=session, entity_type="campaign", entity_id=campaign_id,
                        after_id=after_id, limit=limit + 1)
    nxt = pagination.encode_cursor((rows[limit - 1].id,)) if len(rows) > limit else None
    return AuditList(items=[AuditOut.model_validate(r) for r in rows[:limit]], next_cursor=nxt)
