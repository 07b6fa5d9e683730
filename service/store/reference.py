"""Reference data: categories and regions from the deployment's YAML files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.store.tables import Category, Region

__all__ = ["load_reference", "read_yaml_list"]


def read_yaml_list(path: Path, key: str) -> list[dict[str, Any]]:
    """The list under ``key`` in a YAML file, with a clear error when it is malformed."""
    with path.open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise ValueError(f"{path}: expected a mapping with a list under '{key}'")
    items: list[dict[str, Any]] = doc[key]
    for i, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not item.get("code"):
            raise ValueError(f"{path}: {key} entry {i} has no 'code'")
    return items


_CATEGORY_FIELDS = ("name_zh", "name_en", "aliases", "sector", "lead_days", "legal_basis",
                    "requirements", "advice", "templates", "randomised_timing")
_REGION_FIELDS = ("name_zh", "name_en", "parent", "level", "population", "aliases")


def load_reference(
    *, session: Session, categories_file: Path, regions_file: Path
) -> dict[str, int]:
    """Upsert categories and regions from YAML; returns how many of each were loaded."""
    regions = read_yaml_list(regions_file, "regions")
    categories = read_yaml_list(categories_file, "categories")
    existing_r = {r.code: r for r in session.scalars(select(Region))}
    # parents first so the self-reference holds
    order = {"province": 0, "league": 1, "city": 1, "county": 2}
    for item in sorted(regions, key=lambda r: order.get(str(r.get("level")), 3)):
        code = str(item["code"])
        row = existing_r.get(code) or Region(code=code)
        for f in _REGION_FIELDS:
            if f in item:
                value = item[f]
                setattr(row, f, str(value) if f == "parent" and value is not None else value)
        row.name_zh = row.name_zh or code
        row.aliases = [str(a) for a in (row.aliases or [])]
        row.registered_by_import = False
        session.add(row)
        session.flush()
    existing_c = {c.code: c for c in session.scalars(select(Category))}
    for item in categories:
        code = str(item["code"])
        if "randomised_timing" in item:
            from service.campaigns.randomised import parse_timing_setting

            try:
                item = {**item, "randomised_timing": parse_timing_setting(
                    item["randomised_timing"])}
            except ValueError as exc:
                raise ValueError(f"{categories_file}: category '{code}': randomised_timing: "
                                 f"{exc}") from exc
        cat = existing_c.get(code) or Category(code=code)
        for f in _CATEGORY_FIELDS:
            if f in item:
                setattr(cat, f, item[f])
        cat.name_zh = cat.name_zh or code
        cat.lead_days = int(cat.lead_days or 14)
        cat.aliases = [str(a) for a in (cat.aliases or [])]
        cat.registered_by_import = False
        session.add(cat)
    session.commit()
    return {"categories": len(categories), "regions": len(regions)}
