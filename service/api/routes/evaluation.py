"""Campaign effects, guidance-work scorecards and report charts."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from service.api.decision_schema import DecisionPublic
from service.api.deps import SessionDep, SettingsDep, require
from service.api.i18n import preferred_language
from service.api.numbers import RoundedJSONResponse
from service.api.problems import PROBLEM_RESPONSES, problem_doc
from service.campaigns.tables import Campaign
from service.config import Settings
from service.errors import Conflict, NotFound, UnprocessableContent
from service.evaluation.charts import series_chart
from service.evaluation.common import SENT_STATUSES
from service.evaluation.schema import (
    _CID,
    _RUN,
    EffectOut,
    EvaluationPending,
    Materialised,
    Scorecard,
    Signal,
)
from service.evaluation.storage import LOCAL_MARKS, effect_key, read, scorecard_key, state
from service.evaluation.storage import request as register
from service.evaluation.worker import default_signal

__all__ = ["router"]

router = APIRouter(tags=["evaluation"], dependencies=[Depends(require("read"))],
                   responses=PROBLEM_RESPONSES)
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: problem_doc("Not found", 404)}
_NOT_SENT: dict[int | str, dict[str, Any]] = {409: problem_doc("Conflict", 409)}
_SeriesPath = Annotated[str, Path(description="Series id `signal|category|region`, e.g. "
                                              "`complaints|fireworks|150100`")]
_HistoryWeeks = Annotated[int, Query(ge=4, le=520, description="Complete weeks of history "
                                                               "to show (4–520)")]
_RunQuery = Annotated[str | None, Query(
    description="Forecast run id (default: the newest finished run covering the series)")]
_SignalQuery = Annotated[Signal | None, Query(
    description="Signal to measure (default: the one the window was predicted for, else "
                "complaints)")]

_PENDING: dict[int | str, dict[str, Any]] = {202: {
    "model": EvaluationPending,
    "description": "Not computed yet: the evaluation worker was asked to compute it; ask "
                   "again after `Retry-After` seconds",
    "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {
        "type": "integer"}}}}}


class ServedAnswers:
    """Current answers already sent by this process, as bytes, keyed by (kind, key) and
    valid while the input generation is the one they were computed from; the generation is
    read at most once a second (at once after a mark by this process), so a hit touches no
    database; another process's change shows within a second."""

    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self.bodies: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.memo: tuple[float, int, int] = (float("-inf"), 0, 0)

    def generation(self, request: Request) -> int | None:
        at, gen, marks = self.memo
        fresh = time.monotonic() - at <= 1.0 and marks == LOCAL_MARKS[0]
        return gen if fresh else None

    def refresh_generation(self, request: Request) -> int:
        marks = LOCAL_MARKS[0]  # before the read: a mark during it forces another
        with request.app.state.sessionmaker() as session:
            gen = state(session).generation
        self.memo = (time.monotonic(), gen, marks)
        return gen

    def get(self, kind: str, key: str, generation: int) -> bytes | None:
        hit = self.bodies.get((kind, key))
        return hit[1] if hit is not None and hit[0] == generation else None

    def put(self, kind: str, key: str, generation: int, body: bytes) -> None:
        if len(self.bodies) >= self.max_entries:
            self.bodies.clear()
        self.bodies[(kind, key)] = (generation, body)


async def _cached(request: Request, kind: str, key: str) -> bytes | None:
    served: ServedAnswers = request.app.state.evaluation_served
    gen = served.generation(request)
    if gen is None:
        gen = await run_in_threadpool(served.refresh_generation, request)
    return served.get(kind, key, gen)


def _serve(request: Request, session: Session, settings: Settings, kind: str, key: str,
           params: dict[str, Any]) -> Response:
    """A stored answer with its ``materialised`` block, or 202 while there is none. A missing
    or stale answer wakes the API process's evaluation worker (a background thread that
    recomputes in a child process); the request itself only reads."""
    got = read(session, kind, key)
    if got is None:
        register(session, kind, key, params)
        session.commit()
        got = read(session, kind, key)
    assert got is not None
    if got.pending:
        request.app.state.evaluation_executor.nudge()
    if got.error is not None and got.generation >= got.state.generation:
        raise UnprocessableContent(got.error)
    if got.body is None:
        retry = settings.evaluation.retry_after_seconds
        pending = EvaluationPending(retry_after=retry,
                                    materialised=Materialised(**got.meta()))
        return RoundedJSONResponse(pending.model_dump(mode="json"), status_code=202,
                                   headers={"Retry-After": str(retry)})
    # the stored JSON text as it is, the ``materialised`` block spliced in: no parsing, no
    # re-rendering of a scorecard of hundreds of campaigns per request
    meta = orjson.dumps({"materialised": Materialised(**got.meta()).model_dump(mode="json")})
    body = got.body.encode()
    out = meta[:-1] + (b"," + body[1:] if body != b"{}" else b"}")
    if not got.pending:
        request.app.state.evaluation_served.put(kind, key, got.state.generation, out)
    return Response(out, media_type="application/json")


