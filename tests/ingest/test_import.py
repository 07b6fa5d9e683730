"""Imports into the database: formats, faults, redaction, idempotency, concurrency, failure.

Tests that take ``sf`` run on SQLite and on PostgreSQL (``external_service``).
"""

from __future__ import annotations

import gc
import json
import threading
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from service.errors import Conflict, UnprocessableContent, UnsupportedMediaType
from service.ingest import pipeline
from service.ingest.batches import BatchSummary, get_batch
from service.ingest.pipeline import import_records
from service.store.tables import (
    Category,
    Complaint,
    EnforcementAction,
    ImportBatch,
    Region,
    RejectedRow,
)
from tests.ingest.conftest import SAMPLES, ZH_HEADER, csv_bytes, gz, imp, zh_rows


def _count(sf: sessionmaker[Session], model: Any = Complaint, **where: Any) -> int:
    with sf() as s:
        stmt = select(func.count()).select_from(model)
        for k, v in where.items():
            stmt = stmt.where(getattr(model, k) == v)
        return int(s.scalar(stmt) or 0)


def _series_index_present(sf: sessionmaker[Session]) -> bool:
    with sf() as s:
        names = {ix["name"] for ix in inspect(s.get_bind()).get_indexes("complaints")}
    return "ix_complaints_series_day" in names


def _complaint(sf: sessionmaker[Session], external_id: str) -> Complaint:
    with sf() as s:
        row = s.scalar(select(Complaint).where(Complaint.external_id == external_id))
        assert row is not None
        return row


# ------------------------------------------------------------------ formats and encodings

ROWS = [["GD1", "2023-01-05 14:03:00", "烟花爆竹", "呼和浩特市", "公共安全", "电话",
         "有人卖烟花", "张三", "13912345678"],
        ["GD2", "2023/1/6 09:00", "food_safety", "Baotou", "", "微信", "过期食品", "", ""],
        ["GD3", "2023年1月7日 20时30分", "燃气", "150400", "城镇燃气", "APP", "", "李四", "x"]]


def _check_three(sf: sessionmaker[Session], summary: BatchSummary) -> None:
    assert (summary.received, summary.inserted, summary.rejected) == (3, 3, 0), summary.errors
    one = _complaint(sf, "GD1")
    assert (one.category, one.region, one.channel, one.sector) == (
        "fireworks", "150100", "phone", "公共安全")
    assert str(one.day) == "2023-01-05"
    assert one.received_at.replace(tzinfo=None).isoformat() == "2023-01-05T06:03:00"
    three = _complaint(sf, "GD3")
    assert (three.category, three.region, str(three.day)) == ("gas_safety", "150400",
                                                              "2023-01-07")
    assert three.text is None and _complaint(sf, "GD2").sector is None


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gb18030", "gb18030"), ("gbk", "gb18030")],
)
def test_csv_encodings(sqlite_sf: sessionmaker[Session], encoding: str, expected: str) -> None:
    summary = imp(sqlite_sf, csv_bytes(ROWS, encoding=encoding))
    assert summary.encoding == expected and summary.format == "csv"
    _check_three(sqlite_sf, summary)


def test_csv_gzip_and_delimiters(sqlite_sf: sessionmaker[Session]) -> None:
    summary = imp(sqlite_sf, gz(csv_bytes(ROWS, encoding="gb18030")), "export.csv.gz")
    assert summary.format == "csv"
    _check_three(sqlite_sf, summary)
    tsv = csv_bytes([[c.replace(",", " ") for c in r] for r in ROWS]).decode().replace(",", "\t")
    again = imp(sqlite_sf, tsv.encode(), None)  # sniffed, tab-separated
    assert (again.received, again.duplicates) == (3, 3)


