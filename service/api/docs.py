"""The API console at ``/docs`` (Swagger UI) and ``/redoc``, served offline.

FastAPI's default pages load Swagger UI and ReDoc from a CDN, so they stay blank on an
intranet without internet access. Here the pages load the assets that the installed
``fastapi-offline`` package ships (``fastapi_offline/static/``: swagger-ui-bundle.js,
swagger-ui.css, redoc.standalone.js), served under ``/docs/assets/``; nothing is fetched
from outside the deployment.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from service.errors import AssetMissing, NotFound, installed_package_dir

__all__ = ["install_docs", "docs_assets_dir", "ASSETS"]

ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
          "swagger-ui.css": "text/css; charset=utf-8",
          "redoc.standalone.js": "text/javascript; charset=utf-8"}
_FAVICON = "data:,"


def docs_assets_dir() -> Path:
    """Folder of the console's assets in the installed ``fastapi-offline`` package."""
    return installed_package_dir("fastapi_offline", dist="fastapi-offline",
                                 needed_by="/docs needs its bundled Swagger UI") / "static"


def install_docs(app: FastAPI, *, title: str) -> None:
    """Add ``/docs``, ``/redoc`` and ``/docs/assets/{name}`` (create the app with
    ``docs_url=None, redoc_url=None``)."""
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{title} — API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css", swagger_favicon_url=_FAVICON,
            swagger_ui_parameters={"persistAuthorization": False})

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{title} — API",
                              redoc_js_url="/docs/assets/redoc.standalone.js",
                              redoc_favicon_url=_FAVICON, with_google_fonts=False)

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise NotFound(f"no console asset '{name}'")
        path = docs_assets_dir() / name
        if not path.is_file():
            raise AssetMissing(f"{path} is missing from the fastapi-offline package")
        return FileResponse(path, media_type=ASSETS[name],
                            headers={"Cache-Control": "public, max-age=86400"})
