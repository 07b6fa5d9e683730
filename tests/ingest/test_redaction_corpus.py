"""Redaction corpus: how people actually write phone and ID numbers, and what must survive.

Each ``MUST_REDACT`` case is ``(text, secret, token)``: after redaction the secret's digits
must be gone (compared digit for digit after NFKC, so a secret cannot survive by being
re-spaced) and the token must be there. Each ``MUST_SURVIVE`` text holds numbers that are not
personal (dates, case numbers, amounts, order numbers, service numbers) and must come back
unchanged.
"""

from __future__ import annotations

import re
import unicodedata

import pandas as pd
import pytest

from service.ingest.redact import (
    EMAIL_TOKEN,
    ID_TOKEN,
    LANDLINE_TOKEN,
    MOBILE_TOKEN,
    is_id_number,
    redact_series,
    redact_text,
)

M, L, ID, E = MOBILE_TOKEN, LANDLINE_TOKEN, ID_TOKEN, EMAIL_TOKEN

MUST_REDACT: list[tuple[str, str, str]] = [
    # mobile numbers
    ("请联系13812345678谢谢", "13812345678", M),
    ("电话：139 1234 5678，晚上打", "139 1234 5678", M),
    ("电话 139-1234-5678", "139-1234-5678", M),
    ("手机139.1234.0011有人接", "139.1234.0011", M),
    ("(139)1234-0014 请回电", "(139)1234-0014", M),
    ("（139）1234-0015 请回电", "（139）1234-0015", M),
    ("号码是1 3 9 1 2 3 4 0 0 0 5", "1 3 9 1 2 3 4 0 0 0 5", M),
    ("全角：１３９１２３４０００４", "１３９１２３４０００４", M),
    ("全角带空格 １３９ １２３４ ０００６", "１３９ １２３４ ０００６", M),
    ("全角横线１３９－１２３４－０００７", "１３９－１２３４－０００７", M),
    ("+86 138-1234-5678 是我的", "138-1234-5678", M),
    ("电话+8613812345678。", "8613812345678", M),
    ("电话008613812345678", "008613812345678", M),
    ("86-13812345679找王先生", "13812345679", M),
    ("我电话是 186 0471 2233。", "186 0471 2233", M),
    ("联系方式:15047112345/13904711234", "15047112345", M),
    ("联系方式:15047112345/13904711234", "13904711234", M),
    ("手机号码（微信同号）17704712345", "17704712345", M),
    ("call me at +86 177 0471 2346 please", "177 0471 2346", M),
    ("电话18647123456转人工", "18647123456", M),
    ("反映人电话：1３８１２３４５６７８", "1３８１２３４５６７８", M),
    ("tel:13512345678;", "13512345678", M),
    ("手机 135 1234 5679 （白天）", "135 1234 5679", M),
    ("138 1234 5670，138 1234 5671 两个都行", "138 1234 5671", M),
    # fixed lines
    ("座机0471-6912345", "0471-6912345", L),
    ("（0471）6912345", "6912345", L),
    ("(0471) 691 2346 办公室", "691 2346", L),
    ("请回电0471 6912347转8001", "0471 6912347", L),
    ("北京的电话010-12345678", "010-12345678", L),
    ("电话01087654321", "01087654321", L),
    ("全角座机０４７１－６９１２３４８", "０４７１－６９１２３４８", L),
    ("电话：0472—5123456", "0472—5123456", L),
    ("+86 471 6912349", "471 6912349", L),
    # ID numbers
    ("身份证150602198805121235", "150602198805121235", ID),
    ("身份证号：110101199003070011，", "110101199003070011", ID),
    ("证件号码150102199001011230请核实", "150102199001011230", ID),
    ("身份证 110101 19900307 0011", "110101 19900307 0011", ID),
    ("身份证号110101 19900307 0013（写错一位）", "110101 19900307 0013", ID),
    ("身份证 440306-19851231-0022", "440306-19851231-0022", ID),
    ("他的身份证是32010219770815421x", "32010219770815421x", ID),
    ("老身份证150102900101123", "150102900101123", ID),
    ("旧证号 150102 900101 124", "150102 900101 124", ID),
    ("全角身份证１５０６０２１９８８０５１２１２３５", "１５０６０２１９８８０５１２１２３５", ID),
    ("身份证号15010219900101123X", "15010219900101123X", ID),
    ("510107199202294563是我的身份证", "510107199202294563", ID),
    # e-mail addresses
    ("请发邮箱wangfang1988@example.com。", "wangfang1988@example.com", E),
    ("邮件 zhang.san+tousu@mail.example.cn 谢谢", "zhang.san+tousu@mail.example.cn", E),
    ("全角邮箱ｌｉｓｉ＠ｅｘａｍｐｌｅ．ｃｏｍ", "ｌｉｓｉ＠ｅｘａｍｐｌｅ．ｃｏｍ", E),
]