def test_xlsx(sqlite_sf: sessionmaker[Session], tmp_path: Path) -> None:
    import datetime as dt

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(ZH_HEADER)
    ws.append(["GD1", dt.datetime(2023, 1, 5, 14, 3), "烟花爆竹", "呼和浩特市", "公共安全",
               "电话", "有人卖烟花", "张三", 13912345678])
    ws.append([])  # a blank row is skipped, not numbered
    ws.append(["GD2", "2023/1/6 09:00", "food_safety", "Baotou", None, "微信", "过期食品"])
    ws.append(["GD3", 44933.854166666664, "燃气", 150400, "城镇燃气", "APP", None, "李四"])
    path = tmp_path / "导出.xlsx"
    wb.save(path)
    summary = imp(sqlite_sf, path, None)
    assert summary.format == "xlsx"
    _check_three(sqlite_sf, summary)


def test_json_array_and_json_lines(sqlite_sf: sessionmaker[Session]) -> None:
    records = [dict(zip(ZH_HEADER, r, strict=True)) for r in ROWS]
    summary = imp(sqlite_sf, json.dumps(records, ensure_ascii=False).encode(), "a.json")
    assert summary.format == "json"
    _check_three(sqlite_sf, summary)
    lines = [json.dumps({**r, "工单编号": r["工单编号"] + "x"}, ensure_ascii=False)
             for r in records]
    lines.insert(1, "{not json")
    lines.insert(2, "[1, 2]")
    body = ("\n".join(lines) + "\n").encode()
    summary = imp(sqlite_sf, body, "a.jsonl")
    assert summary.format == "jsonl"
    assert (summary.received, summary.inserted, summary.rejected) == (5, 3, 2)
    assert [(e.row, e.problem) for e in summary.errors] == [(2, "malformed_record"),
                                                            (3, "malformed_record")]
    sniffed = imp(sqlite_sf, gz(body), "upload.gz")  # gzip JSON Lines, format sniffed
    assert (sniffed.format, sniffed.duplicates) == ("jsonl", 3)


def test_import_records_canonical_keys(sqlite_sf: sessionmaker[Session]) -> None:
    records: list[Any] = [
        {"external_id": "R1", "received_at": "2023-03-01T08:00:00+08:00",
         "category": "fireworks", "region": 150100, "text": "x"},
        {"source": "other", "external_id": "R2", "received_at": "2023-03-01",
         "category": "Food safety", "region": "包头"},
        "not an object",
    ]
    summary = import_records(session_factory=sqlite_sf, kind="complaints", records=records,
                             source="api")
    assert (summary.received, summary.inserted, summary.rejected) == (3, 2, 1)
    assert summary.errors[0].problem == "malformed_record" and summary.errors[0].row == 3
    assert _complaint(sqlite_sf, "R2").source == "other"
    assert _complaint(sqlite_sf, "R1").source == "api"


# What COPY's text format gives a meaning to (separators, escapes, the null marker, the end
# marker) and multi-byte text: each value must come back exactly as it went in.
HOSTILE = ["a\tb", "a\nb", "a\r\nb", "a\rb", "back\\slash", "\\N", "\\\\N", "\\t", "\\.",
           "end\\", "a\\\tb", "東城區投訴：噪音", "烟花 🎆🧨 👨‍👩‍👧", "tab\tnew\nline\\N"]


def test_hostile_values_round_trip(sf: sessionmaker[Session]) -> None:
    """Values through the staging path of both backends (PostgreSQL: COPY rows written by
    psycopg) come back unchanged; a whole value ``\\N`` is text, a missing one is NULL."""
    records: list[Any] = [
        {"source": f"src{v}", "external_id": f"H{i}:{v}",
         "received_at": "2023-03-01T08:00:00+08:00", "category": "fireworks",
         "region": "150100", "text": v, "sector": f"<{v}>"}
        for i, v in enumerate(HOSTILE)]
    records.append({"source": "plain", "external_id": "\\N", "received_at": "2023-03-02",
                    "category": "fireworks", "region": "150100"})
    summary = import_records(session_factory=sf, kind="complaints", records=records)
    assert (summary.received, summary.inserted, summary.rejected) == (
        len(HOSTILE) + 1, len(HOSTILE) + 1, 0), summary.errors
    with sf() as s:
        got = {c.external_id: (c.source, c.text, c.sector) for c in s.scalars(select(Complaint))}
    expected: dict[str, tuple[str, str | None, str | None]] = {
        f"H{i}:{v}": (f"src{v}", v, f"<{v}>") for i, v in enumerate(HOSTILE)}
    expected["\\N"] = ("plain", None, None)
    assert got == expected
    assert str(_complaint(sf, "\\N").day) == "2023-03-02"


