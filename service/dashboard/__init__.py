"""The dashboard's assets: a static page (HTML, JS, CSS shipped with the package) that talks to
the ``/v1`` API with the API key the user pastes in (kept in ``sessionStorage``), and the
forecast chart as PNG (:mod:`service.dashboard.png`). Its routes are an API router,
:mod:`service.api.routes.dashboard`; this package imports nothing of the API.

Works offline: the only library, plotly.js, is served from the ``plotly`` Python package
(``plotly/package_data/plotly.min.js``); nothing is loaded from a CDN.
"""

from __future__ import annotations

from pathlib import Path

from service.errors import AssetMissing, installed_package_dir

__all__ = ["STATIC_DIR", "ASSETS", "plotly_js_path"]

STATIC_DIR = Path(__file__).resolve().parent  # index.html, app.js, app.css (package data)
#: The page's own assets and their media types.
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


def plotly_js_path() -> Path:
    """Path of the bundled ``plotly.min.js`` of the installed ``plotly`` package."""
    package = installed_package_dir("plotly", dist="plotly",
                                    needed_by="the dashboard needs its bundled plotly.min.js")
    path = package / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise AssetMissing(f"plotly.min.js not found at {path}")
    return path
