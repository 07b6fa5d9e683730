"""Public, key-free reminders: JSON and an iCalendar feed to subscribe to.

Only published reminders appear (approved or later, public, send date reached), and only
public facts: category, region, window, legal basis and the public text — never contacts,
entity ids or recipient names.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from service.api import pagination
from service.api.deps import SessionDep, SettingsDep
from service.api.problems import PROBLEM_RESPONSES
from service.campaigns.ics import CONTENT_TYPE, calendar_ics
from service.campaigns.service import public_reminders

__all__ = ["router"]

router = APIRouter(prefix="/public", tags=["public"])
_CACHE = "public, max-age=300"
_Category = Annotated[str | None, Query(description="Only this category code, e.g. "
                                                    "`fireworks`")]
_Region = Annotated[str | None, Query(description="Only this region code (GB/T 2260), e.g. "
                                                  "`150100`")]
_REMINDER_EXAMPLE: dict[str, Any] = {
    "id": "3f2c9a7e5b8d4c1e9a0b6d2f4e8c1a57", "title": "【执法事项提示】呼和浩特市·烟花爆竹",
    "category": {"code": "fireworks", "name_zh": "烟花爆竹", "name_en": "Fireworks"},
    "region": {"code": "150100", "name_zh": "呼和浩特市", "name_en": "Hohhot"},
    "window_start": "2027-02-01", "window_end": "2027-02-14", "published_on": "2027-01-18",
    "legal_basis": [{"title": "《烟花爆竹安全管理条例》", "articles": "第三十六条"}],
    "text": "春节将至，烟花爆竹相关投诉预计明显增多。请各经营单位依法规范经营。",
}
#: The calendar of the example reminder, rendered by the code that serves the feed.
_ICS_EXAMPLE = calendar_ics(
    [{**_REMINDER_EXAMPLE, "window_start": dt.date(2027, 2, 1),
      "window_end": dt.date(2027, 2, 14), "published_on": dt.date(2027, 1, 18),
      "updated_at": dt.datetime(2027, 1, 12, 3, 15, tzinfo=dt.UTC)}],
    now=dt.datetime(2027, 1, 12, 3, 15, tzinfo=dt.UTC)).decode()


class NamedCode(BaseModel):
    code: str
    name_zh: str
    name_en: str | None


class LegalBasis(BaseModel):
    title: str
    articles: str | None


class ReminderText(BaseModel):
    language: str = Field(description="`zh`, `mn`, …")
    tag: str = Field(description="BCP 47 tag, e.g. `zh-CN`, `mn-Mong` (traditional script)")
    status: Literal["official", "placeholder"] = Field(
        description="`placeholder`: awaiting an official translation, not to be relied on")
    note: str | None = Field(description="Why a text is a placeholder, who must review it")
    subject: str
    body: str


class PublicReminder(BaseModel):
    id: str
    title: str
    category: NamedCode
    region: NamedCode
    window_start: dt.date = Field(description="First day of the predicted period")
    window_end: dt.date = Field(description="Last day of the predicted period")
    published_on: dt.date
    legal_basis: list[LegalBasis]
    text: str = Field(description="The reminder as published (Chinese)")
    texts: list[ReminderText] = Field(
        default_factory=list, description="The reminder in every language of its category, "
                                          "Chinese first, each with its language tag")


class PublicReminderList(pagination.Page[PublicReminder]):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [_REMINDER_EXAMPLE], "next_cursor": None}]})


@router.get("/reminders", summary="Published enforcement matter reminders (no key; by window "
            "start, cursor-paginated)",
            responses={422: PROBLEM_RESPONSES[422], 429: PROBLEM_RESPONSES[429],
                       **pagination.PAGINATION_RESPONSES})
def get_reminders(
    response: Response, session: SessionDep, settings: SettingsDep,
    category: _Category = None, region: _Region = None,
    date_from: Annotated[dt.date | None, Query(alias="from",
                                               description="Windows ending on/after")] = None,
    date_to: Annotated[dt.date | None, Query(alias="to",
                                             description="Windows starting on/before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size (1–1000)")] = 500,
    cursor: pagination.CursorQuery = None,
) -> PublicReminderList:
    """Reminders that are published: approved or later, public, send date reached. Only
    public facts (category, region, window, legal basis, text); no key needed; cacheable for
    5 minutes."""
    after = tuple(pagination.decode_cursor(cursor, (dt.date, str))) if cursor is not None else None
    items = public_reminders(session=session, settings=settings, category=category,
                             region=region, date_from=date_from, date_to=date_to,
                             limit=limit + 1, after=after)
    page, nxt = pagination.page_of(items, limit, lambda i: (i["window_start"], i["id"]))
    response.headers["Cache-Control"] = _CACHE
    return PublicReminderList(items=[PublicReminder.model_validate(i) for i in page],
                              next_cursor=nxt)


@router.get("/calendar.ics", summary="Published reminders as an iCalendar feed (no key)",
            response_class=Response,
            responses={200: {"content": {"text/calendar": {"schema": {"type": "string"},
                                                             "example": _ICS_EXAMPLE}},
                             "description": "RFC 5545 calendar, one event per reminder"},
                       422: PROBLEM_RESPONSES[422], 429: PROBLEM_RESPONSES[429]})
def get_calendar(
    session: SessionDep, settings: SettingsDep,
    category: _Category = None, region: _Region = None,
) -> Response:
    """The same published reminders (up to 1000) as an RFC 5545 calendar to subscribe to,
    one all-day event per reminder window. No key needed; cacheable for 5 minutes."""
    items = public_reminders(session=session, settings=settings, category=category,
                             region=region, limit=1000)
    return Response(content=calendar_ics(items, timezone=settings.timezone),
                    media_type=CONTENT_TYPE,
                    headers={"Cache-Control": _CACHE,
                             "Content-Disposition": 'inline; filename="forewarn.ics"'})