MUST_SURVIVE: list[str] = [
    "2023年1月5日拖欠工资12000元",
    "2023-01-05 14:03:00 来电",
    "20230105 至 20230131 期间",
    "2023.01.05 下午三点",
    "2019-2023年连续多年",
    "订单号2023012345678901234",
    "工单12345678901",
    "工单号GD2023010500017",
    "案号(2023)内0102民初1234号",
    "呼市监罚〔2023〕123号行政处罚决定书",
    "罚款1,234,567.89元",
    "共计罚没款 50000.00 元",
    "金额¥13,912,340.00",
    "统一社会信用代码91150100MA0N1234X5",
    "快递单号 SF1234567890123",
    "订单号 202301051234567890 未发货",
    "客服热线400-800-1234",
    "银行客服95588",
    "邮编010010",
    "14:03:00 到 16:30:00",
    "第3栋2单元1201室",
    "面积120.5平方米，单价8800元",
    "车牌蒙A12345",
    "批号 20230105-001",
]


def _digits(text: str) -> str:
    return re.sub(r"\D", "", unicodedata.normalize("NFKC", text))


def test_the_corpus_is_large_enough() -> None:
    assert len(MUST_REDACT) >= 40 and len(MUST_SURVIVE) >= 20


@pytest.mark.parametrize(("text", "secret", "token"), MUST_REDACT)
def test_written_forms_are_redacted(text: str, secret: str, token: str) -> None:
    out = redact_text(text)
    assert token in out, out
    if token == EMAIL_TOKEN:
        assert unicodedata.normalize("NFKC", secret) not in unicodedata.normalize("NFKC", out)
    else:
        assert _digits(secret) not in _digits(out), out
    assert redact_series(pd.Series([text, None], dtype="str")).iloc[0] == out


@pytest.mark.parametrize("text", MUST_SURVIVE)
def test_look_alikes_survive(text: str) -> None:
    assert redact_text(text) == text
    assert redact_series(pd.Series([text], dtype="str")).iloc[0] == text


def test_text_outside_the_numbers_is_kept_as_written() -> None:
    text = "（夜间）１３９１２３４０００４，请回电！"
    assert redact_text(text) == f"（夜间）{MOBILE_TOKEN}，请回电！"


def test_id_number_checks() -> None:
    assert is_id_number("110101199003070011")
    assert not is_id_number("110101199003070013")  # wrong checksum
    assert is_id_number("110101199003070013", lenient_checksum=True)
    assert not is_id_number("990101199003070011", lenient_checksum=True)  # no province 99
    assert not is_id_number("110101199013070011", lenient_checksum=True)  # month 13
    assert is_id_number("150102900101123") and not is_id_number("150102901301123")


def test_series_with_many_rows_only_searches_candidates() -> None:
    texts = ["没有数字"] * 1000 + ["电话 139 1234 5678"] + [None] * 10
    out = redact_series(pd.Series(texts, dtype="str"))
    assert out.iloc[1000] == f"电话 {MOBILE_TOKEN}"
    assert out.iloc[:1000].eq("没有数字").all() and out.iloc[1001:].isna().all()
