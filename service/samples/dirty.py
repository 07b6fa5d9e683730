"""A small, deliberately messy complaints export (GB18030, Chinese headers) and its answer key.

Every data row carries at most one fault, so an ingestion test can check each outcome:
``accepted`` (possibly after normalising a date form, a name or an alias), ``rejected`` (one
``field`` and a ``problem`` kind) or ``duplicate`` (an exact repeat of an earlier row).
Personal data in the rows is fake (random digits, reserved example.com e-mail domains). The
rows are a table, ``dirty_rows.yaml``; this module lays them out as the export and derives the
answer key.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import yaml

__all__ = ["HEADER", "COLUMN_MAP", "dirty_complaints"]

HEADER = ["工单编号", "受理时间", "问题类别", "所属地区", "行业", "受理渠道", "投诉内容",
          "投诉人姓名", "联系电话"]
# Chinese header -> canonical field (None: personal data, to be dropped, never stored).
COLUMN_MAP: dict[str, str | None] = {
    "工单编号": "external_id", "受理时间": "received_at", "问题类别": "category",
    "所属地区": "region", "行业": "sector", "受理渠道": "channel", "投诉内容": "text",
    "投诉人姓名": None, "联系电话": None,
}
_CHANNELS = {"电话": "phone", "网站": "web", "APP": "app", "微信": "wechat", "": None}


@dataclass
class _Row:
    ext: str
    ts: str
    cat: str
    region: str
    sector: str
    channel: str
    text: str
    name: str = "张先生"
    phone: str = "13800000000"
    outcome: str = "accepted"
    field_: str | None = None
    problem: str | None = None
    # canonical values an ingestion must produce for accepted rows
    when: str | None = None
    cat_code: str | None = None
    region_code: str | None = None
    pii: list[str] = field(default_factory=list)


def _excel(serial: float) -> str:
    """ISO local time of an Excel serial date (1900 system), rounded to the second."""
    moment = datetime(1899, 12, 30) + timedelta(days=serial)
    moment = (moment + timedelta(microseconds=500_000)).replace(microsecond=0)
    return moment.strftime("%Y-%m-%dT%H:%M:%S+08:00")


#: The rows (clean, refused, the extra clean ones), the personal data in their texts and the
#: named complainants: a table, in ``dirty_rows.yaml`` next to this module.
_TABLE = Path(__file__).with_name("dirty_rows.yaml")


def _when(ts: str) -> str:
    """The canonical ``received_at`` of a clean row's timestamp as exported."""
    if ts.replace(".", "").isdigit():
        return _excel(float(ts))
    return ts if "T" in ts else _normalise(ts)


def _rows() -> list[_Row]:
    table = yaml.safe_load(_TABLE.read_text(encoding="utf-8"))
    contacts: dict[str, list[str]] = table["contacts"]
    pii: dict[str, list[str]] = table["pii"]

    def accepted(ext: str, ts: str, cat: str, region: str, sector: str, channel: str, text: str,
                 code: str, rcode: str) -> _Row:
        name, phone = contacts.get(ext, ("张先生", "13800000000"))
        return _Row(ext, ts, cat, region, sector, channel, text, name=name, phone=phone,
                    when=_when(ts), cat_code=code, region_code=rcode, pii=pii.get(ext, []))

    r = [accepted(*row) for row in table["accepted"]]
    r += [_Row(ext, ts, cat, region, sector, channel, text, outcome="rejected", field_=field_,
               problem=problem)
          for ext, ts, cat, region, sector, channel, text, field_, problem in table["rejected"]]
    extra_rows = [accepted(*row) for row in table["extra"]]
    # interleave: every third row an extra clean one
    merged: list[_Row] = []
    it = iter(extra_rows)
    for i, row in enumerate(r):
        merged.append(row)
        if i % 2 == 1:
            nxt = next(it, None)
            if nxt is not None:
                merged.append(nxt)
    merged.extend(it)
    names = ("张先生", "李女士", "王先生", "刘女士", "匿名", "赵先生", "陈女士", "")
    for i, row in enumerate(merged):
        if row.name == "张先生" and row.phone == "13800000000":
            row.name = names[i % len(names)]
            row.phone = "" if not row.name else f"1{(3 + i % 6)}{(i * 7919 + 4711) % 10**9:09d}"
    # ---- exact duplicates of earlier rows ----
    for idx, pos in ((0, 9), (3, 20), (16, 33), (9, 40)):
        dup = r[idx]
        copy = _Row(dup.ext, dup.ts, dup.cat, dup.region, dup.sector, dup.channel, dup.text,
                    name=dup.name, phone=dup.phone, outcome="duplicate", field_=None,
                    problem="duplicate_row")
        merged.insert(pos, copy)
    # make sure a duplicate never precedes its original
    seen: set[tuple[str, ...]] = set()
    for row in merged:
        key = (row.ext, row.ts, row.cat, row.region, row.sector, row.channel, row.text)
        if row.outcome == "duplicate" and key not in seen:
            raise AssertionError(f"duplicate before original: {row.ext}")
        seen.add(key)
    return merged


def _normalise(ts: str) -> str:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y年%m月%d日 %H时%M分"):
        try:
            return datetime.strptime(ts, fmt).strftime("%Y-%m-%dT%H:%M:%S+08:00")
        except ValueError:
            continue
    raise ValueError(ts)


def dirty_complaints() -> tuple[bytes, list[dict[str, object]]]:
    """The messy export (GB18030 bytes, CRLF) and one expectation per data row.

    Returns
    -------
    (csv_bytes, expected) where ``expected[i]`` describes data row ``i + 1`` (header excluded):
    ``row``, ``outcome`` (accepted/rejected/duplicate), ``field`` (canonical field name or
    None), ``problem`` (``unparseable_timestamp``, ``unknown_category``, ``unknown_region``,
    ``missing_value``, ``duplicate_row`` or None), for accepted rows ``expected`` (canonical
    ``external_id``, ``received_at``, ``category``, ``region``, ``channel``) and ``pii`` (kinds
    of personal data in the free text: phone, id_number, email).
    """
    rows = _rows()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(HEADER)
    expected: list[dict[str, object]] = []
    for n, row in enumerate(rows, start=1):
        writer.writerow([row.ext, row.ts, row.cat, row.region, row.sector, row.channel, row.text,
                         row.name, row.phone])
        item: dict[str, object] = {"row": n, "outcome": row.outcome, "field": row.field_,
                                   "problem": row.problem}
        if row.outcome == "accepted":
            item["expected"] = {"external_id": row.ext, "received_at": row.when,
                                "category": row.cat_code, "region": row.region_code,
                                "channel": _CHANNELS[row.channel]}
        item["pii"] = row.pii
        expected.append(item)
    return buf.getvalue().encode("gb18030"), expected
