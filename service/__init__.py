"""Forewarn's application shell: settings, storage, ingestion, REST API, scheduler, CLI."""

__version__ = "0.1.0"
