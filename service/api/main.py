"""ASGI entry point for uvicorn: ``service.api.main:app`` (settings from the environment)."""

from __future__ import annotations

from service.api.app import create_app
from service.config import Settings
from service.logging import configure_logging

_settings = Settings()
configure_logging(_settings.log_level, json=_settings.log_json)
app = create_app(_settings)
