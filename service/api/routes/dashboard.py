"""The dashboard's routes: the page at ``/`` and its assets (outside the schema), and the two
``/v1/dashboard`` endpoints the page calls (who am I, reference names). The page and its
assets are in :mod:`service.dashboard`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from service.api.deps import SessionDep, require
from service.api.problems import PROBLEM_RESPONSES
from service.dashboard import ASSETS, STATIC_DIR, plotly_js_path
from service.errors import NotFound
from service.store.tables import ApiKey, Category, Region

__all__ = ["router", "page_router"]

_CACHE = {"Cache-Control": "no-cache"}

#: The page and its assets (mounted at the root, not in the OpenAPI document).
page_router = APIRouter(include_in_schema=False)
#: The ``/dashboard/*`` endpoints of the API (mounted under ``/v1``).
router = APIRouter(tags=["dashboard"], responses=PROBLEM_RESPONSES)


@page_router.get("/", response_class=HTMLResponse)
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
                        headers=_CACHE)


@page_router.get("/dashboard/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(plotly_js_path(), media_type="text/javascript; charset=utf-8",
                        headers={"Cache-Control": "public, max-age=86400"})


@page_router.get("/dashboard/{asset}")
def static_asset(asset: str) -> FileResponse:
    if asset not in ASSETS:
        raise NotFound(f"no dashboard asset '{asset}'")
    return FileResponse(STATIC_DIR / asset, media_type=ASSETS[asset], headers=_CACHE)


class WhoAmI(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"prefix": "9c41e07a", "name": "呼和浩特市局 值班",
         "scopes": ["read", "plan", "approve"]}]})
    prefix: str
    name: str
    scopes: list[str]


@router.get("/dashboard/whoami", summary="The calling key's name and scopes")
def whoami(key: Annotated[ApiKey, Depends(require("read"))]) -> WhoAmI:
    """The key's prefix, name and scopes; lets the dashboard show approve / cancel only to
    keys that may use them. Needs the ``read`` scope."""
    scopes: list[Any] = list(key.scopes)
    return WhoAmI(prefix=key.prefix, name=key.name, scopes=[str(s) for s in scopes])


class NamedCode(BaseModel):
    code: str
    name_zh: str
    name_en: str | None
    sector: str | None = None
    parent: str | None = None


class Reference(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "categories": [{"code": "fireworks", "name_zh": "烟花爆竹", "name_en": "Fireworks",
                        "sector": "公共安全", "parent": None}],
        "regions": [{"code": "150100", "name_zh": "呼和浩特市", "name_en": "Hohhot",
                     "sector": None, "parent": "150000"}]}]})
    categories: list[NamedCode]
    regions: list[NamedCode]


@router.get("/dashboard/reference", summary="Category and region names for pickers",
                dependencies=[Depends(require("read"))])
def reference(session: SessionDep) -> Reference:
    """Every category (with its sector) and region (with its parent) by code, with Chinese
    and English names. Needs the ``read`` scope."""
    cats = session.scalars(select(Category).order_by(Category.code))
    regs = session.scalars(select(Region).order_by(Region.code))
    return Reference(
        categories=[NamedCode(code=c.code, name_zh=c.name_zh, name_en=c.name_en,
                              sector=c.sector) for c in cats],
        regions=[NamedCode(code=r.code, name_zh=r.name_zh, name_en=r.name_en, parent=r.parent)
                 for r in regs])
