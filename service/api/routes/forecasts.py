"""Forecast runs, forecasts and predicted peaks."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from service.api.deps import SessionDep, SettingsDep, require
from service.api.problems import PROBLEM_RESPONSES
from service.errors import NotFound
from service.forecasting import (
    FINISHED,
    create_run,
    get_run,
    latest_run,
    list_forecasts,
    list_peaks,
    series_forecast,
)
from service.store.series import parse_series_id
from service.store.tables import ApiKey, SeriesIssue

router = APIRouter(tags=["forecasts"], responses=PROBLEM_RESPONSES)
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Not found"}}


class RunCreate(BaseModel):
    horizon_days: int = Field(182, ge=7, le=730, description="Days to forecast")
    train_until: dt.date | None = Field(
        None, description="Use only records up to this day (check predictions afterwards)")
    engine: Literal["serial", "local", "dask"] | None = None
    jobs: int | None = Field(None, ge=-1, le=256)
    signals: list[Literal["complaints", "violations"]] = ["complaints", "violations"]


class SeriesProblem(BaseModel):
    series_id: str
    kind: str
    code: str
    detail: str


class RunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    status: Literal["queued", "running", "succeeded", "partial", "failed"]
    engine: str
    params: dict[str, Any]
    train_until: dt.date | None
    horizon_days: int
    done: int
    total: int
    failed: int
    error: str | None
    durations: dict[str, Any]
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    failures: list[SeriesProblem] = []


class DailyPoint(BaseModel):
    ds: dt.date
    yhat: float
    yhat_lower: float
    yhat_upper: float


class WeekPoint(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    week: dt.date = Field(description="Monday of the ISO week")
    expected: float
    p_spike: float
    threshold: float


class SeriesFlag(BaseModel):
    kind: str
    code: str
    detail: str


class SeriesForecast(BaseModel):
    series_id: str
    run_id: str
    train_until: dt.date | None
    points: list[DailyPoint]
    weeks: list[WeekPoint]
    flags: list[SeriesFlag]


class WeekRow(WeekPoint):
    series_id: str
    run_id: str


class ForecastList(BaseModel):
    items: list[WeekRow]


class PeakPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    run_id: str
    series_id: str
    signal: str
    category: str
    region: str
    start: dt.date
    end: dt.date
    peak_week: dt.date
    expected_count: float = Field(description="Expected count over the window")
    expected_excess: float = Field(description="Expected count above the threshold")
    max_probability: float = Field(description="Highest weekly P(spike) in the window")
    threshold: float = Field(description="Spike threshold T of the series")


class PeakList(BaseModel):
    items: list[PeakPublic]


def _run_public(session: Any, run_id: str) -> RunPublic:
    run = get_run(session=session, run_id=run_id)
    failures = session.scalars(select(SeriesIssue).where(
        SeriesIssue.run_id == run_id, SeriesIssue.kind == "failure").limit(1000)).all()
    out = RunPublic.model_validate(run)
    out.failures = [SeriesProblem(series_id=f.series_id, kind=f.kind, code=f.code,
                                  detail=f.detail) for f in failures]
    return out


@router.post("/forecast-runs", status_code=202, summary="Start a forecast run",
             responses={202: {"description": "Accepted; poll the Location"}})
def post_forecast_run(
    body: RunCreate, request: Request, response: Response, session: SessionDep,
    settings: SettingsDep, key: Annotated[ApiKey, Depends(require("plan"))],
) -> RunPublic:
    run = create_run(session=session, settings=settings, horizon_days=body.horizon_days,
                     train_until=body.train_until, engine=body.engine, jobs=body.jobs,
                     signals=list(body.signals), requested_by=key.prefix)
    request.app.state.run_executor.submit(run.id)
    response.headers["Location"] = f"/v1/forecast-runs/{run.id}"
    return _run_public(session, run.id)


@router.get("/forecast-runs/{run_id}", summary="A forecast run's status, progress and failures",
            dependencies=[Depends(require("read"))], responses=_NOT_FOUND)
def get_forecast_run(run_id: str, session: SessionDep) -> RunPublic:
    return _run_public(session, run_id)


def _lookup_latest_run_id(request: Request) -> str | None:
    with request.app.state.sessionmaker() as session:
        run = latest_run(session=session)
    request.app.state.latest_run_memo = (time.monotonic(), run.id if run else None)
    return run.id if run else None


async def _latest_run_id(request: Request) -> str | None:
    """Id of the newest finished run, read from the database at most once a second."""
    at, run_id = request.app.state.latest_run_memo
    if time.monotonic() - at <= 1.0:
        return run_id  # type: ignore[no-any-return]
    return await run_in_threadpool(_lookup_latest_run_id, request)


def _forecast_body(request: Request, series_id: str, run_id: str | None,
                   rid: str | None) -> bytes:
    cache = request.app.state.response_cache
    key = ("forecast", rid, series_id)
    with request.app.state.sessionmaker() as session:
        run = get_run(session=session, run_id=run_id) if run_id else latest_run(
            session=session, series_id=series_id)
        if run is None:
            raise NotFound(f"no finished forecast run covers series '{series_id}'")
        data = series_forecast(session=session, series_id=series_id, run_id=run.id)
        body: bytes = SeriesForecast.model_validate(data).model_dump_json().encode()
        if run.status in FINISHED:
            cache.put(("forecast", run.id, series_id), body)
            if run.id != rid and rid is not None:
                cache.put(key, body)  # the newest run does not cover it: remember the answer
    return body


@router.get("/series/{series_id}/forecast", summary="Latest forecast of one series",
            dependencies=[Depends(require("read"))], responses=_NOT_FOUND,
            response_model=SeriesForecast)
async def get_series_forecast(request: Request, series_id: str,
                              run_id: str | None = None) -> Response:
    """Daily points (80 % band) and weekly P(spike) of the newest finished run covering the
    series (or of ``run_id``). Responses of finished runs are served from a cache."""
    parse_series_id(series_id)
    rid = run_id or await _latest_run_id(request)
    body = request.app.state.response_cache.get(("forecast", rid, series_id)) if rid else None
    if body is None:
        body = await run_in_threadpool(_forecast_body, request, series_id, run_id, rid)
    return Response(body, media_type="application/json")


@router.get("/forecasts", summary="Weekly forecasts of the latest run",
            dependencies=[Depends(require("read"))])
def get_forecasts(
    session: SessionDep, category: str | None = None, region: str | None = None,
    date_from: Annotated[dt.date | None, Query(alias="from")] = None,
    date_to: Annotated[dt.date | None, Query(alias="to")] = None,
) -> ForecastList:
    rows = list_forecasts(session=session, category=category, region=region,
                          date_from=date_from, date_to=date_to)
    return ForecastList(items=[WeekRow.model_validate(r, from_attributes=True) for r in rows])


def _peaks_body(request: Request, key: tuple[object, ...], run_id: str | None,
                **filters: Any) -> bytes:
    with request.app.state.sessionmaker() as session:
        rows = list_peaks(session=session, run_id=run_id, **filters)
        body: bytes = PeakList(items=[PeakPublic.model_validate(r) for r in rows]
                               ).model_dump_json().encode()
    request.app.state.response_cache.put(key, body)
    return body


@router.get("/peaks", summary="Predicted peak windows of the latest run",
            dependencies=[Depends(require("read"))], response_model=PeakList)
async def get_peaks(
    request: Request, category: str | None = None, region: str | None = None,
    signal: Literal["complaints", "violations"] | None = None,
    date_from: Annotated[dt.date | None, Query(alias="from")] = None,
    date_to: Annotated[dt.date | None, Query(alias="to")] = None,
    min_probability: Annotated[float | None, Query(ge=0, le=1)] = None,
    run_id: str | None = None,
) -> Response:
    """Peak windows overlapping [from, to], each with its evidence: threshold, expected
    count, probability and the run id."""
    rid = run_id or await _latest_run_id(request)
    if rid is None:
        return Response(PeakList(items=[]).model_dump_json(), media_type="application/json")
    filters = {"category": category, "region": region, "signal": signal,
               "date_from": date_from, "date_to": date_to, "min_probability": min_probability}
    key = ("peaks", rid, *filters.values())
    body = request.app.state.response_cache.get(key)
    if body is None:
        body = await run_in_threadpool(_peaks_body, request, key, rid, **filters)
    return Response(body, media_type="application/json")
