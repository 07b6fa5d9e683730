"""The dashboard's assets: a static page (HTML, JS, CSS shipped with the package) that talks to
the ``/v1`` API with the API key the user pastes in (kept in ``sessionStorage``), and the
forecast chart as PNG (:mod:`service.dashboard.png`). Its routes are an API router,
:mod:`service.api.routes.dashboard`; this package imports nothing of the API.

Works offline: the only library, plotly.js, is served from the ``plotly`` Python package
(``plotly/package_data/plotly.min.js``); nothing is loaded from a CDN.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from service.errors import ServiceError

__all__ = ["STATIC_DIR", "ASSETS", "plotly_js_path"]

STATIC_DIR = Path(__file__).resolve().parent  # index.html, app.js, app.css (package data)
#: The page's own assets and their media types.
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


class _PlotlyMissing(ServiceError):
    status = 503
    title = "Service Unavailable"


def plotly_js_path() -> Path:
    """Path of the bundled ``plotly.min.js`` of the installed ``plotly`` package."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        raise _PlotlyMissing("the plotly package is not installed; the dashboard needs its "
                             "bundled plotly.min.js (pip install plotly)")
    path = Path(spec.origin).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise _PlotlyMissing(f"plotly.min.js not found at {path}")
    return path