def test_a_nul_character_rejects_its_row_not_the_import(sf: sessionmaker[Session]) -> None:
    """PostgreSQL cannot store U+0000: such a row is rejected (naming the field), the others
    are imported, on both backends."""
    records: list[Any] = [
        {"source": "s", "external_id": f"N{i}", "received_at": "2023-03-01T08:00:00+08:00",
         "category": "fireworks", "region": "150100", "text": text}
        for i, text in enumerate(["fine", "bad\x00text", "also fine"])]
    summary = import_records(session_factory=sf, kind="complaints", records=records)
    assert (summary.received, summary.inserted, summary.rejected) == (3, 2, 1), summary.errors
    with sf() as s:
        assert sorted(s.scalars(select(Complaint.external_id))) == ["N0", "N2"]
        bad = s.scalars(select(RejectedRow)).one()
    assert (bad.row_number, bad.field, bad.problem) == (2, "text", "invalid_value")
    assert "NUL" in (bad.detail or "")


# ------------------------------------------------------------------ files that cannot be read


@pytest.mark.parametrize(
    ("data", "name", "error"),
    [
        (b"%PDF-1.4 binary", "report.pdf", UnsupportedMediaType),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old.xls", UnsupportedMediaType),
        (b"\x00\x01\x02\x03" * 100, None, UnsupportedMediaType),
        (b"", "empty.csv", UnprocessableContent),
        (b"PK\x03\x04garbage", "broken.xlsx", UnprocessableContent),
        (b"not gzip", "x.csv.gz", UnprocessableContent),
        (b'{"a": 1}', "obj.json", UnprocessableContent),
        ("时间,内容\n2023-01-01,x\n".encode(), "a.csv", UnprocessableContent),
    ],
)
def test_unreadable_files_fail_the_batch(sqlite_sf: sessionmaker[Session], data: bytes,
                                         name: str | None, error: type[Exception]) -> None:
    with pytest.raises(error):
        imp(sqlite_sf, data, name)
    with sqlite_sf() as s:
        batch = s.scalars(select(ImportBatch)).one()
    assert batch.status == "failed" and batch.error
    assert _count(sqlite_sf) == 0


def test_missing_columns_problem_names_them(sqlite_sf: sessionmaker[Session]) -> None:
    with pytest.raises(UnprocessableContent) as exc:
        imp(sqlite_sf, "工单编号,时间x,类\n1,2,3\n".encode())
    assert "received_at" in exc.value.detail and "时间x" in exc.value.detail
    assert exc.value.extensions["missing"] == ["received_at", "category", "region"]
    ok = imp(sqlite_sf, "工单编号,时间x,类,区\n1,2023-01-01,烟花,包头\n".encode(),
              mapping={"received_at": "时间x", "category": "类", "region": "区"})
    assert ok.inserted == 1


# ------------------------------------------------------------------ faults


