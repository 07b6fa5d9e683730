"""Deterministic synthetic sample data (Inner Mongolia complaints and enforcement)."""

from __future__ import annotations

from service.samples.generator import DEFAULT_END, DEFAULT_SEED, DEFAULT_START, generate

__all__ = ["DEFAULT_END", "DEFAULT_SEED", "DEFAULT_START", "generate"]
