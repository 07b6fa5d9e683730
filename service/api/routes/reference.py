"""The deployment's categories and regions (the known filter values of every listing)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from service.api.deps import SessionDep, require
from service.api.problems import PROBLEM_RESPONSES
from service.store.tables import Category, Region

__all__ = ["router", "hierarchy_order"]

router = APIRouter(tags=["reference"], dependencies=[Depends(require("read"))],
                   responses=PROBLEM_RESPONSES)


class CategoryPublic(BaseModel):
    code: str
    name_zh: str
    name_en: str | None
    sector: str | None
    lead_days: int = Field(description="Days before a peak a reminder goes out")
    languages: list[str] = Field(
        description="Languages of the reminder text: `zh`, plus each language variant of "
                    "the category's templates (e.g. `mn`)")


class CategoryList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [
        {"code": "fireworks", "name_zh": "违规销售燃放烟花爆竹", "name_en": "Fireworks",
         "sector": "公共安全", "lead_days": 21, "languages": ["zh", "mn"]}]}]})
    items: list[CategoryPublic]


class RegionPublic(BaseModel):
    code: str = Field(description="GB/T 2260 code")
    name_zh: str
    name_en: str | None
    parent: str | None
    level: str = Field(description="province, league / city, county / banner")
    depth: int = Field(description="0 for a region without parent, 1 below it, …")


class RegionList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"items": [
        {"code": "150000", "name_zh": "内蒙古自治区", "name_en": "Inner Mongolia Autonomous "
         "Region", "parent": None, "level": "province", "depth": 0},
        {"code": "150100", "name_zh": "呼和浩特市", "name_en": "Hohhot", "parent": "150000",
         "level": "league", "depth": 1},
        {"code": "150102", "name_zh": "新城区", "name_en": "Xincheng District",
         "parent": "150100", "level": "county", "depth": 2}]}]})
    items: list[RegionPublic] = Field(description="Depth first: each region followed by the "
                                      "regions below it, siblings by code as numbers")


def _code_key(code: str) -> tuple[int, int | str]:
    return (0, int(code)) if code.isdigit() else (1, code)


def hierarchy_order(regions: Iterable[Any]) -> list[tuple[Any, int]]:
    """``(region, depth)`` depth first from the roots; siblings by numeric code."""
    items = list(regions)
    codes = {r.code for r in items}
    children: dict[str | None, list[Any]] = {}
    for r in items:
        parent = r.parent if r.parent in codes else None
        children.setdefault(parent, []).append(r)
    out: list[tuple[Any, int]] = []
    stack = [(r, 0) for r in sorted(children.get(None, []), key=lambda r: _code_key(r.code),
                                    reverse=True)]
    seen: set[str] = set()
    while stack:
        r, depth = stack.pop()
        if r.code in seen:
            continue
        seen.add(r.code)
        out.append((r, depth))
        kids = sorted(children.get(r.code, []), key=lambda k: _code_key(k.code), reverse=True)
        stack.extend((k, depth + 1) for k in kids)
    return out


def _languages(cat: Category) -> list[str]:
    from service.campaigns.content import template_languages

    return template_languages(cat)


@router.get("/categories", summary="The deployment's categories")
def get_categories(session: SessionDep) -> CategoryList:
    """Every category by code, with names, sector, lead days and the languages its reminders
    are written in. The values the ``category`` filters accept. Needs the ``read`` scope."""
    rows = session.scalars(select(Category).order_by(Category.code))
    return CategoryList(items=[CategoryPublic(code=c.code, name_zh=c.name_zh,
                                              name_en=c.name_en, sector=c.sector,
                                              lead_days=c.lead_days,
                                              languages=_languages(c)) for c in rows])


@router.get("/regions", summary="The deployment's regions, in hierarchy order")
def get_regions(session: SessionDep) -> RegionList:
    """Every region with its parent and level, depth first (a league or city followed by its
    banners and counties). The values the ``region`` filters accept. Needs the ``read``
    scope."""
    rows = session.scalars(select(Region))
    return RegionList(items=[RegionPublic(code=r.code, name_zh=r.name_zh, name_en=r.name_en,
                                          parent=r.parent, level=r.level, depth=d)
                             for r, d in hierarchy_order(rows)])