def test_every_fault_kind(sf: sessionmaker[Session]) -> None:
    head = ["source", "external_id", "received_at", "category", "region", "channel", "text"]
    rows = [
        ["s", "ok1", "2023-01-05 10:00", "烟花爆竹", "呼市", "", "ok"],            # 1 accepted
        ["s", "f2", "", "烟花爆竹", "呼市", "", ""],                                # 2 missing
        ["s", "f3", "昨天下午", "烟花爆竹", "呼市", "", ""],                        # 3 unparseable
        ["s", "f4", "1960-01-01", "烟花爆竹", "呼市", "", ""],                      # 4 range
        ["s", "f5", "2099-01-01", "烟花爆竹", "呼市", "", ""],                      # 5 range
        ["s", "f6", "2023-01-05", "=cmd|' /C calc'!A0", "呼市", "", ""],            # 6 category
        ["s", "f7", "2023-01-05", "", "呼市", "", ""],                              # 7 missing
        ["s", "f8", "2023-01-05", "烟花爆竹", "北京", "", ""],                      # 8 region
        ["s", "f9", "2023-01-05", "烟花爆竹", "新城", "", ""],                      # 9 ambiguous
        ["s", "f10", "2023-01-05", "烟花爆竹", "(blank)", "", ""],                  # 10 missing
        ["s", "x" * 201, "2023-01-05", "烟花爆竹", "呼市", "", ""],                 # 11 too long
        ["s", "f12", "2023-01-05", "烟花爆竹", "呼市", "c" * 51, ""],               # 12 too long
        ["", "f13", "2023-01-05", "烟花爆竹", "呼市", "", ""],                      # 13 source
        ["s", "", "2023-01-05", "烟花爆竹", "呼市", "", ""],                        # 14 id
        ["s", "ok1", "2023-01-05 10:00", "烟花爆竹", "呼市", "", "again"],          # 15 dup
    ]
    data = csv_bytes(rows, head) + b"s,f16,2023-01-05,fireworks,150100,,,EXTRA\r\n"
    summary = imp(sf, data, source=None)
    got = {(e.row, e.field, e.problem) for e in summary.errors}
    assert got == {
        (2, "received_at", "missing_value"), (3, "received_at", "unparseable_timestamp"),
        (4, "received_at", "timestamp_out_of_range"),
        (5, "received_at", "timestamp_out_of_range"),
        (6, "category", "unknown_category"), (7, "category", "missing_value"),
        (8, "region", "unknown_region"), (9, "region", "unknown_region"),
        (10, "region", "missing_value"), (11, "external_id", "value_too_long"),
        (12, "channel", "value_too_long"), (13, "source", "missing_value"),
        (14, "external_id", "missing_value"), (16, None, "malformed_record"),
    }
    assert (summary.received, summary.inserted, summary.duplicates, summary.rejected) == (
        16, 1, 1, 14)
    assert "150102" in next(e.detail for e in summary.errors if e.row == 9)
    assert _count(sf, RejectedRow, batch_id=summary.batch_id) == 14
    with sf() as s:
        raw = s.scalar(select(RejectedRow.raw).where(RejectedRow.row_number == 6))
    assert raw is not None and raw["category"].startswith("=cmd")
    assert _complaint(sf, "ok1").text == "ok"  # the first occurrence wins


def test_enforcement_actions(sf: sessionmaker[Session]) -> None:
    head = ["执法编号", "检查时间", "违法类型", "旗县区", "执法行为", "是否违法", "企业编号",
            "行业"]
    rows = [["E1", "2023-02-01 09:00", "食品安全", "包头市", "责令整改", "是", "91150X", "餐饮"],
            ["E2", "2023-02-01", "燃气", "150100", "检查", "否", "", ""],
            ["E3", "2023-02-02", "燃气", "150100", "罚款", "1", "", ""],
            ["E4", "2023-02-02", "燃气", "150100", "飞行", "1", "", ""],
            ["E5", "2023-02-02", "燃气", "150100", "警告", "也许", "", ""],
            ["E6", "2023-02-02", "燃气", "150100", "", "1", "", ""]]
    summary = imp(sf, csv_bytes(rows, head), kind="enforcement", source="platform")
    assert (summary.inserted, summary.rejected) == (3, 3)
    assert {(e.row, e.field, e.problem) for e in summary.errors} == {
        (4, "action", "invalid_value"), (5, "violation_found", "invalid_value"),
        (6, "action", "missing_value")}
    with sf() as s:
        got = {r.external_id: (r.action, r.violation_found, r.entity_id, r.sector, str(r.day))
               for r in s.scalars(select(EnforcementAction))}
    assert got == {"E1": ("correction_order", True, "91150X", "餐饮", "2023-02-01"),
                   "E2": ("inspection", False, None, None, "2023-02-01"),
                   "E3": ("penalty", True, None, None, "2023-02-02")}


