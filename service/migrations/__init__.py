"""Alembic migrations; run with ``forewarn db upgrade`` (also applied at start-up)."""
