"""Series and their zero-filled counts."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import SessionDep, require
from service.api.pagination import (
    DEFAULT_LIMIT,
    PAGINATION_RESPONSES,
    CursorQuery,
    LimitQuery,
    paginate_sorted,
)
from service.api.problems import PROBLEM_RESPONSES, problem_doc
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
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"id": "complaints|fireworks|150100", "signal": "complaints",
                   "category": "fireworks", "region": "150100", "first_date": "2019-01-01",
                   "last_date": "2026-11-22", "total": 4812}],
        "next_cursor": "WyJjb21wbGFpbnRzfGZpcmV3b3Jrc3wxNTAxMDAiXQ"}]})
    items: list[SeriesPublic]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page")


class CountPoint(BaseModel):
    date: dt.date
    count: int


class SeriesCounts(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "complaints|fireworks|150100", "freq": "W",
        "points": [{"date": "2027-01-25", "count": 38}, {"date": "2027-02-01", "count": 112},
                   {"date": "2027-02-08", "count": 167}]}]})
    id: str
    freq: Literal["D", "W"]
    points: list[CountPoint]


@router.get("/series", summary="List series (signal × category × region; by id, "
            "cursor-paginated)", responses=PAGINATION_RESPONSES)
def get_series(session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT,
               cursor: CursorQuery = None) -> SeriesList:
    """Every series with records: its id ``signal|category|region``, the first and last day
    with data and the total count. Ordered by id; needs the ``read`` scope."""
    items = sorted(list_series(session=session), key=lambda s: str(s["id"]))
    page, nxt = paginate_sorted(items, key=lambda s: (str(s["id"]),), types=(str,),
                                cursor=cursor, limit=limit)
    return SeriesList(items=[SeriesPublic(**s) for s in page], next_cursor=nxt)


@router.get(
    "/series/{series_id}/counts",
    summary="Zero-filled counts of one series",
    responses={404: problem_doc("No such series", 404)},
)
def get_series_counts(
    series_id: Annotated[str, Path(description="Series id `signal|category|region`, e.g. "
                                               "`complaints|fireworks|150100`")],
    session: SessionDep,
    freq: Annotated[Literal["D", "W"], Query(
        description="D: daily counts; W: weekly sums (weeks start on Monday)")] = "D",
    date_from: Annotated[dt.date | None, Query(
        alias="from", description="First day (default: the series' first day)")] = None,
    date_to: Annotated[dt.date | None, Query(
        alias="to", description="Last day (default: the series' last day)")] = None,
) -> SeriesCounts:
    """Counts of one series with days (or weeks) without records filled with 0, in the
    local time zone. Needs the ``read`` scope; 404 when the series does not exist."""
    frame = series_counts(session=session, series_id=series_id, freq=freq,
                          date_from=date_from, date_to=date_to)
    points = [CountPoint(date=d, count=c) for d, c in zip(frame["date"], frame["count"],
                                                          strict=True)]
    return SeriesCounts(id=series_id, freq=freq, points=points)
