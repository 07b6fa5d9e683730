"""Fixtures of the ingestion tests.

Storage tests take ``sf`` (a session factory on a migrated database with the reference data
of ``tests/ingest/fixtures``), which follows the shared ``db_url`` fixture over SQLite and
PostgreSQL (a fresh database per test, marked ``external_service``). ``sqlite_sf`` is for
tests whose subject does not depend on the backend (formats, encodings, parsing).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.db import make_engine, make_sessionmaker
from service.ingest.batches import BatchSummary
from service.ingest.pipeline import import_file
from service.migrate import upgrade
from service.store.reference import load_reference

HERE = Path(__file__).resolve().parent
REF = HERE / "fixtures"
ROOT = HERE.parent.parent
SAMPLES = ROOT / "data" / "samples"
CHICAGO = ROOT.parent / "shared" / "data" / "chicago_311"

ZH_HEADER = ["工单编号", "受理时间", "问题类别", "所属地区", "行业", "受理渠道", "投诉内容",
             "投诉人", "联系电话"]
#: The canonical header of a complaints file.
EN_HEADER = ["source", "external_id", "received_at", "category", "region", "text"]


def imp(sf: sessionmaker[Session], data: bytes | Path, name: str | None = "f.csv",
        **kw: Any) -> BatchSummary:
    """Import ``data`` (the bytes of a file named ``name``, or a path) as complaints of source
    ``test`` unless ``kw`` says otherwise."""
    path = data if isinstance(data, Path) else io.BytesIO(data)
    kw.setdefault("kind", "complaints")
    kw.setdefault("source", "test")
    return import_file(session_factory=sf, path=path, filename=name, **kw)


def load_ref(sf: sessionmaker[Session]) -> None:
    with sf() as s:
        load_reference(session=s, categories_file=REF / "categories.yaml",
                       regions_file=REF / "regions.yaml")


def _migrated(url: str) -> Engine:
    eng = make_engine(url)
    upgrade(eng)
    return eng


@pytest.fixture
def sf(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Session factory on a fresh, migrated database (both backends) with reference data."""
    eng = _migrated(db_url)
    factory = make_sessionmaker(eng)
    load_ref(factory)
    yield factory
    eng.dispose()


@pytest.fixture
def sqlite_sf(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Like ``sf`` but SQLite only."""
    eng = _migrated(f"sqlite:///{tmp_path / 'ingest.db'}")
    factory = make_sessionmaker(eng)
    load_ref(factory)
    yield factory
    eng.dispose()


def csv_bytes(rows: Sequence[Sequence[Any]], header: Sequence[str] = ZH_HEADER, *,
              encoding: str = "utf-8") -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode(encoding)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zh_rows(n: int, *, start: int = 0, prefix: str = "GD") -> list[list[str]]:
    """``n`` valid complaint rows under :data:`ZH_HEADER` (personal columns filled)."""
    cats = ["烟花爆竹", "食品安全", "fireworks", "Gas safety", "噪音"]
    regs = ["呼和浩特市", "包头市", "150400", "Hohhot", "新城区"]
    return [
        [f"{prefix}{i:08d}", f"2023-{i % 12 + 1:02d}-{i % 28 + 1:02d} {i % 24:02d}:05:00",
         cats[i % len(cats)], regs[i % len(regs)], "公共安全", "电话",
         f"第{i}号投诉：楼下有人燃放烟花。", "张三", "13912345678"]
        for i in range(start, start + n)
    ]
