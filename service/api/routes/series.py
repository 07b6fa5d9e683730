"""Series (from the series summary) and their counts, zero-filled over their coverage."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from service.api import pagination
from service.api.deps import SessionDep, require
from service.api.problems import PROBLEM_RESPONSES, problem_doc
from service.store.series import series_counts, series_page
from service.store.summary import summary_version

__all__ = ["router", "forget_series_version"]

router = APIRouter(tags=["series"], dependencies=[Depends(require("read"))],
                   responses=PROBLEM_RESPONSES)


class SeriesSourcePublic(BaseModel):
    name: str = Field(description="The source (an import's `source`)")
    first_date: dt.date = Field(description="First record day of this source in the series")
    last_date: dt.date = Field(description="Last record day of this source in the series")
    total: int


class CoveragePeriod(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: dt.date = Field(alias="from")
    to: dt.date


class SeriesPublic(BaseModel):
    id: str = Field(examples=["complaints|fireworks|150100"])
    signal: Literal["complaints", "violations"]
    category: str
    region: str
    first_date: dt.date = Field(description="First record day")
    last_date: dt.date = Field(description="Last record day")
    total: int
    sources: list[SeriesSourcePublic] = Field(description="The sources with records in it")
    coverage: list[CoveragePeriod] = Field(
        description="Days its sources cover: counts are zero-filled there; a day outside "
                    "is missing, not zero")


class SeriesList(pagination.Page[SeriesPublic]):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"id": "complaints|fireworks|150100", "signal": "complaints",
                   "category": "fireworks", "region": "150100", "first_date": "2019-01-01",
                   "last_date": "2026-11-22", "total": 4812,
                   "sources": [{"name": "12345热线", "first_date": "2019-01-01",
                                "last_date": "2026-11-22", "total": 4812}],
                   "coverage": [{"from": "2019-01-01", "to": "2026-11-22"}]}],
        "next_cursor": "WyJjb21wbGFpbnRzfGZpcmV3b3Jrc3wxNTAxMDAiXQ"}]})


class CountPoint(BaseModel):
    date: dt.date
    count: int
    days: int = Field(1, description="Covered days the point sums: 1 for a day; for a week "
                                     "7 when the series' sources cover all of it")


class SeriesCounts(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "complaints|fireworks|150100", "freq": "W",
        "points": [{"date": "2027-01-25", "count": 38}, {"date": "2027-02-01", "count": 112},
                   {"date": "2027-02-08", "count": 167}]}]})
    id: str
    freq: Literal["D", "W"]
    points: list[CountPoint]


def _summary_version(request: Request) -> tuple[int, int]:
    with request.app.state.sessionmaker() as session:
        version = summary_version(session)
    request.app.state.series_version_memo = (time.monotonic(), version)
    return version


async def _version(request: Request) -> tuple[int, int]:
    """The summary's version, read from the database at most once a second (an import
    through this process resets it at once; another process's import shows within 1 s)."""
    at, version = getattr(request.app.state, "series_version_memo", (-1e9, None))
    if version is not None and time.monotonic() - at <= 1.0:
        return version  # type: ignore[no-any-return]
    return await run_in_threadpool(_summary_version, request)


def forget_series_version(app: Any) -> None:
    """Make the next listing re-read the summary's version (after an import)."""
    app.state.series_version_memo = (-1e9, None)


def _page_body(request: Request, after: str | None, limit: int, signal: str | None) -> bytes:
    with request.app.state.sessionmaker() as session:
        rows = series_page(session=session, after=after, limit=limit + 1, signal=signal)
    page, nxt = pagination.page_of(rows, limit, key=lambda s: (str(s["id"]),))
    return orjson.dumps({"items": page, "next_cursor": nxt})


@router.get("/series", summary="List series (signal × category × region; by id, "
            "cursor-paginated)", responses=pagination.PAGINATION_RESPONSES,
            response_model=SeriesList)
async def get_series(
    request: Request, limit: pagination.LimitQuery = pagination.DEFAULT_LIMIT,
    cursor: pagination.CursorQuery = None,
    signal: Annotated[Literal["complaints", "violations"] | None, Query(
        description="Only series of this signal")] = None,
) -> Response:
    """Every series with records: its id ``signal|category|region``, the first and last day
    with data, the total count, its sources and the days they cover. Read from the series
    summary kept at import (one indexed read per page, no scan of the records; pages are
    cached per summary version). Ordered by id; needs the ``read`` scope."""
    after = str(pagination.decode_cursor(cursor, (str,))[0]) if cursor is not None else None
    key = ("series", await _version(request), signal, after, limit)
    cache = request.app.state.response_cache
    body = cache.get(key)
    if body is None:
        body = await run_in_threadpool(_page_body, request, after, limit, signal)
        cache.put(key, body)
    return Response(body, media_type="application/json")


@router.get(
    "/series/{series_id}/counts",
    summary="Counts of one series, zero-filled over its coverage",
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
    """Counts of one series in the local time zone, over the days its own sources cover:
    a covered day without records counts 0, a day no source of the series covers is left
    out (missing, not zero). Needs the ``read`` scope; 404 when the series does not exist."""
    frame = series_counts(session=session, series_id=series_id, freq=freq,
                          date_from=date_from, date_to=date_to)
    points = [CountPoint(date=d, count=c, days=n) for d, c, n in zip(
        frame["date"], frame["count"], frame["days"], strict=True)]
    return SeriesCounts(id=series_id, freq=freq, points=points)