def _serve_new_session(request: Request, settings: Settings, kind: str, key: str,
                       params: dict[str, Any], campaign_id: str | None = None) -> Response:
    with request.app.state.sessionmaker() as session:
        if campaign_id is not None:
            c = session.get(Campaign, campaign_id)
            if c is None:
                raise NotFound(f"campaign {campaign_id} does not exist")
            if c.status not in SENT_STATUSES:
                raise Conflict(f"campaign {campaign_id} is {c.status}; effects are measured "
                               "only for sent campaigns", status_now=c.status)
        return _serve(request, session, settings, kind, key, params)


@router.get("/campaigns/{campaign_id}/effect", summary="A campaign's measured effect",
            response_model=EffectOut, responses={**_PENDING, **_NOT_FOUND, **_NOT_SENT})
async def get_campaign_effect(campaign_id: Annotated[str, Path(description="Campaign id")],
                              request: Request, settings: SettingsDep,
                              signal: _SignalQuery = None) -> Response:
    """Actual counts over the window against the forecast frozen at approval (calibrated on
    predicted peak windows that had no campaign; labelled uncalibrated when too few exist),
    and a difference-in-differences estimate against regions without a campaign, each with
    the smallest effect it could have detected. Only sent campaigns have an effect: any
    other status answers 409. Needs the ``read`` scope.

    Served from the materialised evaluation: the evaluation worker computes it when its
    inputs change (a refit, a dispatch, a campaign's status, an import, a week closing);
    ``materialised`` says when, and whether a recompute is pending. Never computed yet:
    202 with ``Retry-After``."""
    key = effect_key(campaign_id, signal)
    # a stored answer exists only for a sent campaign, and a status change marks it stale
    hit = await _cached(request, "effect", key)
    if hit is not None:
        return Response(hit, media_type="application/json")
    return await run_in_threadpool(_serve_new_session, request, settings, "effect", key,
                                   {"campaign_id": campaign_id, "signal": signal},
                                   campaign_id)


@router.get("/evaluation", summary="Guidance-work scorecard", response_model=Scorecard,
            response_model_by_alias=True, responses=_PENDING)
async def get_evaluation(
    request: Request,
    settings: SettingsDep,
    group_by: Annotated[Literal["category", "region", "department"], Query(
        description="Rows per category, region or department (the category's sector)")
    ] = "category",
    date_from: Annotated[dt.date | None, Query(
        alias="from", description="Period start: campaigns by send date, spike windows by "
                                  "first day")] = None,
    date_to: Annotated[dt.date | None, Query(
        alias="to", description="Period end (inclusive)")] = None,
    signal: Annotated[Signal | None, Query(
        description="Signal the spikes and effects are measured on (default: the first "
                    "planning signal)")] = None,
    pooled_by: Annotated[Literal["category", "region", "department", "region_level", "year"],
                         Query(description="Grouping of the top-level pooled effects")
                         ] = "category",
) -> Response:
    """Pooled effects first (per group: the randomised design estimate when windows were
    randomised, the DiD and the calibrated counterfactual, each with heterogeneity, the
    smallest detectable effect and the campaigns needed to detect -20 %; each campaign's
    contribution), then campaigns sent, spike windows caught in advance, median lead time,
    estimated counts avoided (with 80 % / 95 % intervals; only calibrated counterfactual or DiD
    estimates are counted, per campaign in ``campaigns``) and failed deliveries per category,
    region or department (the category's sector). Needs the ``read`` scope.

    Served from the materialised evaluation (see the campaign effect): ``materialised`` says
    when the figures were computed and whether a recompute is pending; a query never asked
    before answers 202 with ``Retry-After`` while the worker computes it."""
    if date_from and date_to and date_from > date_to:
        raise UnprocessableContent("'from' is after 'to'")
    sig = signal or default_signal(settings)
    key = scorecard_key(group_by=group_by, date_from=date_from, date_to=date_to, signal=sig,
                        pooled_by=pooled_by)
    hit = await _cached(request, "scorecard", key)
    if hit is not None:
        return Response(hit, media_type="application/json")
    return await run_in_threadpool(_serve_new_session, request, settings, "scorecard", key, {
        "group_by": group_by, "from": date_from.isoformat() if date_from else None,
        "to": date_to.isoformat() if date_to else None, "signal": sig,
        "pooled_by": pooled_by})


class ChartWeek(BaseModel):
    week: dt.date
    count: int | None = Field(description="Records in the week; null when the series' "
                                          "sources do not cover the whole week")


