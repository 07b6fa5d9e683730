"""Header mapping (built-in Chinese/English aliases + the user's mapping) and value mapping.

Headers are compared after NFKC normalisation, case folding and removal of spaces,
underscores, hyphens, dots and brackets, so ``Received At``, ``received_at`` and
``RECEIVED-AT`` are the same header. The user's mapping (canonical field -> source column)
wins over the aliases; a column that names personal data (see :mod:`service.ingest.redact`)
is dropped unless the user maps it explicitly.

Category and region values are mapped through the reference tables' ``code``, ``name_zh``,
``name_en`` and ``aliases`` (case-insensitive, whitespace-trimmed); region names also match
without their administrative suffix (``包头`` -> ``包头市``) when that is unambiguous.
Columns are mapped per distinct value (``pd.factorize``), never per row.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml

from service.errors import BadRequest, UnprocessableContent
from service.ingest.redact import is_personal_header

__all__ = [
    "Kind",
    "KINDS",
    "KindSpec",
    "FIELD_ALIASES",
    "ACTIONS",
    "NULL_TOKENS",
    "ColumnPlan",
    "ReferenceIndex",
    "normalise_header",
    "value_key",
    "plan_columns",
    "load_mapping_file",
    "parse_mapping_pairs",
    "code_for",
    "map_values",
    "map_actions",
    "map_booleans",
    "map_channels",
]

Kind = Literal["complaints", "enforcement"]


@dataclass(frozen=True)
class KindSpec:
    """Canonical fields of one record kind."""

    kind: str
    table: str
    time_field: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    max_len: Mapping[str, int]

    @property
    def fields(self) -> tuple[str, ...]:
        return ("source", "external_id", *self.required, *self.optional)


KINDS: dict[str, KindSpec] = {
    "complaints": KindSpec(
        kind="complaints", table="complaints", time_field="received_at",
        required=("received_at", "category", "region"),
        optional=("sector", "channel", "text"),
        max_len={"source": 100, "external_id": 200, "sector": 100, "channel": 50},
    ),
    "enforcement": KindSpec(
        kind="enforcement", table="enforcement_actions", time_field="occurred_at",
        required=("occurred_at", "category", "region", "action", "violation_found"),
        optional=("entity_id", "sector"),
        max_len={"source": 100, "external_id": 200, "sector": 100, "entity_id": 100},
    ),
}

# canonical field -> header aliases (normalised by ``normalise_header`` when used); the
# first alias present in a file wins when several are.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "source": ("source", "来源", "数据来源", "来源系统", "datasource"),
    "external_id": (
        "external_id", "id", "工单编号", "工单号", "编号", "投诉编号", "案件编号", "案件号",
        "受理编号", "流水号", "记录编号", "检查编号", "执法编号", "ticket_id", "case_id",
        "record_id", "service_request_number", "request_id",
    ),
    "received_at": (
        "received_at", "受理时间", "投诉时间", "来电时间", "登记时间", "举报时间", "反映时间",
        "接收时间", "创建时间", "received", "reported_at", "created_at", "created_date",
        "timestamp", "datetime", "date", "时间", "日期",
    ),
    "occurred_at": (
        "occurred_at", "检查时间", "执法时间", "处理时间", "检查日期", "执法日期", "立案时间",
        "处罚时间", "occurred", "inspection_date", "action_date", "date", "时间", "日期",
    ),
    "category": (
        "category", "问题类别", "违法类型", "投诉类别", "问题类型", "投诉类型", "违法行为类别",
        "违法类别", "事项类别", "类别", "类型", "violation_type", "violation_nature", "type",
    ),
    "region": (
        "region", "所属地区", "旗县区", "地区", "行政区划", "区域", "所属区域", "盟市", "区县",
        "旗县", "行政区", "area", "district", "ward", "region_code",
    ),
    "sector": ("sector", "行业", "所属行业", "行业类别", "industry"),
    "channel": ("channel", "受理渠道", "渠道", "来源渠道", "投诉渠道", "来电渠道"),
    "text": (
        "text", "投诉内容", "诉求内容", "内容", "问题描述", "反映内容", "举报内容", "事项内容",
        "description", "content", "complaint_text", "details",
    ),
    "action": (
        "action", "执法行为", "处理方式", "处理结果", "执法措施", "处置方式", "执法类型",
        "action_type", "measure",
    ),
    "violation_found": (
        "violation_found", "是否违法", "是否存在违法行为", "违法", "是否违规", "violation",
        "violated",
    ),
    "entity_id": (
        "entity_id", "主体编号", "企业编号", "统一社会信用代码", "市场主体编号", "当事人编号",
        "entity", "business_id", "license_number",
    ),
}

ACTIONS = ("inspection", "warning", "correction_order", "penalty", "other")
_ACTION_ALIASES: dict[str, str] = {
    **dict.fromkeys(("inspection", "inspect", "check", "检查", "巡查", "现场检查", "日常检查",
                     "监督检查", "抽查", "核查", "专项检查", "双随机检查", "执法检查", "巡检"),
                    "inspection"),
    **dict.fromkeys(("warning", "warn", "警告", "口头警告", "书面警告", "警示"), "warning"),
    **dict.fromkeys(("correction_order", "correction order", "rectification order",
                     "order to correct", "责令改正", "责令整改", "责令限期改正", "限期整改",
                     "限期改正", "整改", "责令改正通知"), "correction_order"),
    **dict.fromkeys(("penalty", "fine", "罚款", "行政处罚", "处罚", "没收", "没收违法所得",
                     "吊销许可证", "暂扣许可证", "责令停产停业", "行政拘留", "罚没"), "penalty"),
    **dict.fromkeys(("other", "其他", "其它", "约谈", "查封", "扣押", "立案", "移送", "教育",
                     "劝导", "说服教育", "指导"), "other"),
}
_ACTION_SUBSTRINGS: tuple[tuple[str, str], ...] = (
    ("罚", "penalty"), ("警告", "warning"), ("责令", "correction_order"),
    ("整改", "correction_order"), ("检查", "inspection"), ("巡查", "inspection"),
)
_CHANNEL_ALIASES: dict[str, str] = {
    **dict.fromkeys(("phone", "电话", "热线", "12345", "12345热线", "来电", "电话投诉",
                     "热线电话", "hotline", "telephone"), "phone"),
    **dict.fromkeys(("wechat", "微信", "微信公众号", "微信小程序", "weixin"), "wechat"),
    **dict.fromkeys(("app", "手机app", "客户端", "移动端", "mobile app"), "app"),
    **dict.fromkeys(("web", "网站", "网页", "网络", "门户网站", "政府网站", "网上", "web portal",
                     "website", "internet"), "web"),
    **dict.fromkeys(("letter", "信件", "来信", "书信"), "letter"),
    **dict.fromkeys(("visit", "来访", "走访", "现场", "窗口", "walk-in"), "visit"),
    **dict.fromkeys(("email", "邮件", "电子邮件", "e-mail"), "email"),
}
_TRUE = {"true", "t", "yes", "y", "1", "1.0", "是", "有", "违法", "存在", "对"}
_FALSE = {"false", "f", "no", "n", "0", "0.0", "否", "无", "未违法", "不存在", "没有"}

NULL_TOKENS: frozenset[str] = frozenset(
    {"", "(blank)", "(null)", "null", "NULL", "Null", "N/A", "n/a", "#N/A", "NaN", "nan",
     "None", "none", "-", "--", "—"}
)

_HEADER_STRIP = re.compile(r"[\s_\-.*:：()（）\ufeff]+")
_CODE_LIKE = re.compile(r"[a-z0-9][a-z0-9_.\-]*")
_NON_WORD = re.compile(r"\W+")
_ZH_SUFFIXES = ("自治旗", "自治县", "市辖区", "市", "盟", "旗", "县", "区")


def normalise_header(header: object) -> str:
    """Comparable form of a header: NFKC, case-folded, without spaces/underscores/brackets."""
    return _HEADER_STRIP.sub("", unicodedata.normalize("NFKC", str(header))).casefold()


def value_key(value: str) -> str:
    """Comparable form of a category/region value: NFKC, trimmed, single spaces, case-folded."""
    return " ".join(unicodedata.normalize("NFKC", value).split()).casefold()


@dataclass
class ColumnPlan:
    """How the columns of a file map onto canonical fields.

    ``rename`` maps source column -> canonical field; ``personal`` lists dropped columns;
    ``kept`` the non-personal source columns (they go into ``rejected_rows.raw``).
    """

    rename: dict[str, str]
    personal: list[str]
    kept: list[str]
    missing: list[str] = field(default_factory=list)


def plan_columns(
    headers: Sequence[str],
    spec: KindSpec,
    *,
    user_mapping: Mapping[str, str] | None = None,
    have_source: bool = False,
    strict: bool = True,
) -> ColumnPlan:
    """Map ``headers`` onto the canonical fields of ``spec``.

    Raises :class:`UnprocessableContent` (when ``strict``) if a required field has no column,
    naming the missing fields and the headers found, or :class:`BadRequest` if the user's
    mapping names an unknown field or a column the file does not have.
    """
    user = dict(user_mapping or {})
    unknown = sorted(set(user) - set(spec.fields))
    if unknown:
        raise BadRequest(
            f"mapping names unknown field(s) {', '.join(unknown)}; "
            f"fields of {spec.kind}: {', '.join(spec.fields)}"
        )
    by_norm: dict[str, str] = {}
    for h in headers:
        by_norm.setdefault(normalise_header(h), h)
    rename: dict[str, str] = {}
    taken: set[str] = set()
    for fld, col in user.items():
        src = col if col in headers else by_norm.get(normalise_header(col))
        if src is None:
            if strict:
                raise UnprocessableContent(
                    f"mapping {fld}={col}: the file has no column '{col}'; "
                    f"headers found: {', '.join(map(str, headers))}"
                )
            continue
        rename[src] = fld
        taken.add(fld)
    for fld in spec.fields:
        if fld in taken:
            continue
        for alias in FIELD_ALIASES.get(fld, ()):
            src = by_norm.get(normalise_header(alias))
            if src is not None and src not in rename:
                rename[src] = fld
                taken.add(fld)
                break
    personal = [h for h in headers if h not in rename and is_personal_header(h)]
    kept = [h for h in headers if h not in personal]
    needed = list(spec.required) + ([] if have_source else ["source"])
    missing = [f for f in needed if f not in taken]
    if missing and strict:
        raise UnprocessableContent(
            f"required field(s) {', '.join(missing)} have no column"
            + (" (and no source was given)" if "source" in missing else "")
            + f"; headers found: {', '.join(map(str, headers))}. "
            "Map them with --map FIELD=COLUMN or a mapping file.",
            missing=missing, headers=[str(h) for h in headers],
        )
    return ColumnPlan(rename=rename, personal=personal, kept=kept, missing=missing)


def parse_mapping_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``["received_at=受理时间", ...]`` -> ``{"received_at": "受理时间"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        fld, sep, col = pair.partition("=")
        if not sep or not fld.strip() or not col.strip():
            raise BadRequest(f"mapping '{pair}' is not of the form FIELD=COLUMN")
        out[fld.strip()] = col.strip()
    return out


def load_mapping_file(path: Path | str) -> dict[str, str]:
    """Read a mapping file (YAML or JSON): ``{canonical field: source column}``.

    A top-level ``mapping:`` key is accepted too.
    """
    p = Path(path)
    text = p.read_text(encoding="utf-8-sig")
    try:
        doc = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise BadRequest(f"{p.name}: not valid YAML/JSON ({exc})") from exc
    if isinstance(doc, dict) and isinstance(doc.get("mapping"), dict):
        doc = doc["mapping"]
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int) for k, v in doc.items()
    ):
        raise BadRequest(f"{p.name}: expected a mapping of field name -> column name")
    return {k: str(v) for k, v in doc.items()}


def code_for(value: str, max_len: int = 64) -> str:
    """Code for a newly registered category/region: the value if code-like, else a slug.

    ``"35"`` -> ``"35"``; ``"Garbage in alley"`` -> ``"garbage_in_alley"``;
    ``"烟花爆竹"`` -> ``"烟花爆竹"``.
    """
    v = unicodedata.normalize("NFKC", value).strip()
    if _CODE_LIKE.fullmatch(v) and len(v) <= max_len:
        return v
    slug = _NON_WORD.sub("_", v.casefold()).strip("_")
    digest = hashlib.sha1(v.encode()).hexdigest()[:10]
    if not slug:
        return f"x_{digest}"
    if len(slug) > max_len:
        slug = f"{slug[: max_len - 11]}_{digest}"
    return slug


class ReferenceIndex:
    """Lookup of category or region values by code, names and aliases.

    Parameters
    ----------
    rows
        ``(code, name_zh, name_en, aliases)`` per reference row.
    strip_suffixes
        Also match Chinese region names without their administrative suffix.
    """

    def __init__(
        self,
        rows: Iterable[tuple[str, str | None, str | None, Sequence[str] | None]],
        *,
        strip_suffixes: bool = False,
    ) -> None:
        levels: list[dict[str, set[str]]] = [{}, {}, {}]
        self.codes: set[str] = set()
        for code, name_zh, name_en, aliases in rows:
            self.codes.add(code)
            levels[0].setdefault(value_key(code), set()).add(code)
            for name in (name_zh, name_en, *(aliases or ())):
                if name:
                    levels[1].setdefault(value_key(str(name)), set()).add(code)
                    if strip_suffixes:
                        stem = _strip_suffix(str(name))
                        if stem:
                            levels[2].setdefault(value_key(stem), set()).add(code)
        self._lookup: dict[str, str] = {}
        self._ambiguous: dict[str, list[str]] = {}
        for level in levels:
            for key, codes in level.items():
                if key in self._lookup or key in self._ambiguous:
                    continue
                if len(codes) == 1:
                    self._lookup[key] = next(iter(codes))
                else:
                    self._ambiguous[key] = sorted(codes)

    def lookup(self, value: str) -> str | None:
        return self._lookup.get(value_key(value))

    def ambiguous(self, value: str) -> list[str] | None:
        return self._ambiguous.get(value_key(value))

    def add(self, code: str, value: str) -> None:
        """Remember a newly registered value."""
        self.codes.add(code)
        self._lookup.setdefault(value_key(code), code)
        self._lookup.setdefault(value_key(value), code)


def _strip_suffix(name: str) -> str | None:
    for suffix in _ZH_SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return None


def _factorized(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes, [str(u) for u in uniques]


def _take(codes: np.ndarray, mapped: Sequence[object], index: pd.Index) -> pd.Series:
    lut = np.empty(len(mapped) + 1, dtype=object)
    lut[: len(mapped)] = mapped
    lut[len(mapped)] = None
    return pd.Series(lut[codes], index=index, dtype=object)


def map_values(
    values: pd.Series,
    index: ReferenceIndex,
    *,
    register_new: bool = False,
) -> tuple[pd.Series, pd.Series, dict[str, str]]:
    """Map raw values onto reference codes.

    Returns
    -------
    codes
        The code per row (``None`` when missing or not mappable).
    problems
        ``None``, ``"missing"``, ``"unknown"`` or ``"ambiguous:<code>,<code>"`` per row.
    new
        ``{code: raw value}`` of values to register (only with ``register_new``).
    """
    fcodes, uniques = _factorized(values)
    mapped: list[str | None] = []
    problems: list[str | None] = []
    new: dict[str, str] = {}
    for raw in uniques:
        text = raw.strip()
        if text in NULL_TOKENS:
            mapped.append(None)
            problems.append("missing")
            continue
        code = index.lookup(text)
        if code is None:
            amb = index.ambiguous(text)
            if amb:
                mapped.append(None)
                problems.append("ambiguous:" + ",".join(amb))
                continue
            if register_new:
                code = code_for(text)
                if code not in index.codes:
                    new[code] = text
                index.add(code, text)
            else:
                mapped.append(None)
                problems.append("unknown")
                continue
        mapped.append(code)
        problems.append(None)
    out = _take(fcodes, mapped, values.index)
    prob = _take(fcodes, [*problems[: len(uniques)]], values.index)
    prob[fcodes < 0] = "missing"
    return out, prob, new


def _map_parsed(values: pd.Series, parse: Callable[[str], object | None]
                ) -> tuple[pd.Series, pd.Series]:
    """``parse`` of each distinct value (stripped) and a problem per row: ``missing`` for a
    blank or null token, ``invalid`` where ``parse`` gives None."""
    fcodes, uniques = _factorized(values)
    mapped: list[object | None] = []
    problems: list[str | None] = []
    for raw in uniques:
        text = raw.strip()
        value: object | None = None
        problem: str | None = "missing"
        if text not in NULL_TOKENS:
            value = parse(text)
            problem = None if value is not None else "invalid"
        mapped.append(value)
        problems.append(problem)
    out = _take(fcodes, mapped, values.index)
    prob = _take(fcodes, problems, values.index)
    prob[fcodes < 0] = "missing"
    return out, prob


def _action(text: str) -> str | None:
    key = value_key(text).replace("_", " ")
    action = _ACTION_ALIASES.get(key) or _ACTION_ALIASES.get(value_key(text))
    if action is None:
        action = next((a for sub, a in _ACTION_SUBSTRINGS if sub in text), None)
    return action


def map_actions(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Normalise action values to :data:`ACTIONS`; problems ``missing``/``invalid`` per row."""
    return _map_parsed(values, _action)


def map_channels(values: pd.Series) -> pd.Series:
    """Channel values to ``phone/wechat/app/web/letter/visit/email``; others kept as given."""
    fcodes, uniques = _factorized(values)
    mapped = [_CHANNEL_ALIASES.get(value_key(u), u.strip()) for u in uniques]
    return _take(fcodes, mapped, values.index)


def _boolean(text: str) -> bool | None:
    key = text.casefold()
    return True if key in _TRUE else False if key in _FALSE else None


def map_booleans(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """true/false/1/0/yes/no/是/否 (and a few more) -> bool; problems per row."""
    return _map_parsed(values, _boolean)
