"""Personal data (China PIPL): personal columns are dropped, identifiers in free text redacted.

Two rules, applied before anything is stored:

- a column whose header names a person's name, phone, ID number, e-mail or address
  (:data:`PERSONAL_HEADERS`) is dropped as soon as a chunk is read; it never reaches the
  database, not even in ``rejected_rows.raw``;
- phone numbers, resident ID numbers and e-mail addresses inside free text are replaced by
  ``[手机号]`` (mobile), ``[电话]`` (fixed line), ``[身份证号]`` and ``[邮箱]``.

How a text is searched:

1. It is normalised (Unicode NFKC) for matching, so full-width digits and punctuation
   (``１３９１２３４０００４``, ``＠``, ``－``) match like ASCII. Replacements are applied to the
   original text, which is otherwise stored as written.
2. E-mail addresses (a regular expression).
3. ID numbers: 18 characters (17 digits + digit/``X``) or the old 15 digits, also written in
   groups (``110101 19900307 0013``, ``110101-19900307-0013``). A candidate counts when its
   province code and birth date are real and, for 18 characters, its ISO 7064 MOD 11-2
   checksum is right -- or, with a wrong checksum, when it is written in the ID's own 6-8-4
   grouping or right after 身份证 / 证件号 (a mistyped ID number is still one). Look-alikes
   (order numbers, timestamps) fail these checks and stay.
4. An 11-digit mobile number written in one piece (``13912345678``, ``+8613912345678``): by far
   the most common form, found by one expression without further cost.
5. Every other phone number -- spaced, dotted, dashed, parenthesised, landlines with an area
   code, ``+86`` forms -- is found by Google's libphonenumber matcher (the ``phonenumbers``
   package, ``PhoneNumberMatcher`` for region CN, leniency VALID), which only runs on texts
   that still hold a run of at least 7 digits joined by phone punctuation. Mobile numbers
   become ``[手机号]``, fixed lines ``[电话]``; service numbers (400/800, 955xx) are not
   personal and stay.

Redaction is vectorised per column: a numpy pre-filter over the whole column selects the texts
holding at least 7 digits (ASCII or full-width) or an ``@``; only those are searched.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher, PhoneNumberType

__all__ = [
    "PERSONAL_HEADERS",
    "ID_TOKEN",
    "MOBILE_TOKEN",
    "LANDLINE_TOKEN",
    "EMAIL_TOKEN",
    "is_personal_header",
    "is_id_number",
    "redact_text",
    "redact_series",
]

ID_TOKEN = "[身份证号]"
MOBILE_TOKEN = "[手机号]"
LANDLINE_TOKEN = "[电话]"
EMAIL_TOKEN = "[邮箱]"

# Normalised (see ``_norm``) header names of columns that hold personal data.
PERSONAL_HEADERS: frozenset[str] = frozenset(
    {
        # Chinese
        "姓名", "投诉人", "投诉人姓名", "举报人", "举报人姓名", "来电人", "来电人姓名", "反映人",
        "诉求人", "诉求人姓名", "当事人姓名", "联系人", "联系人姓名", "联系电话", "联系方式",
        "手机", "手机号", "手机号码", "电话", "电话号码", "来电号码", "固定电话", "身份证",
        "身份证号", "身份证号码", "证件号", "证件号码", "邮箱", "电子邮箱", "电子邮件", "住址",
        "家庭住址", "联系地址", "投诉人电话", "投诉人手机", "投诉人地址", "投诉人身份证号",
        # English
        "name", "fullname", "firstname", "lastname", "complainant", "complainantname",
        "caller", "callername", "reporter", "reportername", "contact", "contactname",
        "contactphone", "phone", "phonenumber", "telephone", "tel", "mobile", "mobilephone",
        "cellphone", "idnumber", "idno", "idcard", "idcardnumber", "nationalid", "ssn",
        "email", "emailaddress", "mail", "address", "homeaddress",
    }
)

_HEADER_STRIP = re.compile(r"[\s_\-.*:：()（）]+")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# 18 (6-8-3+check) or 15 (6-6-3) characters, optionally in the ID's own groups
_SEP = r"[ \-.]"
_ID = re.compile(
    rf"(?<![0-9A-Za-z])(\d{{6}})({_SEP}?)(\d{{8}})({_SEP}?)(\d{{3}}[0-9Xx])(?![0-9A-Za-z])"
    rf"|(?<![0-9A-Za-z])(\d{{6}})({_SEP}?)(\d{{6}})({_SEP}?)(\d{{3}})(?![0-9A-Za-z])"
)
_ID_KEYWORD = re.compile(r"(?:身份证|证件|身份号|公民身份)[号码]{0,2}[是为:：\s]*$")
# an 11-digit mobile number in one piece, optionally after +86 / 0086 / 86
_MOBILE = re.compile(r"(?:(?:\+|00)?86[- ]?)?1[3-9]\d{9}(?!\d)")
_MOBILE_LEFT = frozenset("0123456789+")  # a match right after one of these is not a number
_MOBILE_ALONE = re.compile(r"(?<![\d+])(?:(?:\+|00)?86[- ]?)?1[3-9]\d{9}(?!\d)")
# a run of >= 7 digits joined by what people put between the groups of a phone number
_PHONE_RUN = re.compile(r"\d(?:[\s\-.()/~\u2010-\u2015\u2212\u30fc]{0,3}\d){6,}")
_MASK = "\u2588"  # replaces found spans before the phone matcher runs (not phone punctuation)
# dates and times are no phone numbers: masked before looking for a run of digits
_DATE_TIME = re.compile(r"(?<!\d)(?:19|20)\d\d([-/.])\d{1,2}\1\d{1,2}(?!\d)|"
                        r"(?<!\d)\d{1,2}:\d\d(?::\d\d(?:[.,]\d+)?)?(?!\d)")
_PROVINCES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82", "83", "91"})
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_NOT_PERSONAL = frozenset({PhoneNumberType.TOLL_FREE, PhoneNumberType.PREMIUM_RATE,
                           PhoneNumberType.SHARED_COST, PhoneNumberType.UAN,
                           PhoneNumberType.VOICEMAIL})


def _norm(header: str) -> str:
    return _HEADER_STRIP.sub("", unicodedata.normalize("NFKC", str(header))).casefold()


def is_personal_header(header: str) -> bool:
    """Whether a column named ``header`` holds personal data and must be dropped."""
    return _norm(header) in PERSONAL_HEADERS


def _birth_date_ok(text: str) -> bool:
    try:
        born = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return False
    return dt.date(1900, 1, 1) <= born <= dt.date.today()


def is_id_number(value: str, *, lenient_checksum: bool = False) -> bool:
    """Whether ``value`` (15 digits, or 17 digits + digit/X, no separators) is a plausible
    resident ID number: real province code and birth date, and -- for 18 characters -- a right
    MOD 11-2 checksum (``lenient_checksum`` accepts a wrong one)."""
    if value[:2] not in _PROVINCES:
        return False
    if len(value) == 15 and value.isdigit():
        return _birth_date_ok("19" + value[6:12])
    if len(value) != 18 or not value[:17].isdigit():
        return False
    if not _birth_date_ok(value[6:14]):
        return False
    check = _CHECK[sum(int(d) * w for d, w in zip(value[:17], _WEIGHTS, strict=True)) % 11]
    return lenient_checksum or value[17].upper() == check


@functools.cache
def _width_table() -> tuple[dict[int, str], re.Pattern[str], re.Pattern[str]]:
    """``str.translate`` table of the BMP characters whose NFKC form is one character; a
    pattern of those whose NFKC form is longer (texts holding one take the exact, slower
    path); and a pattern of those whose NFKC form is something matching looks at (digits,
    letters, ``@``, phone punctuation, spaces): a text without any of these matches the same
    with or without normalising."""
    table: dict[int, str] = {}
    longer: list[str] = []
    relevant: list[str] = []
    for cp in range(0x80, 0x10000):
        if 0xD800 <= cp < 0xE000:
            continue
        ch = chr(cp)
        n = unicodedata.normalize("NFKC", ch)
        if n == ch:
            continue
        if len(n) == 1:
            table[cp] = n
        else:
            longer.append(re.escape(ch))
        if any(c.isascii() and (c.isalnum() or c in "@+-.()/~ ") for c in n):
            relevant.append(re.escape(ch))
    return (table, re.compile("[" + "".join(longer) + "]"),
            re.compile("[" + "".join(relevant) + "]"))


def _normalised(text: str) -> tuple[str, list[int] | None]:
    """NFKC form of ``text`` for matching and, when it is not position for position the same
    length, the index in ``text`` of every character of it."""
    if text.isascii():
        return text, None
    table, longer, relevant = _width_table()
    if not relevant.search(text):
        return text, None
    if not longer.search(text):
        return text.translate(table), None
    parts: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        n = unicodedata.normalize("NFKC", ch)
        parts.append(n)
        where.extend([i] * len(n))
    return "".join(parts), where


def _id_spans(norm: str) -> list[tuple[int, int, str]]:
    spans = []
    for m in _ID.finditer(norm):
        if m.group(1) is not None:
            digits = m.group(1) + m.group(3) + m.group(5)
            grouped = bool(m.group(2)) and bool(m.group(4))
        else:
            digits = m.group(6) + m.group(8) + m.group(10)
            grouped = False
        lenient = grouped or bool(_ID_KEYWORD.search(norm, max(0, m.start() - 12), m.start()))
        if is_id_number(digits, lenient_checksum=lenient):
            spans.append((m.start(), m.end(), ID_TOKEN))
    return spans


def _masked(norm: str, spans: list[tuple[int, int, str]]) -> str:
    if not spans:
        return norm
    out = norm
    for a, b, _ in spans:
        out = out[:a] + _MASK * (b - a) + out[b:]
    return out


def _mask_match(m: re.Match[str]) -> str:
    return _MASK * (m.end() - m.start())


def _phone_spans(norm: str) -> list[tuple[int, int, str]]:
    spans = []
    for m in PhoneNumberMatcher(norm, "CN", leniency=Leniency.VALID):
        kind = phonenumbers.number_type(m.number)
        if kind in _NOT_PERSONAL:
            continue
        token = MOBILE_TOKEN if kind == PhoneNumberType.MOBILE else LANDLINE_TOKEN
        spans.append((m.start, m.end, token))
    return spans


def _digit_count(text: str) -> int:
    return sum(map(str.isdigit, text))


def _spans(norm: str, digits: int) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(start, end, token)`` of the identifiers in a normalised text that
    holds ``digits`` digits."""
    spans: list[tuple[int, int, str]] = []
    masked = norm
    if "@" in norm:
        spans.extend((m.start(), m.end(), EMAIL_TOKEN) for m in _EMAIL.finditer(norm))
        masked = _masked(norm, spans)
        digits = _digit_count(masked)
    if digits >= 15:
        found = _id_spans(masked)
        if found:
            spans.extend(found)
            masked = _masked(masked, found)
            digits = _digit_count(masked)
    if digits >= 11:
        found = [(m.start(), m.end(), MOBILE_TOKEN) for m in _MOBILE.finditer(masked)
                 if m.start() == 0 or masked[m.start() - 1] not in _MOBILE_LEFT]
        if found:
            spans.extend(found)
            masked = _masked(masked, found)
            digits = _digit_count(masked)
    if digits >= 7 and _PHONE_RUN.search(_DATE_TIME.sub(_mask_match, masked)):
        spans.extend(_phone_spans(masked))
    return sorted(spans)