class ChartForecastWeek(BaseModel):
    week: dt.date
    expected: float
    lower_80: float
    upper_80: float
    p_spike: float
    threshold: float


class ChartPeak(BaseModel):
    start: dt.date
    end: dt.date
    peak_week: dt.date
    max_probability: float
    expected_count: float
    onset: dt.date | None = Field(None, description="Expected onset week (Monday)")
    p_min: float | None = Field(None, description="Decision threshold of the run")


class ChartCampaign(BaseModel):
    id: str
    status: str
    title: str
    window_start: dt.date
    window_end: dt.date
    send_date: dt.date


_AcceptLanguage = Annotated[str | None, Header(
    description="Language of the decision's explanation: Chinese by default (the "
                "dashboard's), English when the highest-weighted language is not zh")]


class SeriesChart(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "series_id": "complaints|fireworks|150100", "signal": "complaints",
        "category": "fireworks", "region": "150100", "category_name": "烟花爆竹",
        "region_name": "呼和浩特市", "category_name_en": "Fireworks",
        "region_name_en": "Hohhot", "run_id": _RUN, "train_until": "2026-11-22",
        "data_from": "2019-01-01", "data_to": "2026-11-22", "threshold": 96.0,
        "history": [{"week": "2026-11-16", "count": 21}],
        "forecast": [{"week": "2027-02-01", "expected": 168.4, "lower_80": 131.0,
                      "upper_80": 196.0, "p_spike": 0.91, "threshold": 96.0}],
        "peaks": [{"start": "2027-02-01", "end": "2027-02-14", "peak_week": "2027-02-01",
                   "max_probability": 0.91, "expected_count": 301.7}],
        "campaigns": [{"id": _CID, "status": "approved",
                       "title": "【执法事项提示】呼和浩特市·烟花爆竹",
                       "window_start": "2027-02-01", "window_end": "2027-02-14",
                       "send_date": "2027-01-18"}]}]})
    series_id: str
    signal: Signal
    category: str
    region: str
    category_name: str
    region_name: str
    category_name_en: str | None
    region_name_en: str | None
    run_id: str | None
    train_until: dt.date | None
    data_from: dt.date | None = Field(None, description="First day the series' own sources "
                                                         "cover")
    data_to: dt.date | None = Field(None, description="Last day the series' own sources "
                                                       "cover (its data end)")
    threshold: float | None
    history: list[ChartWeek]
    forecast: list[ChartForecastWeek]
    peaks: list[ChartPeak]
    campaigns: list[ChartCampaign]
    decision: DecisionPublic | None = Field(
        None, description="The run's decision threshold for the category (drawn on the "
        "P(spike) panel), with its evidence and explanation (Chinese unless "
        "Accept-Language prefers another language)")


@router.get("/series/{series_id}/chart", summary="Weekly history, forecast band, P(spike), "
            "peaks and campaigns of one series", responses=_NOT_FOUND)
def get_series_chart(
    series_id: _SeriesPath, session: SessionDep, accept_language: _AcceptLanguage = None,
    history_weeks: _HistoryWeeks = 104, run_id: _RunQuery = None,
) -> SeriesChart:
    """The data behind the dashboard chart: complete weeks of history, the run's weekly
    forecast with its 80 % band and P(spike), the spike threshold, predicted peaks, the
    campaigns of the series' category and region, and the run's decision threshold for the
    category with its explanation (Chinese, the dashboard's language, unless
    ``Accept-Language`` asks for another). Needs the ``read`` scope."""
    language = "zh" if accept_language is None else preferred_language(accept_language)
    return SeriesChart.model_validate(series_chart(
        session=session, series_id=series_id, history_weeks=history_weeks, run_id=run_id,
        language=language))


@router.get("/series/{series_id}/forecast.png", summary="Forecast chart for reports (PNG)",
            response_class=Response,
            responses={**_NOT_FOUND, 200: {
                "description": "PNG image of the chart",
                "content": {"image/png": {"schema": {"type": "string", "format": "binary"},
                                          "example": "(binary PNG image data)"}}}})
def get_forecast_png(
    series_id: _SeriesPath, session: SessionDep,
    history_weeks: _HistoryWeeks = 104, run_id: _RunQuery = None,
    width: Annotated[float, Query(ge=4, le=20, description="Width in inches (4–20)")] = 10.0,
    height: Annotated[float, Query(ge=3, le=15, description="Height in inches (3–15)")] = 6.0,
) -> Response:
    """The same chart rendered as a PNG image for reports (Chinese labels when a CJK font is
    installed). Needs the ``read`` scope."""
    from service.dashboard.png import render_forecast_png

    chart = series_chart(session=session, series_id=series_id, history_weeks=history_weeks,
                         run_id=run_id)
    png = render_forecast_png(chart, width=width, height=height)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})