def test_register_new_values(sf: sessionmaker[Session]) -> None:
    head = ["source", "service_request_number", "created_date", "violation_nature", "ward"]
    rows = [["c", "1", "2013-05-01", "Garbage in alley", "35"],
            ["c", "2", "2013-05-02", "Garbage in alley", "4"],
            ["c", "3", "2013-05-02", "fireworks", "35"],
            ["c", "4", "2013-05-03", "(blank)", "35"]]
    refused = imp(sf, csv_bytes(rows, head))
    assert (refused.inserted, refused.rejected) == (0, 4)
    summary = imp(sf, csv_bytes(rows, head), register_new=True)
    assert (summary.inserted, summary.duplicates, summary.rejected) == (3, 0, 1)
    assert summary.errors[0].problem == "missing_value"
    assert summary.registered_categories == ["garbage_in_alley"]
    assert sorted(summary.registered_regions) == ["35", "4"]
    with sf() as s:
        cat = s.get(Category, "garbage_in_alley")
        reg = s.get(Region, "35")
        configured = s.get(Category, "fireworks")
    assert cat is not None and cat.registered_by_import and cat.name_zh == "Garbage in alley"
    assert reg is not None and reg.registered_by_import
    assert configured is not None and not configured.registered_by_import
    with pytest.raises(Conflict) as refused_again:  # the same bytes as a completed batch
        imp(sf, csv_bytes(rows, head), register_new=True)
    assert refused_again.value.extensions["existing_batch_id"] == summary.batch_id
    again = imp(sf, csv_bytes(rows, head), register_new=True, force=True)
    assert again.registered_categories == [] and again.duplicates == 3


# ------------------------------------------------------------------ personal data


def test_personal_data_never_stored(sf: sessionmaker[Session]) -> None:
    head = ["工单编号", "受理时间", "问题类别", "所属地区", "投诉内容", "投诉人姓名", "联系电话",
            "身份证号", "Email"]
    rows = [["P1", "2023-01-05", "烟花爆竹", "呼市",
             "我是王五，电话13912345678，身份证150602198805121235，邮箱wang@example.com",
             "王五", "13912345678", "150602198805121235", "wang@example.com"],
            ["P2", "2023-01-05", "没有这类", "呼市", "请回电0471-6912345", "赵六",
             "13800001111", "", ""]]
    summary = imp(sf, csv_bytes(rows, head))
    assert (summary.inserted, summary.rejected) == (1, 1)
    text = _complaint(sf, "P1").text
    assert text == "我是王五，电话[手机号]，身份证[身份证号]，邮箱[邮箱]"
    with sf() as s:
        raw = s.scalars(select(RejectedRow.raw)).one()
        stored = json.dumps([c.__dict__.get("text") for c in s.scalars(select(Complaint))]
                            + [raw], ensure_ascii=False)
    assert set(raw) == {"工单编号", "受理时间", "问题类别", "所属地区", "投诉内容"}
    assert raw["投诉内容"] == "请回电[电话]"
    for secret in ("13912345678", "150602198805121235", "wang@example.com", "6912345",
                   "13800001111", "赵六"):
        assert secret not in stored


# ------------------------------------------------------------------ idempotency


