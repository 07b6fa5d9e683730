"""Forecast runs, forecasts and predicted peaks."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from service.api import pagination
from service.api.cache import allow_read_cache
from service.api.decision_schema import DECISION_EXAMPLE, DecisionPublic, decision_of, decisions_of
from service.api.deps import LanguageDep, SessionDep, SettingsDep, require
from service.api.numbers import dump_json
from service.api.peak_schema import PeakPlace, PeakWindow
from service.api.problems import BODY_RESPONSES, PROBLEM_RESPONSES, problem_doc
from service.api.routes.listings import ForecastRunBase
from service.errors import BadRequest, NotFound
from service.forecasting import (
    FINISHED,
    create_run,
    get_run,
    latest_run,
    peaks_query,
    series_forecast,
)
from service.store.series import parse_series_id, series_id_matches
from service.store.tables import ApiKey, ForecastRun, ForecastWeek, Peak, SeriesIssue

router = APIRouter(tags=["forecasts"], responses=PROBLEM_RESPONSES)
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_doc("Not found", 404)}
_RunPath = Annotated[str, Path(description="Forecast run id")]
_RunQuery = Annotated[str | None, Query(
    description="Forecast run id (default: the newest finished run)")]
_SeriesPath = Annotated[str, Path(description="Series id `signal|category|region`, e.g. "
                                              "`complaints|fireworks|150100`")]
_Category = Annotated[str | None, Query(description="Only this category code, e.g. "
                                                    "`fireworks`")]
_Region = Annotated[str | None, Query(description="Only this region code (GB/T 2260), e.g. "
                                                  "`150100`")]


class RunCreate(BaseModel):
    horizon_days: int = Field(182, ge=7, le=730, description="Days to forecast")
    train_until: dt.date | None = Field(
        None, description="Use only records up to this day (check predictions afterwards)")
    engine: Literal["serial", "local", "dask"] | None = Field(
        None, description="Where series are fitted (default: the configured engine)")
    jobs: int | None = Field(None, ge=-1, le=256,
                             description="Parallel fits (-1: all cores; default: configured)")
    signals: list[Literal["complaints", "violations"]] = Field(
        ["complaints", "violations"], description="Signals to forecast")
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"horizon_days": 182, "train_until": "2026-11-22", "signals": ["complaints"]}]})


class SeriesProblem(BaseModel):
    series_id: str
    kind: str
    code: str
    detail: str


class RunPublic(ForecastRunBase):
    params: dict[str, Any]
    durations: dict[str, Any]
    failures: list[SeriesProblem] = []
    decisions: list[DecisionPublic] = Field(
        default_factory=list, description="The decision threshold of every category, with "
        "its objective, backtest origins and scores, in plain words (empty before the run "
        "finishes, and for runs older than learned thresholds)")
    decision_backtests: dict[str, Any] = Field(
        default_factory=dict, description="How the thresholds were decided: `mode` (learned "
        "or pinned), `origins`, `horizon_weeks`, `min_windows`, and `backtests` (series × "
        "origin pairs, how many were reused from earlier runs, fitted, stored)")
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "id": "7c4e2b9a1f3d4a6e8b0c2d4f6a8e1b3c", "status": "succeeded", "engine": "local",
        "params": {"signals": ["complaints", "violations"], "jobs": 2},
        "train_until": "2026-11-22", "horizon_days": 182, "done": 412, "total": 414,
        "failed": 2, "error": None, "durations": {"load_seconds": 12.4, "fit_seconds": 1843.2,
                                        "store_seconds": 46.1, "total_seconds": 1901.7},
        "created_at": "2026-11-23T02:00:00Z", "started_at": "2026-11-23T02:00:01Z",
        "finished_at": "2026-11-23T02:31:43Z",
        "failures": [{"series_id": "violations|food_safety|152900", "kind": "failure",
                      "code": "error", "detail": "InsufficientHistory: 41 days of data"}],
        "decisions": [DECISION_EXAMPLE],
        "decision_backtests": {"mode": "learned", "origins": ["2024-06-30", "2024-12-29"],
                               "horizon_weeks": 26, "min_windows": 8, "lead_days": 14,
                               "backtests": {"pairs": 828, "reused": 820, "fitted": 4,
                                             "stored": 8}}}]})


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
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "series_id": "complaints|fireworks|150100", "run_id": "7c4e2b9a1f3d4a6e8b0c2d4f6a8e1b3c",
        "train_until": "2026-11-22",
        "points": [{"ds": "2027-02-06", "yhat": 24.1, "yhat_lower": 15.3, "yhat_upper": 34.8}],
        "weeks": [{"week": "2027-02-01", "expected": 168.4, "p_spike": 0.91,
                   "threshold": 96.0}],
        "flags": [{"kind": "flag", "code": "short_history",
                   "detail": "fewer than 2 years of history: no yearly seasonality"}]}]})
    series_id: str
    run_id: str
    train_until: dt.date | None
    points: list[DailyPoint]
    weeks: list[WeekPoint]
    flags: list[SeriesFlag]


class WeekRow(WeekPoint):
    series_id: str
    run_id: str


class ForecastList(pagination.Page[WeekRow]):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"week": "2027-02-01", "expected": 168.4, "p_spike": 0.91, "threshold": 96.0,
                   "series_id": "complaints|fireworks|150100",
                   "run_id": "7c4e2b9a1f3d4a6e8b0c2d4f6a8e1b3c"}],
        "next_cursor": None}]})
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page (pages "
                                    "stay on the run of the first page)")


class PeakPublic(PeakWindow, PeakPlace):
    decision: DecisionPublic | None = Field(None, description="Why weeks at `p_min` warn: "
                                            "objective, backtest evidence, in plain words")


class PeakList(pagination.Page[PeakPublic]):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"id": 3071, "run_id": "7c4e2b9a1f3d4a6e8b0c2d4f6a8e1b3c",
                   "series_id": "complaints|fireworks|150100",
                   "signal": "complaints", "category": "fireworks", "region": "150100",
                   "start": "2027-02-01", "end": "2027-02-14", "peak_week": "2027-02-01",
                   "expected_count": 301.7, "expected_excess": 109.7,
                   "max_probability": 0.91, "threshold": 96.0, "onset": "2027-01-25",
                   "p_min": 0.25, "window_start": "2027-02-01", "window_end": "2027-02-14",
                   "part": 1, "parts": 1, "decision": DECISION_EXAMPLE}],
        "next_cursor": None}]})
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page (pages "
                                    "stay on the run of the first page)")


def _run_public(session: Any, run_id: str, language: str = "en") -> RunPublic:
    run = get_run(session=session, run_id=run_id)
    failures = session.scalars(select(SeriesIssue).where(
        SeriesIssue.run_id == run_id, SeriesIssue.kind == "failure").limit(1000)).all()
    doc = run.decisions or {}
    own = {name: getattr(run, name) for name in RunPublic.model_fields
           if name not in ("failures", "decisions", "decision_backtests")}
    return RunPublic.model_validate({
        **own, "decisions": decisions_of(doc, language),
        "decision_backtests": {k: v for k, v in doc.items() if k != "categories"},
        "failures": [SeriesProblem(series_id=f.series_id, kind=f.kind, code=f.code,
                                   detail=f.detail) for f in failures]})


@router.post("/forecast-runs", status_code=202, summary="Start a forecast run",
             responses={202: {"description": "Accepted; poll the Location",
                              "headers": {"Location": {"description": "URL of the run",
                                                       "schema": {"type": "string"}}}},
                        409: problem_doc("A run is already queued (one runs and one waits "
                                         "per deployment): `queued_run` names it", 409),
                        **BODY_RESPONSES})
def post_forecast_run(
    body: RunCreate, request: Request, response: Response, session: SessionDep,
    settings: SettingsDep, key: Annotated[ApiKey, Depends(require("plan"))],
) -> RunPublic:
    """Queue a run that fits every series of the chosen signals, learns the decision
    threshold of every category from backtests before the cut-off (unless
    FOREWARN_FORECAST__P_MIN pins one), and stores daily forecasts, weekly P(spike) and the
    campaign windows. Answers 202 at once with the queued run; poll ``Location`` for
    progress. One run runs and one waits per deployment: with a run already queued, 409
    names it (``queued_run``, ``running_run``). Needs the ``plan`` scope."""
    run = create_run(session=session, settings=settings, horizon_days=body.horizon_days,
                     train_until=body.train_until, engine=body.engine, jobs=body.jobs,
                     signals=list(body.signals), requested_by=key.prefix, bounded=True)
    try:
        public = _run_public(session, run.id)  # as accepted: read before a worker takes it
    finally:
        request.app.state.run_executor.submit(run.id)
    response.headers["Location"] = f"/v1/forecast-runs/{run.id}"
    return public


@router.get("/forecast-runs/{run_id}", summary="A forecast run's status, progress and failures",
            dependencies=[Depends(require("read"))], responses=_NOT_FOUND)
def get_forecast_run(run_id: _RunPath, session: SessionDep, response: Response,
                     language: LanguageDep) -> RunPublic:
    """Status (queued, running, succeeded, partial, failed), series done / failed of the
    total, timings (``backtest_seconds``, ``decision_seconds`` for the thresholds), up to
    1000 per-series failures and the decision threshold of every category with its
    evidence, explained in English or Chinese (``Accept-Language``). Needs the ``read``
    scope."""
    response.headers["Content-Language"] = language
    response.headers["Vary"] = "Accept-Language"
    return _run_public(session, run_id, language)


def _lookup_latest_run_id(request: Request) -> str | None:
    state = request.app.state
    forgotten = getattr(state, "latest_run_forgotten", 0)
    with state.sessionmaker() as session:
        run = latest_run(session=session)
    if getattr(state, "latest_run_forgotten", 0) == forgotten:  # else a run ended meanwhile:
        state.latest_run_memo = (time.monotonic(), run.id if run else None)  # read it again
    return run.id if run else None


#: Seconds the id of the newest finished run is remembered between database reads.
LATEST_RUN_TTL = 1.0


def forget_latest_run(state: Any) -> None:
    """Drop the memo of the newest finished run (called by the app's ``RunExecutor`` when a
    run ends), so the next request reads it again: a run finished in this process shows at
    once; one finished elsewhere (the scheduler's process, the CLI) within
    :data:`LATEST_RUN_TTL`."""
    state.latest_run_forgotten = getattr(state, "latest_run_forgotten", 0) + 1
    state.latest_run_memo = (float("-inf"), None)


async def latest_run_id(request: Request) -> str | None:
    """Id of the newest finished run, read from the database at most once every
    :data:`LATEST_RUN_TTL` seconds (and right after a run of this process ends)."""
    at, run_id = request.app.state.latest_run_memo
    if time.monotonic() - at <= LATEST_RUN_TTL:
        return run_id  # type: ignore[no-any-return]
    return await run_in_threadpool(_lookup_latest_run_id, request)


def _cache_key(series_id: str, run_id: str | None, rid: str | None) -> tuple[str, ...] | None:
    """Where the answer is cached: by the run asked for, or (no ``run_id``) as the latest
    answer while ``rid`` is the newest run. Two spaces: the latest answer may come from an
    older run (the newest does not cover the series) and must never answer ``?run_id=rid``."""
    if run_id is not None:
        return ("forecast", run_id, series_id)
    return None if rid is None else ("forecast-latest", rid, series_id)


def _forecast_body(request: Request, series_id: str, run_id: str | None,
                   rid: str | None) -> tuple[bytes, bool]:
    """The answer and whether it comes from a finished run (immutable)."""
    cache = request.app.state.response_cache
    with request.app.state.sessionmaker() as session:
        run = get_run(session=session, run_id=run_id) if run_id else latest_run(
            session=session, series_id=series_id)
        if run is None:
            raise NotFound(f"no finished forecast run covers series '{series_id}'")
        data = series_forecast(session=session, series_id=series_id, run_id=run.id)
        body: bytes = dump_json(SeriesForecast.model_validate(data))
        if run.status in FINISHED:
            cache.put(("forecast", run.id, series_id), body)
            latest = _cache_key(series_id, run_id, rid)
            if run_id is None and latest is not None:
                cache.put(latest, body)
    return body, run.status in FINISHED


@router.get("/series/{series_id}/forecast", summary="Latest forecast of one series",
            dependencies=[Depends(require("read"))], responses=_NOT_FOUND,
            response_model=SeriesForecast)
async def get_series_forecast(request: Request, series_id: _SeriesPath,
                              run_id: _RunQuery = None) -> Response:
    """Daily points (80 % band) and weekly P(spike) of the newest finished run covering the
    series (or of ``run_id``), with data-quality flags. Responses of finished runs are
    served from a cache. Needs the ``read`` scope; 404 when no finished run covers it."""
    parse_series_id(series_id)
    rid = run_id or await latest_run_id(request)
    key = _cache_key(series_id, run_id, rid)
    body = request.app.state.response_cache.get(key) if key is not None else None
    finished = body is not None  # only answers of finished runs are cached
    if body is None:
        body, finished = await run_in_threadpool(_forecast_body, request, series_id, run_id,
                                                 rid)
    if finished:
        allow_read_cache(request.state)
    return Response(body, media_type="application/json")


_WEEK_ORDER = ((ForecastWeek.series_id, False), (ForecastWeek.week, False))


def _forecast_page(session: Any, *, category: str | None, region: str | None,
                   date_from: dt.date | None, date_to: dt.date | None, limit: int,
                   cursor: str | None) -> ForecastList:
    """Weekly rows of one run ordered by (series_id, week); the cursor carries the run id."""
    after: list[Any] | None = None
    if cursor is not None:
        run_id, *after = pagination.decode_cursor(cursor, (str, str, dt.date))
    else:
        run = latest_run(session=session)
        if run is None:
            return ForecastList(items=[], next_cursor=None)
        run_id = run.id
    fw = ForecastWeek
    stmt = select(fw.run_id, fw.series_id, fw.week, fw.expected, fw.p_spike, fw.threshold
                  ).where(fw.run_id == run_id)
    stmt = stmt.where(*series_id_matches(fw.series_id, category=category, region=region))
    if date_from:
        stmt = stmt.where(fw.week >= date_from - dt.timedelta(days=6))
    if date_to:
        stmt = stmt.where(fw.week <= date_to)
    if after is not None:
        stmt = stmt.where(pagination.keyset_after(_WEEK_ORDER, after))
    rows = session.execute(stmt.order_by(fw.series_id, fw.week).limit(limit + 1)).all()
    page, nxt = pagination.page_of(rows, limit, lambda r: (r.run_id, r.series_id, r.week))
    return ForecastList(items=[WeekRow.model_validate(r._asdict()) for r in page],
                        next_cursor=nxt)


@router.get("/forecasts", summary="Weekly forecasts of the latest run (by series and week, "
            "cursor-paginated)", dependencies=[Depends(require("read"))],
            responses=pagination.PAGINATION_RESPONSES)
def get_forecasts(
    session: SessionDep, category: _Category = None, region: _Region = None,
    date_from: Annotated[dt.date | None, Query(
        alias="from", description="Weeks ending on/after this day")] = None,
    date_to: Annotated[dt.date | None, Query(
        alias="to", description="Weeks starting on/before this day")] = None,
    limit: pagination.LimitQuery = pagination.DEFAULT_LIMIT, cursor: pagination.CursorQuery = None,
) -> ForecastList:
    """Expected count, spike threshold and P(spike) per series and ISO week, from the newest
    finished run. Needs the ``read`` scope."""
    return _forecast_page(session, category=category, region=region, date_from=date_from,
                          date_to=date_to, limit=limit, cursor=cursor)


#: Peaks by start, then most expected excess first, then id (total order).
_PEAK_ORDER = ((Peak.start, False), (Peak.expected_excess, True), (Peak.id, False))


def peak_public(peak: Peak, document: dict[str, Any] | None, language: str) -> PeakPublic:
    """A stored peak with its category's decision from the run's document."""
    out = PeakPublic.model_validate(peak)
    out.decision = decision_of(document, peak.category, language)
    return out


def _peaks_body(request: Request, key: tuple[object, ...], run_id: str, limit: int,
                after: list[Any] | None, language: str, **filters: Any) -> tuple[bytes, bool]:
    """The answer and whether it comes from a finished run (immutable)."""
    with request.app.state.sessionmaker() as session:
        stmt = peaks_query(run_id=run_id, **filters)
        if after is not None:
            stmt = stmt.where(pagination.keyset_after(_PEAK_ORDER, after))
        rows = list(session.scalars(stmt.order_by(Peak.start, Peak.expected_excess.desc(),
                                                  Peak.id).limit(limit + 1)))
        page, nxt = pagination.page_of(rows, limit,
                                       lambda p: (p.run_id, p.start, p.expected_excess, p.id))
        status, document = session.execute(select(ForecastRun.status, ForecastRun.decisions)
                                           .where(ForecastRun.id == run_id)).one_or_none() \
            or (None, None)
        body: bytes = dump_json(PeakList(items=[peak_public(r, document, language)
                                                for r in page], next_cursor=nxt))
    if status in FINISHED:  # a finished run's peaks never change
        request.app.state.response_cache.put(key, body)
    return body, status in FINISHED


@router.get("/peaks", summary="Predicted peak windows of the latest run (cursor-paginated)",
            dependencies=[Depends(require("read"))], response_model=PeakList,
            responses=pagination.PAGINATION_RESPONSES)
async def get_peaks(
    request: Request, language: LanguageDep, category: _Category = None, region: _Region = None,
    signal: Annotated[Literal["complaints", "violations"] | None, Query(
        description="Only this signal")] = None,
    date_from: Annotated[dt.date | None, Query(
        alias="from", description="Windows ending on/after this day")] = None,
    date_to: Annotated[dt.date | None, Query(
        alias="to", description="Windows starting on/before this day")] = None,
    min_probability: Annotated[float | None, Query(
        ge=0, le=1, description="Only windows whose highest weekly P(spike) is at least "
                                "this")] = None,
    run_id: _RunQuery = None,
    limit: pagination.LimitQuery = pagination.DEFAULT_LIMIT, cursor: pagination.CursorQuery = None,
) -> Response:
    """Campaign windows overlapping [from, to] (a predicted window longer than its
    category's ``max_campaign_weeks`` is several, ``part`` of ``parts``), each with its
    evidence: spike threshold, expected count, probability, expected onset, the run id and
    the ``decision`` — the threshold the run learned (or was pinned to) for the category,
    with its backtest scores and a plain-words explanation (Chinese when
    ``Accept-Language`` prefers zh). Ordered by start, then expected excess (largest
    first), then id; later pages stay on the run of the first page. Needs the ``read``
    scope."""
    after: list[Any] | None = None
    if cursor is not None:
        cursor_run, *after = pagination.decode_cursor(cursor, (str, dt.date, float, int))
        if run_id is not None and run_id != cursor_run:
            raise BadRequest("the cursor belongs to another run_id")
        run_id = cursor_run
    rid = run_id or await latest_run_id(request)
    headers = {"Content-Language": language, "Vary": "Accept-Language"}
    if rid is None:  # no finished run: a finished run changes the read cache's key
        allow_read_cache(request.state)
        return Response(PeakList(items=[], next_cursor=None).model_dump_json(),
                        media_type="application/json", headers=headers)
    filters = {"category": category, "region": region, "signal": signal,
               "date_from": date_from, "date_to": date_to, "min_probability": min_probability}
    key = ("peaks", rid, language, *filters.values(), limit, cursor)
    body = request.app.state.response_cache.get(key)
    finished = body is not None  # only answers of finished runs are cached
    if body is None:
        body, finished = await run_in_threadpool(_peaks_body, request, key, rid, limit, after,
                                                 language, **filters)
    if finished:
        allow_read_cache(request.state)
    return Response(body, media_type="application/json", headers=headers)
