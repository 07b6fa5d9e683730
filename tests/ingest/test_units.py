"""Pure parts of ingestion: timestamps, redaction, header and value mapping, readers."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from service.errors import BadRequest, UnprocessableContent
from service.ingest.limits import TooLarge
from service.ingest.mapping import (
    KINDS,
    ReferenceIndex,
    code_for,
    load_mapping_file,
    map_actions,
    map_booleans,
    map_channels,
    map_values,
    parse_mapping_pairs,
    plan_columns,
)
from service.ingest.readers import iter_json_array
from service.ingest.redact import is_personal_header, redact_series, redact_text
from service.ingest.timestamps import parse_timestamps

SH = "Asia/Shanghai"


@pytest.mark.parametrize(
    ("raw", "local"),
    [
        ("2023-01-05T14:03:00+08:00", "2023-01-05 14:03:00"),
        ("2023-01-05T06:03:00Z", "2023-01-05 14:03:00"),
        ("2023-01-05T14:03:00", "2023-01-05 14:03:00"),
        ("2023-01-05 14:03:00", "2023-01-05 14:03:00"),
        ("2023-01-05 14:03", "2023-01-05 14:03:00"),
        ("2023/1/5 14:03", "2023-01-05 14:03:00"),
        ("2023/01/05", "2023-01-05 00:00:00"),
        ("2023.1.5", "2023-01-05 00:00:00"),
        ("2023-01-05", "2023-01-05 00:00:00"),
        ("20230105", "2023-01-05 00:00:00"),
        ("2023年1月5日 14时03分", "2023-01-05 14:03:00"),
        ("2023年1月5日 14:03", "2023-01-05 14:03:00"),
        ("2023年1月5日", "2023-01-05 00:00:00"),
        ("2023年1月5日下午2点3分", "2023-01-05 14:03:00"),
        ("2023年1月5日 上午9时", "2023-01-05 09:00:00"),
        ("45123.58", "2023-07-16 13:55:12"),
        ("44935.4375", "2023-01-09 10:30:00"),
        ("01/05/2023 02:03:00 PM", "2023-01-05 14:03:00"),
        (" 2023-01-05 14:03 ", "2023-01-05 14:03:00"),
    ],
)
def test_timestamp_forms(raw: str, local: str) -> None:
    out = parse_timestamps(pd.Series([raw], dtype="str"), SH)
    assert str(out.dtype) == "datetime64[us, UTC]"
    assert out.iloc[0].tz_convert(SH).tz_localize(None) == pd.Timestamp(local)


@pytest.mark.parametrize("raw", ["昨天下午", "2023年2月30日 10时00分", "2023-13-45 25:61",
                                 "待补录", "2023", "2023-01", "abc", "12"])
def test_unparseable_timestamps_are_nat(raw: str) -> None:
    assert parse_timestamps(pd.Series([raw], dtype="str"), SH).isna().all()


def test_timestamps_mixed_zones_and_missing_in_one_column() -> None:
    raw = pd.Series(["2023-01-05T14:03:00+08:00", "2023-01-05 14:03:00", None,
                     "2023-01-05T06:03:00Z", "2023/1/5 14:03", "45123.58"], dtype="str")
    out = parse_timestamps(raw, SH)
    assert out.isna().tolist() == [False, False, True, False, False, False]
    assert out.iloc[0] == out.iloc[1] == out.iloc[3] == out.iloc[4]
    assert out.iloc[0] == pd.Timestamp("2023-01-05 06:03:00", tz="UTC")


def test_timestamp_zone_of_naive_values() -> None:
    out = parse_timestamps(pd.Series(["2023-01-05 14:03"], dtype="str"), "America/Chicago")
    assert out.iloc[0] == pd.Timestamp("2023-01-05 20:03", tz="UTC")


@pytest.mark.parametrize(
    ("text", "token", "secret"),
    [
        ("请联系13812345678谢谢", "[手机号]", "13812345678"),
        ("电话 +86 138-1234-5678", "[手机号]", "1234-5678"),
        ("电话+8613812345678。", "电话[手机号]。", "86"),
        ("电话008613812345678", "电话[手机号]", "0086"),
        ("我电话是 186 0471 2233。", "[手机号]", "0471 2233"),
        ("座机0471-6912345", "[电话]", "6912345"),
        ("（0471）6912345", "[电话]", "6912345"),
        ("身份证15010219900101123X，", "[身份证号]", "15010219900101123X"),
        ("身份证号150602198805121235", "[身份证号]", "150602198805121235"),
        ("请发邮箱wangfang1988@example.com。", "[邮箱]", "wangfang1988@example.com"),
    ],
)
def test_redaction(text: str, token: str, secret: str) -> None:
    out = redact_text(text)
    assert token in out
    assert secret not in out
    assert not re.search(r"\d\[", out)  # no digit left right before a token
    assert redact_series(pd.Series([text, None], dtype="str")).iloc[0] == out


@pytest.mark.parametrize("text", ["2023年1月5日拖欠工资12000元", "订单号2023012345678901234",
                                  "没有个人信息", "工单12345678901"])
def test_redaction_leaves_other_numbers(text: str) -> None:
    assert redact_text(text) == text


def test_redact_series_keeps_missing_and_untouched_rows() -> None:
    s = pd.Series(["a", None, "x 13912345678", "2023年"], dtype="str")
    out = redact_series(s)
    assert out.iloc[0] == "a" and pd.isna(out.iloc[1]) and out.iloc[3] == "2023年"
    assert out.iloc[2] == "x [手机号]"


@pytest.mark.parametrize("header", ["姓名", "投诉人", "投诉人姓名", "联系人", "联系电话", "手机",
                                    "电话", "身份证号", "Name", "phone", "Contact", "E-mail",
                                    "id_number", " 手机号码 "])
def test_personal_headers(header: str) -> None:
    assert is_personal_header(header)


@pytest.mark.parametrize("header", ["投诉内容", "受理时间", "region", "text"])
def test_not_personal_headers(header: str) -> None:
    assert not is_personal_header(header)


def test_header_aliases_chinese_and_english() -> None:
    spec = KINDS["complaints"]
    plan = plan_columns(["工单编号", "受理时间", "问题类别", "所属地区", "行业", "受理渠道",
                         "投诉内容", "投诉人", "联系电话"], spec, have_source=True)
    assert plan.rename == {"工单编号": "external_id", "受理时间": "received_at",
                           "问题类别": "category", "所属地区": "region", "行业": "sector",
                           "受理渠道": "channel", "投诉内容": "text"}
    assert plan.personal == ["投诉人", "联系电话"]
    plan = plan_columns(["Received At", "CATEGORY", " region ", "Source"], spec)
    assert set(plan.rename.values()) == {"received_at", "category", "region", "source"}
    enf = plan_columns(["检查时间", "违法类型", "旗县区", "执法行为", "是否违法", "企业编号"],
                       KINDS["enforcement"], have_source=True)
    assert set(enf.rename.values()) == {"occurred_at", "category", "region", "action",
                                        "violation_found", "entity_id"}


def test_user_mapping_wins_and_errors_name_columns() -> None:
    spec = KINDS["complaints"]
    plan = plan_columns(["受理时间", "登记日期", "问题类别", "地区"], spec,
                        user_mapping={"received_at": "登记日期"}, have_source=True)
    assert plan.rename["登记日期"] == "received_at"
    assert "受理时间" not in plan.rename
    with pytest.raises(UnprocessableContent) as exc:
        plan_columns(["时间x", "问题类别"], spec, have_source=True)
    assert "received_at" in exc.value.detail and "region" in exc.value.detail
    assert "时间x" in exc.value.detail  # the headers found are listed
    with pytest.raises(UnprocessableContent, match="no column 'nope'"):
        plan_columns(["受理时间"], spec, user_mapping={"category": "nope"}, have_source=True)
    with pytest.raises(BadRequest, match="unknown field"):
        plan_columns(["受理时间"], spec, user_mapping={"colour": "x"})
    with pytest.raises(UnprocessableContent, match="source"):
        plan_columns(["受理时间", "问题类别", "地区"], spec, have_source=False)


def test_mapping_pairs_and_files(tmp_path: Path) -> None:
    assert parse_mapping_pairs(["received_at=登记 时间", "category = 类"]) == {
        "received_at": "登记 时间", "category": "类"}
    with pytest.raises(BadRequest):
        parse_mapping_pairs(["received_at"])
    y = tmp_path / "m.yaml"
    y.write_text("received_at: 受理日期\nregion: 区\n", encoding="utf-8")
    assert load_mapping_file(y) == {"received_at": "受理日期", "region": "区"}
    j = tmp_path / "m.json"
    j.write_text(json.dumps({"mapping": {"category": "类别"}}), encoding="utf-8")
    assert load_mapping_file(j) == {"category": "类别"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(BadRequest):
        load_mapping_file(bad)


def test_code_for_new_values() -> None:
    assert code_for("35") == "35"
    assert code_for("Garbage in alley") == "garbage_in_alley"
    assert code_for("Construction Site Cleanliness/Fence") == "construction_site_cleanliness_fence"
    assert code_for("烟花爆竹") == "烟花爆竹"
    long = code_for("x" * 100 + " y")
    assert len(long) <= 64 and long != code_for("x" * 100 + " z")


def test_value_mapping_codes_names_aliases_and_ambiguity() -> None:
    index = ReferenceIndex(
        [("150100", "呼和浩特市", "Hohhot", ["呼市"]), ("150102", "新城区", None, ["新城"]),
         ("150402", "红山区", None, ["新城"])], strip_suffixes=True)
    raw = pd.Series(["150100", " hohhot ", "呼市", "呼和浩特", "新城", "北京", None, "(blank)"],
                    dtype="str")
    codes, prob, new = map_values(raw, index)
    assert codes.tolist()[:4] == ["150100"] * 4
    assert prob.tolist()[4].startswith("ambiguous:")
    assert prob.tolist()[5:] == ["unknown", "missing", "missing"]
    assert new == {}
    codes, prob, new = map_values(pd.Series(["北京", "北京 "], dtype="str"), index,
                                  register_new=True)
    assert codes.tolist() == ["北京", "北京"] and new == {"北京": "北京"}


def test_actions_booleans_channels() -> None:
    acts, prob = map_actions(pd.Series(["检查", "巡查", "警告", "责令整改", "罚款", "行政处罚",
                                        "Penalty", "correction_order", "约谈", "飞行", None],
                                       dtype="str"))
    assert acts.tolist()[:9] == ["inspection", "inspection", "warning", "correction_order",
                                 "penalty", "penalty", "penalty", "correction_order", "other"]
    assert prob.tolist()[9:] == ["invalid", "missing"]
    vals, prob = map_booleans(pd.Series(["true", "False", "1", "0", "yes", "NO", "是", "否",
                                         "maybe"], dtype="str"))
    assert vals.tolist()[:8] == [True, False, True, False, True, False, True, False]
    assert prob.tolist()[8] == "invalid"
    ch = map_channels(pd.Series(["电话", "微信", "APP", "网站", "窗口x", None], dtype=object))
    assert ch.tolist() == ["phone", "wechat", "app", "web", "窗口x", None]


def test_json_array_streaming_small_blocks() -> None:
    records = [{"a": i, "t": "x" * (i % 7), "n": 1.5} for i in range(200)]
    text = io.StringIO(json.dumps(records, ensure_ascii=False, indent=1))
    assert list(iter_json_array(text, block=16)) == records
    assert list(iter_json_array(io.StringIO("[]"), block=4)) == []
    with pytest.raises(UnprocessableContent):
        list(iter_json_array(io.StringIO('[{"a": 1}, {"a": '), block=4))
    with pytest.raises(UnprocessableContent):
        list(iter_json_array(io.StringIO('{"a": 1}'), block=4))
    with pytest.raises(UnprocessableContent, match="not valid JSON"):
        list(iter_json_array(io.StringIO('[{"a": 1},, {"a": 2}]'), block=4))


def test_json_array_refuses_a_record_over_the_limit_while_reading_it() -> None:
    small = [{"t": "短" * 50} for _ in range(100)]  # each record well under the limit
    text = json.dumps(small, ensure_ascii=False)
    assert list(iter_json_array(io.StringIO(text), max_chars=4096)) == small
    huge = json.dumps(small[:3] + [{"t": "x" * 50_000}] + small[:3], ensure_ascii=False)
    seen: list[Any] = []
    with pytest.raises(TooLarge, match="max_line_bytes"):
        for value in iter_json_array(io.StringIO(huge), max_chars=4096):
            seen.append(value)  # noqa: PERF402 (the items before the refusal)
    assert seen == small[:3]  # refused at the long record, not after it


def test_ids_are_stripped_and_null_tokens_dropped() -> None:
    from service.ingest.pipeline import _longer_than_each, _strip_nulls

    raw = pd.Series([" GD1 ", "GD2", None, "  ", "NULL", " n/a ", "x" * 5], dtype="str")
    out = _strip_nulls(raw)
    assert out.tolist() == ["GD1", "GD2", None, None, None, None, "x" * 5]
    assert out.dtype == object and out.index.equals(raw.index)
    assert _longer_than_each(out, 4).tolist() == [False] * 6 + [True]
