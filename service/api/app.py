"""Application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service import __version__
from service.api.audit_hook import AuditMiddleware
from service.api.cache import ResponseCache
from service.api.deps import KeyCache
from service.api.docs import install_docs
from service.api.filters import ReferenceCodes, check_reference_filters
from service.api.middleware import (
    BodyLimitMiddleware,
    InFlightMiddleware,
    ObservabilityMiddleware,
    RateLimitMiddleware,
)
from service.api.numbers import RoundedJSONResponse
from service.api.openapi_doc import install_openapi
from service.api.problems import install_problem_handlers
from service.api.read_cache import ReadCache, ReadCacheMiddleware
from service.api.routes import (
    campaigns,
    dashboard,
    dispatches,
    evaluation,
    forecasts,
    health,
    imports,
    keys,
    listings,
    metrics,
    public,
    recipients,
    reference,
    scheduler,
    series,
)
from service.api.routes.evaluation import ServedAnswers
from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.evaluation.worker import EvaluationExecutor
from service.forecasting import RunExecutor, recover_interrupted_runs
from service.ingest.background import ImportExecutor
from service.ingest.batches import recover_interrupted
from service.migrate import upgrade

__all__ = ["create_app"]

DESCRIPTION = """
Forewarn forecasts when violations will spike, per category and region, and plans
"enforcement matter reminders" (执法事项提示) before the peak.

Every `/v1` endpoint except `/v1/public/*` needs an API key in the `X-API-Key` header with the
scope named in the operation. Errors are RFC 9457 problem details (`application/problem+json`).
"""


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    """Build the FastAPI app for ``settings``; applies migrations at start-up by default."""
    settings = settings or Settings()
    api = settings.api
    engine = make_engine(settings.database_url, lock_timeout=api.lock_timeout_seconds,
                         pool_size=api.pool_size, max_overflow=api.pool_max_overflow,
                         pool_timeout=api.pool_timeout_seconds)
    if migrate:
        upgrade(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from service.scheduler.embedded import start_embedded, stop_embedded

        start_embedded(app)  # only when settings.scheduler.enabled (serve --with-scheduler)
        yield
        stop_embedded(app)
        app.state.import_executor.shutdown()
        app.state.run_executor.shutdown()
        app.state.evaluation_executor.shutdown()
        engine.dispose()

    app = FastAPI(title="Forewarn", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None,
                  default_response_class=RoundedJSONResponse,  # floats to 6 significant digits
                  dependencies=[Depends(check_reference_filters)])  # unknown category → 422
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.run_executor = RunExecutor(  # a finished run shows on the next request
        app.state.sessionmaker, settings,
        on_finished=lambda _run_id: forecasts.forget_latest_run(app.state))
    app.state.import_executor = ImportExecutor(app.state.sessionmaker, settings)
    app.state.evaluation_executor = EvaluationExecutor(app.state.sessionmaker, settings)
    if migrate:  # batches and runs left queued/running by a process that died: interrupted
        recover_interrupted(app.state.sessionmaker,
                            stale_after_seconds=settings.imports.stale_after_seconds)
        recover_interrupted_runs(app.state.sessionmaker)
    app.state.response_cache = ResponseCache()
    app.state.read_cache = ReadCache(api.read_cache_seconds, api.read_cache_max_bytes)
    forecasts.forget_latest_run(app.state)  # the newest finished run: not read yet
    app.state.evaluation_served = ServedAnswers()
    app.state.key_cache = KeyCache(settings.api.key_cache_seconds)
    app.state.reference_codes = ReferenceCodes()
    install_problem_handlers(app)
    # outermost last: observability sees every response, including 413 and 429
    app.add_middleware(ReadCacheMiddleware)  # repeated reads of the hot routes, after the key
    app.add_middleware(AuditMiddleware)  # innermost: sees the matched route and the key
    app.add_middleware(RateLimitMiddleware, per_minute=settings.api.rate_limit_per_minute,
                       storage=settings.api.rate_limit_storage,
                       key_prefix=settings.api.rate_limit_key_prefix)
    app.add_middleware(InFlightMiddleware, max_in_flight=settings.api.max_in_flight,
                       retry_after=settings.api.retry_after_seconds)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api.max_body_bytes)
    if settings.api.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.api.cors_origins,
                           allow_methods=["GET", "POST", "PATCH"],
                           allow_headers=["X-API-Key", "Content-Type"])
    app.add_middleware(ObservabilityMiddleware)

    app.include_router(health.router)
    app.include_router(metrics.router)
    for module in (series, imports, forecasts, campaigns, public, dispatches, scheduler,
                   evaluation, recipients, keys, reference, listings, dashboard):
        app.include_router(module.router, prefix="/v1")
    app.include_router(dashboard.page_router)  # the page at / and its assets
    install_openapi(app)
    install_docs(app, title="Forewarn")  # Swagger UI from an installed package (offline)
    return app
