"""Reference data: categories and regions from the deployment's YAML files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.store.tables import Category, Region

__all__ = ["load_reference", "read_yaml_list", "decision_fields", "DECISION_FIELDS",
           "parse_timing_setting"]


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
#: How a category's warnings are judged (DESIGN.md "Decision threshold"), with defaults.
DECISION_FIELDS: dict[str, float | int | None] = {
    "beta": 1.0, "reminder_cost": None, "miss_cost": None, "max_campaign_weeks": 6}


#: A category's randomised timing (:mod:`service.campaigns.randomised`) with its defaults.
_TIMING_DEFAULTS = {"enabled": False, "delay_weeks": 2, "min_regions": 4}


def parse_timing_setting(value: Any) -> dict[str, Any]:
    """Validate a category's ``randomised_timing`` setting.

    Accepts ``true``/``false`` or a mapping ``{enabled, delay_weeks (1-8), min_regions
    (>= 4: two regions in each arm)}``; returns the mapping with defaults filled in.

    Raises
    ------
    ValueError
        Naming the field and the problem.
    """
    if isinstance(value, bool):
        value = {"enabled": value}
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError("must be true/false or a mapping {enabled, delay_weeks, min_regions}")
    unknown = sorted(set(value) - set(_TIMING_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(map(str, unknown))}")
    out = {**_TIMING_DEFAULTS, **dict(value)}
    if not isinstance(out["enabled"], bool):
        raise ValueError("enabled must be true or false")
    for name, lo, hi in (("delay_weeks", 1, 8), ("min_regions", 4, 1000)):
        v = out[name]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(f"{name} must be an integer from {lo} to {hi}, not {v!r}")
    return out


def _number(path: Path, code: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{path}: category '{code}': {field} must be a number, "
                         f"not {value!r}")
    return float(value)


def decision_fields(path: Path, item: dict[str, Any]) -> dict[str, float | int | None]:
    """``beta``, ``reminder_cost``, ``miss_cost`` and ``max_campaign_weeks`` of one
    categories.yaml entry, with defaults; a clear ``ValueError`` naming the file, the
    category and the field when one is wrong."""
    code = str(item["code"])
    out = dict(DECISION_FIELDS)
    if item.get("beta") is not None:
        beta = _number(path, code, "beta", item["beta"])
        if not 0 < beta <= 10:
            raise ValueError(f"{path}: category '{code}': beta must be > 0 and <= 10 (1 weighs "
                             f"recall and precision equally, 2 favours recall), not {beta:g}")
        out["beta"] = beta
    costs = {f: item.get(f) for f in ("reminder_cost", "miss_cost")}
    given = [f for f, v in costs.items() if v is not None]
    if len(given) == 1:
        missing = "miss_cost" if given[0] == "reminder_cost" else "reminder_cost"
        raise ValueError(f"{path}: category '{code}': {given[0]} is set but {missing} is not; "
                         f"set both (the cost/loss rule: warn when P(spike) >= reminder_cost / "
                         f"miss_cost) or neither (F-beta)")
    if given:
        reminder = _number(path, code, "reminder_cost", costs["reminder_cost"])
        miss = _number(path, code, "miss_cost", costs["miss_cost"])
        if reminder <= 0 or miss <= 0:
            raise ValueError(f"{path}: category '{code}': reminder_cost and miss_cost must be "
                             f"positive (got {reminder:g} and {miss:g})")
        if reminder >= miss:
            raise ValueError(f"{path}: category '{code}': reminder_cost ({reminder:g}) must be "
                             f"less than miss_cost ({miss:g}); otherwise no warning is worth "
                             f"sending")
        out["reminder_cost"], out["miss_cost"] = reminder, miss
    if item.get("max_campaign_weeks") is not None:
        weeks = item["max_campaign_weeks"]
        if isinstance(weeks, bool) or not isinstance(weeks, int) or not 1 <= weeks <= 52:
            raise ValueError(f"{path}: category '{code}': max_campaign_weeks must be a whole "
                             f"number of weeks from 1 to 52, not {weeks!r}")
        out["max_campaign_weeks"] = weeks
    return out
_REGION_FIELDS = ("name_zh", "name_en", "parent", "level", "population", "aliases")


def load_reference(
    *, session: Session, categories_file: Path, regions_file: Path
) -> dict[str, int]:
    """Upsert categories and regions from YAML; returns how many of each were loaded."""
    regions = read_yaml_list(regions_file, "regions")
    categories = read_yaml_list(categories_file, "categories")
    rules = {str(item["code"]): decision_fields(categories_file, item) for item in categories}
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
        for f, value in rules[code].items():
            setattr(cat, f, value)
        cat.aliases = [str(a) for a in (cat.aliases or [])]
        cat.registered_by_import = False
        session.add(cat)
    session.commit()
    return {"categories": len(categories), "regions": len(regions)}
