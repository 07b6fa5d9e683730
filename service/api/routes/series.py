"""Series and their zero-filled counts."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from service.api.deps import SessionDep, require
from service.api.pagination import (
    DEFAULT_LIMIT,
    PAGINATION_RESPONSES,
    CursorQuery,
    LimitQuery,
    paginate_sorted,
)
from service.api.problems import PROBLEM_RESPONSES
from service.store.series import list_series, series_counts

router = APIRouter(tags=["series"], dependencies=[Depends(require("read"))],
                   responses=PROBLEM_RESPONSES)


class SeriesPublic(BaseModel):
    id: str = Field(examples=["complaints|fireworks|150100"])
    signal: Literal["complaints", "violations"]
    category: str
    region: str
    first_date: dt.date
    last_date: dt.date
    total: int


class SeriesList(BaseModel):
    items: list[SeriesPublic]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")


class CountPoint(BaseModel):
    date: dt.date
    count: int


class SeriesCounts(BaseModel):
    id: str
    freq: Literal["D", "W"]
    points: list[CountPoint]


@router.get("/series", summary="List series (signal × category × region; by id, "
            "cursor-paginated)", responses=PAGINATION_RESPONSES)
def get_series(session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT,
               cursor: CursorQuery = None) -> SeriesList:
    items = sorted(list_series(session=session), key=lambda s: str(s["id"]))
    page, nxt = paginate_sorted(items, key=lambda s: (str(s["id"]),), types=(str,),
                                cursor=cursor, limit=limit)
    return SeriesList(items=[SeriesPublic(**s) for s in page], next_cursor=nxt)


@router.get(
    "/series/{series_id}/counts",
    summary="Zero-filled counts of one series",
    responses={404: PROBLEM_RESPONSES[422] | {"description": "No such series"}},
)
def get_series_counts(
    series_id: str,
    session: SessionDep,
    freq: Literal["D", "W"] = "D",
    date_from: Annotated[dt.date | None, Query(alias="from")] = None,
    date_to: Annotated[dt.date | None, Query(alias="to")] = None,
) -> SeriesCounts:
    frame = series_counts(session=session, series_id=series_id, freq=freq,
                          date_from=date_from, date_to=date_to)
    points = [CountPoint(date=d, count=c) for d, c in zip(frame["date"], frame["count"],
                                                          strict=True)]
    return SeriesCounts(id=series_id, freq=freq, points=points)
