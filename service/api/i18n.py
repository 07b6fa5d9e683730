"""Problem details in the client's language: Chinese when ``Accept-Language`` prefers ``zh``,
English otherwise.

The ``type`` (``urn:forewarn:problem:<code>``) and ``status`` never change with the language —
clients branch on them. The ``title`` is translated per status or type; the ``detail`` is
translated by the message catalogue below (patterns of the service's English messages, with
their values kept); a detail the catalogue does not know stays English and the response says
so (``Content-Language: en``). Extensions (``errors``, ``parameter``, ``value``, …) are data
and stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from service.campaigns.status import STATUS_ZH as CAMPAIGN_STATUS_ZH

__all__ = ["preferred_language", "localize_problem", "TITLES_ZH", "STATUS_ZH"]

TITLES_ZH: dict[int, str] = {
    400: "请求有误", 401: "未认证", 403: "无权操作", 404: "未找到", 405: "方法不允许",
    409: "状态冲突", 413: "请求体过大", 415: "不支持的媒体类型", 422: "无法处理的请求",
    429: "请求过于频繁", 500: "服务器内部错误", 503: "服务暂不可用",
}
_TYPE_TITLES_ZH = {"insufficient-history": "历史数据不足",
                   "unknown-filter-value": "未知的筛选值"}
STATUS_ZH = {
    **CAMPAIGN_STATUS_ZH,
    "pending": "待发送", "sending": "发送中", "retrying": "重试中", "delivered": "已送达",
    "dead": "投递失败",
}
_PARAM_ZH = {"category": "类别", "region": "地区"}


def _status(word: str) -> str:
    return STATUS_ZH.get(word, word)


_Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]
_RULES: list[_Rule] = [(re.compile(p), f) for p, f in [
    (r"^this endpoint needs an API key in the X-API-Key header$",
     lambda m: "此接口需要在 X-API-Key 请求头中提供 API 密钥"),
    (r"^the API key is unknown, revoked or expired$",
     lambda m: "API 密钥无效、已撤销或已过期"),
    (r"^the API key lacks the '(\w+)' scope$",
     lambda m: f"API 密钥没有“{m[1]}”权限"),
    (r"^unknown (category|region) '(.*)'; (.+) lists the known values$",
     lambda m: f"未知的{_PARAM_ZH.get(m[1], m[1])}“{m[2]}”；已知取值见 {m[3]}"),
    (r"^campaign (\w+) does not exist$", lambda m: f"提示活动 {m[1]} 不存在"),
    (r"^recipient (\w+) does not exist$", lambda m: f"接收方 {m[1]} 不存在"),
    (r"^no key with prefix (\S+)$", lambda m: f"没有前缀为 {m[1]} 的密钥"),
    (r"^campaign (\w+) is (\w+); only draft and needs_review campaigns can be approved$",
     lambda m: f"提示活动 {m[1]} 当前为“{_status(m[2])}”，只有草稿或待复核的活动可以批准"),
    (r"^campaign (\w+) is (\w+); it cannot become (\w+)$",
     lambda m: f"提示活动 {m[1]} 当前为“{_status(m[2])}”，不能变为“{_status(m[3])}”"),
    (r"^campaign (\w+) is (\w+); only draft, dropped and needs_review campaigns can be "
     r"edited$",
     lambda m: f"提示活动 {m[1]} 当前为“{_status(m[2])}”，只有草稿、未排期或待复核的活动可以修改"),
    (r"^no finished forecast run covers series '(.*)'$",
     lambda m: f"没有已完成的预测批次覆盖序列“{m[1]}”"),
    (r"^there is no finished forecast run to plan from; run a forecast first$",
     lambda m: "没有可用于排期的已完成预测批次，请先运行预测"),
    (r"^rate limit exceeded; retry later$", lambda m: "请求过于频繁，请稍后再试"),
    (r"^the cursor is not one this API returned.*$",
     lambda m: "分页游标无效（请原样传回上一页的 next_cursor）"),
    (r"^invalid request: (.*)$", lambda m: f"请求参数无效：{m[1]}"),
    (r"^an unexpected error occurred$", lambda m: "发生了意外错误"),
    (r"^Not Found$", lambda m: "未找到"),
    (r"^(\w+): unknown (region|category|sector) (.*?); (.*)$",
     lambda m: f"{m[1]}：未知的{ {'region': '地区', 'category': '类别', 'sector': '领域'}[m[2]]}"
               f" {m[3]}；{m[4]}"),
    (r"^webhook_url: destination refused: (.*)$",
     lambda m: f"webhook_url：目标地址被拒绝（{m[1]}）"),
    (r"^email: (.*)$", lambda m: f"email：电子邮件地址无效（{m[1]}）"),
]]


def preferred_language(accept_language: str | None) -> str:
    """``zh`` when the highest-weighted language of ``Accept-Language`` is Chinese, else
    ``en``."""
    best, best_q = "en", -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        if not tag:
            continue
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if q > best_q:
            best, best_q = tag.lower(), q
    return "zh" if best.startswith("zh") else "en"


def _detail_zh(detail: str) -> str | None:
    for pattern, render in _RULES:
        m = pattern.match(detail)
        if m:
            return render(m)
    return None


def localize_problem(body: dict[str, Any], accept_language: str | None
                     ) -> tuple[dict[str, Any], str]:
    """``(body, language of its detail)``: translated when the client prefers Chinese."""
    if preferred_language(accept_language) != "zh":
        return body, "en"
    out = dict(body)
    code = str(body.get("type", "")).rsplit(":", 1)[-1]
    status = int(body.get("status") or 500)
    out["title"] = _TYPE_TITLES_ZH.get(code) or TITLES_ZH.get(status, str(body.get("title")))
    detail = body.get("detail")
    if isinstance(detail, str):
        zh = _detail_zh(detail)
        if zh is None:
            return out, "en"
        out["detail"] = zh
    return out, "zh"
