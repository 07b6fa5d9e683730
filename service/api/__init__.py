"""REST API (FastAPI)."""