def test_reimport_inserts_nothing(sf: sessionmaker[Session]) -> None:
    data = csv_bytes(zh_rows(120))
    first = imp(sf, data, chunk_rows=50)  # a bulk load: the series index is rebuilt
    assert (first.received, first.inserted, first.duplicates, first.rejected) == (120, 120, 0, 0)
    assert _series_index_present(sf)
    assert gc.isenabled()
    with pytest.raises(Conflict) as exc:  # the same file again: refused, naming the batch
        imp(sf, data, chunk_rows=50, source="another")
    assert exc.value.extensions["existing_batch_id"] == first.batch_id
    assert first.batch_id in exc.value.detail and "--force" in exc.value.detail
    with sf() as s:
        refused = s.get(ImportBatch, exc.value.extensions["batch_id"])
        assert refused is not None and refused.status == "failed"
    second = imp(sf, data, chunk_rows=50, force=True)
    assert (second.received, second.inserted, second.duplicates) == (120, 0, 120)
    assert _count(sf) == 120
    assert get_batch(session=sf(), batch_id=second.batch_id).duplicates == 120


def test_bulk_load_keeps_the_first_of_repeated_ids(sf: sessionmaker[Session]) -> None:
    rows = zh_rows(120)
    rows[10][0], rows[10][6] = rows[3][0], "repeat in the same chunk"
    rows[70][0], rows[70][6] = rows[5][0], "repeat in a later chunk"
    rows[80][0], rows[90][0] = "GDX", "GDX"
    rows[90][6] = "repeat of a later row"
    summary = imp(sf, csv_bytes(rows), chunk_rows=50)  # a bulk load
    assert (summary.received, summary.inserted, summary.duplicates) == (120, 117, 3)
    assert _count(sf) == 117
    assert _complaint(sf, rows[3][0]).text == "第3号投诉：楼下有人燃放烟花。"
    assert _complaint(sf, rows[5][0]).text == "第5号投诉：楼下有人燃放烟花。"
    assert _complaint(sf, "GDX").text == "第80号投诉：楼下有人燃放烟花。"
    assert _series_index_present(sf)


def test_identical_rows_without_ids_stay_two(sf: sessionmaker[Session]) -> None:
    head = ["受理时间", "问题类别", "所属地区", "投诉内容"]
    rows = [["2023-01-05 10:00", "烟花爆竹", "呼市", "有人放炮"]] * 2 + [
        ["2023-01-05 10:00", "烟花爆竹", "呼市", "另一条"]]
    first = imp(sf, csv_bytes(rows, head), chunk_rows=1)
    assert (first.inserted, first.duplicates) == (3, 0)
    with sf() as s:
        ids = sorted(s.scalars(select(Complaint.external_id)))
    assert all(i.startswith("sha256:") for i in ids)
    assert sum(i.endswith("#2") for i in ids) == 1
    # the same records as JSON get the same keys: nothing new
    records = [dict(zip(head, r, strict=True)) for r in rows]
    again = import_records(session_factory=sf, kind="complaints", records=records,
                           source="test")
    assert (again.inserted, again.duplicates) == (0, 3)


def test_concurrent_importers_insert_each_record_once(sf: sessionmaker[Session]) -> None:
    data = csv_bytes(zh_rows(3000))
    results: list[BatchSummary] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait()
            # force: the file fingerprint would refuse whichever import checks second once
            # the first has published; this test is about the record keys under concurrency
            results.append(imp(sf, data, chunk_rows=500, force=True))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sum(r.inserted for r in results) == 3000
    assert sum(r.duplicates for r in results) == 3000
    assert _count(sf) == 3000


# ------------------------------------------------------------------ failures


