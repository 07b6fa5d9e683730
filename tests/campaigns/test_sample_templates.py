"""Every template shipped in the sample categories renders, with legal basis and evidence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from service.campaigns.content import render_campaign
from service.campaigns.tables import Campaign
from service.store.reference import read_yaml_list
from service.store.tables import Category, Region

CATEGORIES = Path(__file__).resolve().parents[2] / "service" / "samples" / "categories.yaml"


@pytest.mark.skipif(not CATEGORIES.exists(), reason="sample categories not present")
def test_sample_templates_render() -> None:
    region = Region(code="150100", name_zh="呼和浩特市", name_en="Hohhot")
    items = read_yaml_list(CATEGORIES, "categories")
    assert items
    for item in items:
        cat = Category(**{k: item.get(k) for k in ("code", "name_zh", "name_en", "sector",
                                                   "legal_basis", "requirements", "advice")},
                       templates=item.get("templates") or {})
        assert cat.legal_basis, f"{cat.code} has no legal basis"
        for probability in (0.73, None):
            c = Campaign(id="x", category=cat.code, region="150100",
                         window_start=dt.date(2025, 5, 5), window_end=dt.date(2025, 5, 18),
                         send_date=dt.date(2025, 4, 14), lead_days=item.get("lead_days", 14),
                         probability=probability, expected_count=42.4 if probability else None,
                         expected_excess=12.0 if probability else None, title="t",
                         content_overrides={}, evidence=[{"signal": "complaints"}])
            for channel in {"default", "public", "email", "webhook", *cat.templates}:
                body = render_campaign(campaign=c, category=cat, region=region,
                                       channel=channel).body
                assert str(cat.legal_basis[0]["title"]) in body, (cat.code, channel)
                assert "呼和浩特市" in body and "2025年5月5日" in body, (cat.code, channel)
                if probability:
                    assert "73%" in body, (cat.code, channel)