def _apply(text: str, norm: str, where: list[int] | None, digits: int) -> str:
    spans = _spans(norm, digits)
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for a, b, token in spans:
        start, end = (a, b) if where is None else (where[a], where[b - 1] + 1)
        if start < pos:  # overlaps the previous span (cannot happen after masking)
            continue
        out.append(text[pos:start])
        out.append(token)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def redact_text(value: str) -> str:
    """``value`` with phone numbers, ID numbers and e-mail addresses replaced by tokens."""
    if "@" not in value and "＠" not in value and (
            _digit_count(value) < 7 or _digit_count(_DATE_TIME.sub("", value)) < 7):
        return value  # too few digits for an identifier (dates and times aside)
    norm, where = _normalised(value)
    return _apply(value, norm, where, _digit_count(norm))


def _candidates(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the texts holding at least 7 digits (ASCII or full-width) or an ``@``,
    and their digit counts.

    The texts are joined into one UTF-32 buffer and scanned with numpy, which is several
    times faster than a search per text.
    """
    if not texts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer("\x00".join(texts).encode("utf-32-le"), dtype=np.uint32)
    digit = ((codes >= 48) & (codes <= 57)) | ((codes >= 0xFF10) & (codes <= 0xFF19))
    at = (codes == 64) | (codes == 0xFF20)
    ends = np.cumsum(lens + 1)
    count = np.bincount(np.searchsorted(ends, np.flatnonzero(digit), side="right"),
                        minlength=len(texts))[: len(texts)]
    has_at = np.zeros(len(texts), dtype=bool)
    has_at[np.searchsorted(ends, np.flatnonzero(at), side="right")] = True
    hits = np.flatnonzero((count >= 7) | has_at)
    return hits, count[hits]


def redact_series(values: pd.Series) -> pd.Series:
    """Redact a column of free text (missing values stay missing).

    Only the texts with at least 7 digits or an ``@`` are searched.
    """
    if values.empty:
        return values
    present = values.notna().to_numpy()
    idx = np.flatnonzero(present)
    texts = values.iloc[idx].tolist()
    hits, counts = _candidates(texts)
    if not len(hits):
        return values
    out = values.copy()
    pos = idx[hits]
    redacted = []
    for i, digits in zip(hits.tolist(), counts.tolist(), strict=True):
        text = texts[i]
        if 11 <= digits <= 17 and "@" not in text:
            # the commonest case, one mobile number written in one piece: replaced at once
            # when nothing that could be another identifier is left
            quick, n = _MOBILE_ALONE.subn(MOBILE_TOKEN, text)
            if n and digits - 11 * n < 7:
                redacted.append(quick)
                continue
        norm, where = _normalised(text)
        redacted.append(_apply(text, norm, where, digits if where is None else
                               _digit_count(norm)))
    out.iloc[pos] = redacted
    return out
