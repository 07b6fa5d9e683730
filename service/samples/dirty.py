"""A small, deliberately messy complaints export (GB18030, Chinese headers) and its answer key.

Every data row carries at most one fault, so an ingestion test can check each outcome:
``accepted`` (possibly after normalising a date form, a name or an alias), ``rejected`` (one
``field`` and a ``problem`` kind) or ``duplicate`` (an exact repeat of an earlier row).
Personal data in the rows is fake (random digits, reserved example.com e-mail domains).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta

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


def _rows() -> list[_Row]:
    rj = "rejected"
    r: list[_Row] = [
        # ---- accepted: different timestamp forms, names, aliases ----
        _Row("GD2023010500017", "2023-01-05 14:03:00", "烟花爆竹", "呼和浩特市", "公共安全", "电话",
             "幸福小区楼下有人售卖烟花爆竹，没有看到许可证，请有关部门尽快处理。",
             when="2023-01-05T14:03:00+08:00", cat_code="fireworks", region_code="150100"),
        _Row("GD2023010500018", "2023/1/5 14:03", "fireworks", "150100", "公共安全", "微信",
             "这几天晚上阳光小区楼下有人燃放烟花爆竹，影响休息。",
             name="李女士", phone="13912345678",
             when="2023-01-05T14:03:00+08:00", cat_code="fireworks", region_code="150100"),
        _Row("GD2023010500019", "2023年1月5日 14时03分", "违规销售燃放烟花爆竹", "呼市", "公共安全",
             "电话", "反映民族小区楼道堆放了大量烟花爆竹，存在安全隐患。",
             when="2023-01-05T14:03:00+08:00", cat_code="fireworks", region_code="150100"),
        _Row("GD2023071600003", "45123.58", "旅游价格", "呼伦贝尔", "文化旅游", "APP",
             "在一家牧家乐消费，结账时价格和标价不一样，请依法处理。",
             when=_excel(45123.58), cat_code="tourism_pricing", region_code="150700"),
        _Row("GD2023010900021", "44935.4375", "欠薪", "包头市", "劳动保障", "电话",
             "我在钢铁大街附近的建筑工地干活，工资拖欠3个月了，请协调解决。",
             when=_excel(44935.4375), cat_code="migrant_wages", region_code="150200"),
        _Row("GD2023060800102", "2023-06-08T21:15:30+08:00", "噪声扰民", "赤峰市", "生态环境",
             "电话", "马上高考了，如意小区旁的工地夜间施工噪音很大，请尽快核实处理。",
             when="2023-06-08T21:15:30+08:00", cat_code="exam_noise", region_code="150400"),
        _Row("GD2023040400007", "2023-04-04 09:12:44", "草原防火", "锡盟", "林草防火", "电话",
             "村外的坟地有人上坟烧纸，现在是防火期，请依法处理。",
             when="2023-04-04T09:12:44+08:00", cat_code="grassland_fire", region_code="152500"),
        _Row("GD2023092500031", "2023/9/25 10:05", " 食品安全 ", "Ordos", "市场监管", "网站",
             "在新华大街的蛋糕店买的月饼没有生产日期，请尽快核实处理。",
             when="2023-09-25T10:05:00+08:00", cat_code="food_safety", region_code="150600"),
        _Row("GD2023111400009", "2023年11月14日 8时30分", "燃气安全", "赛罕区", "城镇燃气", "电话",
             "康居小区楼道有燃气味，担心泄漏，请尽快处理。",
             when="2023-11-14T08:30:00+08:00", cat_code="gas_safety", region_code="150105"),
        _Row("GD2023050300015", "2023-05-03 16:40:00", "非法捕捞", "巴彦淖尔市", "渔业", "微信",
             "现在是禁渔期，黄河边有人下网捕鱼，请依法处理。",
             when="2023-05-03T16:40:00+08:00", cat_code="illegal_fishing", region_code="150800"),
        _Row("GD2023121800004", "2023-12-18 11:20:00", "盗猎", "兴安盟", "林草（野生动物保护）",
             "电话", "林场附近有人下套捕猎，请有关部门管一管。",
             when="2023-12-18T11:20:00+08:00", cat_code="wildlife_poaching", region_code="152200"),
        _Row("GD2023120600011", "2023-12-06 15:02:00", "超载", "乌海", "交通运输", "电话",
             "煤矿出口的路上运煤车严重超载，请依法处理。",
             when="2023-12-06T15:02:00+08:00", cat_code="coal_truck_overload",
             region_code="150300"),
        _Row("GD2023081200006", "2023-08-12 13:33:00", "tourism_pricing", "阿拉善盟", "文化旅游",
             "APP", "景区内的骑马项目收费事先没说清楚，希望给个答复。",
             when="2023-08-12T13:33:00+08:00", cat_code="tourism_pricing", region_code="152900"),
        _Row("GD2023030100012", "2023/3/1 9:05", "拖欠农民工工资", "通辽", "劳动保障", "电话",
             "反映金桥家园项目工地拖欠30多名工人工资，请协调解决。",
             when="2023-03-01T09:05:00+08:00", cat_code="migrant_wages", region_code="150500"),
        _Row("GD2023102000005", "2023-10-20 10:10:10", "gas_safety", "Baotou", "城镇燃气", "电话",
             "滨河小区一楼的饭馆私自改装燃气管道，请尽快核实处理。",
             when="2023-10-20T10:10:10+08:00", cat_code="gas_safety", region_code="150200"),
        _Row("GD2023070500008", "45112.6875", "食品卫生", "乌兰察布市", "市场监管", "电话",
             "学校门口的小吃摊卫生条件很差，请依法处理。",
             when=_excel(45112.6875), cat_code="food_safety", region_code="150900"),
        # ---- accepted with personal data in the free text (redaction has work to do) ----
        _Row("GD2023020100013", "2023-02-01 10:00:00", "欠薪", "鄂尔多斯市", "劳动保障", "电话",
             "我们在建设路道路改造工程打工，工资没发，联系电话13912340001，请协调解决。",
             when="2023-02-01T10:00:00+08:00", cat_code="migrant_wages", region_code="150600",
             pii=["phone"]),
        _Row("GD2023020100014", "2023-02-01 10:20:00", "欠薪", "鄂尔多斯市", "劳动保障", "电话",
             "本人身份证号150602198805121235，在丰泽小区二期工程干活，工资拖欠5个月了。",
             when="2023-02-01T10:20:00+08:00", cat_code="migrant_wages", region_code="150600",
             pii=["id_number"]),
        _Row("GD2023072200016", "2023-07-22 19:45:00", "价格欺诈", "呼伦贝尔市", "文化旅游", "网站",
             "在草原旅游点吃饭被多收钱，处理结果请发邮箱wangfang1988@example.com。",
             when="2023-07-22T19:45:00+08:00", cat_code="tourism_pricing",
             region_code="150700", pii=["email"]),
        _Row("GD2023012000022", "2023-01-20 09:30:00", "燃放烟花爆竹", "赤峰", "公共安全", "电话",
             "民族街附近的广场有人放炮，我电话是 186 0471 2233，身份证150402197003150012。",
             when="2023-01-20T09:30:00+08:00", cat_code="fireworks", region_code="150400",
             pii=["phone", "id_number"]),
        # ---- accepted with optional fields blank ----
        _Row("GD2023061000010", "2023-06-10 08:15:00", "exam_noise", "包头", "生态环境", "电话", "",
             when="2023-06-10T08:15:00+08:00", cat_code="exam_noise", region_code="150200"),
        _Row("GD2023091000020", "2023-09-10 17:05:00", "food_safety", "150100", "", "",
             "在早市买的熟食有异味，请尽快核实处理。",
             when="2023-09-10T17:05:00+08:00", cat_code="food_safety", region_code="150100"),
        # ---- rejected: timestamps ----
        _Row("GD2023011100023", "2023-13-45 25:61", "烟花爆竹", "呼和浩特市", "公共安全", "电话",
             "小区楼下有人放炮。", outcome=rj, field_="received_at",
             problem="unparseable_timestamp"),
        _Row("GD2023011100024", "昨天下午", "欠薪", "包头市", "劳动保障", "电话",
             "工地拖欠工资。", outcome=rj, field_="received_at", problem="unparseable_timestamp"),
        _Row("GD2023011100025", "待补录", "食品安全", "通辽市", "市场监管", "电话",
             "超市卖过期食品。", outcome=rj, field_="received_at", problem="unparseable_timestamp"),
        _Row("GD2023011100026", "2023年2月30日 10时00分", "食品安全", "通辽市", "市场监管", "电话",
             "饭馆卫生差。", outcome=rj, field_="received_at", problem="unparseable_timestamp"),
        # ---- rejected: unknown category / region ----
        _Row("GD2023011100027", "2023-01-11 10:00:00", "共享单车乱停放", "呼和浩特市", "城市管理",
             "电话", "路口共享单车乱停放。", outcome=rj, field_="category",
             problem="unknown_category"),
        _Row("GD2023011100028", "2023-01-11 10:05:00", "物业纠纷", "包头市", "住房建设", "电话",
             "物业不作为。", outcome=rj, field_="category", problem="unknown_category"),
        _Row("GD2023011100029", "2023-01-11 10:10:00", "烟花爆竹", "北京市朝阳区", "公共安全",
             "电话", "有人放炮。", outcome=rj, field_="region", problem="unknown_region"),
        _Row("GD2023011100030", "2023-01-11 10:15:00", "燃气安全", "150999", "城镇燃气", "电话",
             "有燃气味。", outcome=rj, field_="region", problem="unknown_region"),
        _Row("GD2023011100031", "2023-01-11 10:20:00", "gas_safety", "Beijing", "城镇燃气", "电话",
             "楼道有燃气味。", outcome=rj, field_="region", problem="unknown_region"),
        # ---- rejected: blank required fields ----
        _Row("GD2023011100032", "", "烟花爆竹", "赤峰市", "公共安全", "电话",
             "有人卖烟花。", outcome=rj, field_="received_at", problem="missing_value"),
        _Row("GD2023011100033", "2023-01-11 11:00:00", "", "赤峰市", "公共安全", "电话",
             "有人卖烟花。", outcome=rj, field_="category", problem="missing_value"),
        _Row("GD2023011100034", "2023-01-11 11:05:00", "烟花爆竹", "", "公共安全", "电话",
             "有人卖烟花。", outcome=rj, field_="region", problem="missing_value"),
        _Row("", "2023-01-11 11:10:00", "烟花爆竹", "赤峰市", "公共安全", "电话",
             "有人卖烟花。", outcome=rj, field_="external_id", problem="missing_value"),
    ]
    # ---- more clean rows in between, so faults are not all at the end ----
    extra = [
        ("GD2023041500040", "2023-04-15 09:00:00", "grassland_fire", "呼伦贝尔市", "林草防火",
         "电话", "国道旁的草场有人烧荒，烟很大，请尽快处理。", "grassland_fire", "150700"),
        ("GD2023041600041", "2023/4/16 15:30", "野外用火", "兴安", "林草防火", "微信",
         "林场边上有人野外生火烧烤，请依法处理。", "grassland_fire", "152200"),
        ("GD2023062200042", "2023-06-22 12:12:12", "粽子", "乌海市", "市场监管", "电话",
         "在超市买的粽子有异味，请尽快核实处理。", "food_safety", "150300"),
        ("GD2023100300043", "2023年10月3日 18时20分", "旅游投诉", "鄂尔多斯", "文化旅游", "APP",
         "景区门口的停车场收费太高，没有明码标价。", "tourism_pricing", "150600"),
        ("GD2023111500044", "2023-11-15 08:45:00", "燃气泄漏", "Hohhot", "城镇燃气", "电话",
         "老旧小区院里有燃气味，担心泄漏。", "gas_safety", "150100"),
        ("GD2023042000045", "2023-04-20 20:10:00", "电鱼", "包头市", "渔业", "电话",
         "黄河大桥下有人电鱼，请有关部门管一管。", "illegal_fishing", "150200"),
        ("GD2023060500046", "2023-06-05 22:30:00", "高考噪声", "通辽市", "生态环境", "电话",
         "学校附近的工地晚上十点以后还在施工。", "exam_noise", "150500"),
        ("GD2023010200047", "2023-01-02 10:00:00", "非法狩猎", "锡林郭勒盟", "林草（野生动物保护）",
         "电话", "北京路以北的草场发现猎夹，怀疑有人盗猎。", "wildlife_poaching", "152500"),
        ("GD2023122000048", "2023/12/20 7:50", "超限超载", "鄂尔多斯市", "交通运输", "电话",
         "物流园区门口大货车超载，路面被压坏。", "coal_truck_overload", "150600"),
        ("GD2023011500049", "2023-01-15 19:00:00", "非法销售烟花爆竹", "巴彦淖尔", "公共安全",
         "电话", "胜利路路边临时摊点有人售卖烟花爆竹。", "fireworks", "150800"),
        ("GD2023091800050", "45187.40625", "月饼", "呼和浩特", "市场监管", "网站",
         "在网购的一家店铺买的月饼过期了。", "food_safety", "150100"),
        ("GD2023070200051", "2023-07-02 11:11:00", "宰客", "Xilingol", "文化旅游", "电话",
         "一家民宿强制消费，要求相关部门查处。", "tourism_pricing", "152500"),
        ("GD2023012100052", "2023-01-21 23:40:00", "烟花", "赤峰市", "公共安全", "电话",
         "凌晨朝阳小区楼下一直放炮，老人孩子无法休息。", "fireworks", "150400"),
        ("GD2023011600053", "2023-01-16 14:00:00", "讨薪", "乌兰察布", "劳动保障", "电话",
         "一家装修公司拖欠劳务费约12000元，多次讨要未果。", "migrant_wages", "150900"),
        ("GD2023080800054", "2023-08-08 10:30:00", "旅游价格", "阿拉善", "文化旅游", "微信",
         "草原旅游点没有明码标价，收费太高。", "tourism_pricing", "152900"),
        ("GD2023010700055", "2023-01-07 09:09:00", "煤气", "乌海市", "城镇燃气", "电话",
         "邻居家使用液化气罐不规范，存在隐患。", "gas_safety", "150300"),
    ]
    extra_rows = []
    for ext, ts, cat, region, sector, channel, text, code, rcode in extra:
        when = _excel(float(ts)) if ts.replace(".", "").isdigit() else _normalise(ts)
        extra_rows.append(_Row(ext, ts, cat, region, sector, channel, text, when=when,
                               cat_code=code, region_code=rcode))
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
