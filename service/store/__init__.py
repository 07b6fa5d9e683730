"""Storage: SQLAlchemy tables and keyword-only data-access functions."""
