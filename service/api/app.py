"""Application factory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request, Response

from service import __version__
from service.api.problems import install_problem_handlers
from service.api.routes import forecasts, health, series
from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.forecasting import RunExecutor
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
    engine = make_engine(settings.database_url)
    if migrate:
        upgrade(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.run_executor.shutdown()
        engine.dispose()

    app = FastAPI(title="Forewarn", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.run_executor = RunExecutor(app.state.sessionmaker, settings)
    install_problem_handlers(app)

    @app.middleware("http")
    async def request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        rid = request.headers.get("X-Request-ID") or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=rid)
        try:
            response = await call_next(request)
        finally:
            structlog.contextvars.clear_contextvars()
        response.headers["X-Request-ID"] = rid
        return response

    app.include_router(health.router)
    app.include_router(series.router, prefix="/v1")
    app.include_router(forecasts.router, prefix="/v1")
    return app