def test_failure_midway_leaves_no_half_written_batch(sf: sessionmaker[Session],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    originals = {cls: cls.write for cls in (pipeline._SqliteStage, pipeline._PostgresStage)}

    def failing(cls: Any) -> Any:
        def write(self: Any, payload: Any, rejected: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("disk on fire")
            originals[cls](self, payload, rejected)
        return write

    for cls in originals:
        monkeypatch.setattr(cls, "write", failing(cls))
    rows = zh_rows(100)
    rows[5][2] = "没有这类"  # a rejected row in the first chunk
    with pytest.raises(RuntimeError, match="disk on fire"):
        imp(sf, csv_bytes(rows), chunk_rows=20)
    assert calls["n"] == 3
    with sf() as s:
        batch = s.scalars(select(ImportBatch)).one()
        assert batch.status == "failed" and "disk on fire" in (batch.error or "")
        assert batch.inserted == 0
    assert _count(sf) == 0
    assert _count(sf, RejectedRow) == 0
    assert _series_index_present(sf)  # dropped for the bulk load, restored by the rollback
    monkeypatch.undo()
    ok = imp(sf, csv_bytes(rows), chunk_rows=20)  # a failed batch does not block a retry
    assert (ok.inserted, ok.rejected) == (99, 1)


# ------------------------------------------------------------------ the sample dirty export


def test_dirty_sample_matches_expected(tmp_path: Path) -> None:
    csv_path = SAMPLES / "dirty_complaints.csv"
    expected_path = SAMPLES / "dirty_complaints.expected.json"
    from service.db import make_engine, make_sessionmaker
    from service.migrate import upgrade
    from service.store.reference import load_reference

    eng = make_engine(f"sqlite:///{tmp_path / 'dirty.db'}")
    upgrade(eng)
    sf = make_sessionmaker(eng)
    with sf() as s:
        load_reference(session=s, categories_file=SAMPLES / "categories.yaml",
                       regions_file=SAMPLES / "regions.yaml")
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    summary = imp(sf, csv_path, None, source="12345-hotline")
    assert summary.encoding == "gb18030"
    by_outcome = {k: [e for e in expected if e["outcome"] == k]
                  for k in ("accepted", "rejected", "duplicate")}
    assert summary.received == len(expected)
    assert summary.inserted == len(by_outcome["accepted"])
    assert summary.duplicates == len(by_outcome["duplicate"])
    assert {(e.row, e.field, e.problem) for e in summary.errors} == {
        (e["row"], e["field"], e["problem"]) for e in by_outcome["rejected"]}
    for e in by_outcome["accepted"]:
        want = e["expected"]
        row = _complaint(sf, want["external_id"])
        import datetime as dt

        got_at = row.received_at.replace(tzinfo=dt.UTC)
        assert got_at == dt.datetime.fromisoformat(want["received_at"]), e["row"]
        assert (row.category, row.region, row.channel) == (
            want["category"], want["region"], want.get("channel")), e["row"]
        if e["pii"]:
            assert row.text is not None and "[" in row.text
    with sf() as s:
        texts = " ".join(t or "" for t in s.scalars(select(Complaint.text)))
    for secret in ("13912340001", "150602198805121235", "wangfang1988", "0471 2233",
                   "150402197003150012"):
        assert secret not in texts
    eng.dispose()


def test_sample_files_import_cleanly_and_redacted(tmp_path: Path) -> None:
    files = [SAMPLES / n for n in ("complaints.csv.gz", "enforcement.csv.gz", "categories.yaml",
                                   "regions.yaml")]
    assert all(f.exists() for f in files), "data/samples is committed with the repository"
    import re

    from service.db import make_engine, make_sessionmaker
    from service.migrate import upgrade
    from service.store.reference import load_reference

    eng = make_engine(f"sqlite:///{tmp_path / 'samples.db'}")
    upgrade(eng)
    sf = make_sessionmaker(eng)
    with sf() as s:
        load_reference(session=s, categories_file=files[2], regions_file=files[3])
    complaints = imp(sf, files[0], None, source=None)
    enforcement = imp(sf, files[1], None, source=None, kind="enforcement")
    assert complaints.rejected == enforcement.rejected == 0
    assert complaints.inserted == complaints.received > 100_000
    assert enforcement.inserted == enforcement.received > 50_000
    with sf() as s:
        texts = [t for t in s.scalars(select(Complaint.text)) if t]
    redacted = sum("[手机号]" in t or "[身份证号]" in t or "[邮箱]" in t for t in texts)
    assert redacted > 0
    pii = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)|\d{17}[\dXx]|@")
    assert not [t for t in texts if pii.search(t)]
    eng.dispose()
