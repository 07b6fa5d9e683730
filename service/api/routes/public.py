"""Public, key-free reminders: JSON and an iCalendar feed to subscribe to.

Only published reminders appear (approved or later, public, send date reached), and only
public facts: category, region, window, legal basis and the public text — never contacts,
entity ids or recipient names.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from service.api.deps import SessionDep, SettingsDep
from service.api.pagination import (
    PAGINATION_RESPONSES,
    CursorQuery,
    decode_cursor,
    page_of,
)
from service.api.problems import PROBLEM_RESPONSES
from service.campaigns.ics import CONTENT_TYPE, calendar_ics
from service.campaigns.service import public_reminders

__all__ = ["router"]

router = APIRouter(prefix="/public", tags=["public"])
_CACHE = "public, max-age=300"


class NamedCode(BaseModel):
    code: str
    name_zh: str
    name_en: str | None


class LegalBasis(BaseModel):
    title: str
    articles: str | None


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


class PublicReminderList(BaseModel):
    items: list[PublicReminder]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")


@router.get("/reminders", summary="Published enforcement matter reminders (no key; by window "
            "start, cursor-paginated)",
            responses={422: PROBLEM_RESPONSES[422], 429: PROBLEM_RESPONSES[429],
                       **PAGINATION_RESPONSES})
def get_reminders(
    response: Response, session: SessionDep, settings: SettingsDep,
    category: str | None = None, region: str | None = None,
    date_from: Annotated[dt.date | None, Query(alias="from",
                                               description="Windows ending on/after")] = None,
    date_to: Annotated[dt.date | None, Query(alias="to",
                                             description="Windows starting on/before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    cursor: CursorQuery = None,
) -> PublicReminderList:
    after = tuple(decode_cursor(cursor, (dt.date, str))) if cursor is not None else None
    items = public_reminders(session=session, settings=settings, category=category,
                             region=region, date_from=date_from, date_to=date_to,
                             limit=limit + 1, after=after)
    page, nxt = page_of(items, limit, lambda i: (i["window_start"], i["id"]))
    response.headers["Cache-Control"] = _CACHE
    return PublicReminderList(items=[PublicReminder.model_validate(i) for i in page],
                              next_cursor=nxt)


@router.get("/calendar.ics", summary="Published reminders as an iCalendar feed (no key)",
            response_class=Response,
            responses={200: {"content": {"text/calendar": {"schema": {"type": "string"}}},
                             "description": "RFC 5545 calendar, one event per reminder"},
                       422: PROBLEM_RESPONSES[422], 429: PROBLEM_RESPONSES[429]})
def get_calendar(
    session: SessionDep, settings: SettingsDep,
    category: str | None = None, region: str | None = None,
) -> Response:
    items = public_reminders(session=session, settings=settings, category=category,
                             region=region, limit=1000)
    return Response(content=calendar_ics(items), media_type=CONTENT_TYPE,
                    headers={"Cache-Control": _CACHE,
                             "Content-Disposition": 'inline; filename="forewarn.ics"'})
