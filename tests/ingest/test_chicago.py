"""End to end on real data: Chicago 311 sanitation complaints 2011-2014 (74,200 records).

Counts per year and per category in the database must equal a plain pandas count of the same
files: rows with a blank category (``(blank)``) or a blank ward are rejected, repeats of a
service request number are duplicates (the first valid occurrence is kept).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.ingest.pipeline import import_file
from service.store.tables import Category, Complaint
from tests.ingest.conftest import CHICAGO

pytestmark = pytest.mark.shared_data

MAPPING = {"external_id": "service_request_number", "received_at": "created_date",
           "category": "violation_nature", "region": "ward"}


def _files() -> list[Path]:
    files = sorted(CHICAGO.glob("chicago_311_sanitation_code_complaints_*.csv"))
    if not files:
        pytest.skip(f"Chicago 311 data not found in {CHICAGO} (../shared is absent)")
    return files


def test_chicago_counts_match_pandas(sqlite_sf: sessionmaker[Session]) -> None:
    files = _files()
    summaries = [import_file(session_factory=sqlite_sf, kind="complaints", path=f,
                             source="chicago-311", mapping=MAPPING, register_new=True)
                 for f in files]

    frame = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files],
                      ignore_index=True)
    blank_cat = frame["violation_nature"].str.strip().isin(["", "(blank)"])
    blank_ward = frame["ward"].str.strip() == ""
    valid = frame[~blank_cat & ~blank_ward]
    kept = valid.drop_duplicates("service_request_number", keep="first")

    assert sum(s.received for s in summaries) == len(frame) == 74_200
    assert sum(s.rejected for s in summaries) == int((blank_cat | blank_ward).sum())
    assert sum(s.inserted for s in summaries) == len(kept)
    assert sum(s.duplicates for s in summaries) == len(valid) - len(kept)
    problems = {(e.field, e.problem) for s in summaries for e in s.errors}
    assert problems == {("category", "missing_value"), ("region", "missing_value")}

    expected_year = kept["created_date"].str[:4].value_counts().sort_index()
    expected_cat = kept["violation_nature"].value_counts().sort_index()
    with sqlite_sf() as s:
        by_year: dict[str, int] = {}
        for day, n in s.execute(select(Complaint.day, func.count()).group_by(Complaint.day)):
            year = str(day)[:4]
            by_year[year] = by_year.get(year, 0) + int(n)
        by_cat = dict(s.execute(
            select(Category.name_zh, func.count()).join(
                Complaint, Complaint.category == Category.code).group_by(Category.name_zh)
        ).all())
    assert {str(k): int(v) for k, v in by_year.items()} == {
        str(k): int(v) for k, v in expected_year.items()}
    assert {str(k): int(v) for k, v in by_cat.items()} == {
        str(k): int(v) for k, v in expected_cat.items()}
    assert "garbage_in_alley" in summaries[0].registered_categories
