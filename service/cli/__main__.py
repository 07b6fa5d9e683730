"""``python -m service.cli``: the same as ``forewarn``."""

from __future__ import annotations

from service.cli import app

if __name__ == "__main__":  # pragma: no cover
    app()
