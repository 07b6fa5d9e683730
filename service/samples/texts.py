"""Phrase banks for the synthetic complaint texts (Chinese, 12345-hotline style).

Each category has a few sentence templates with ``{place}``, ``{when}`` and ``{ask}`` slots;
the generator combines them so the texts vary without saying anything real about anyone.
Personal data in the texts (phone numbers, ID numbers, e-mails) is random and fake; e-mails use
reserved example domains.
"""

from __future__ import annotations

__all__ = ["ASKS", "PLACES", "STREETS", "TEMPLATES", "WHENS", "COMMUNITIES"]

STREETS: tuple[str, ...] = (
    "新华大街", "中山路", "锡林郭勒路", "昭乌达路", "钢铁大街", "阿尔丁大街", "鄂尔多斯大街",
    "胜利路", "建设路", "团结街", "民族街", "友谊路", "滨河路", "北京路", "迎宾路", "工业路",
)
COMMUNITIES: tuple[str, ...] = (
    "幸福", "阳光", "康居", "和谐", "民族", "滨河", "北辰", "金桥", "祥和", "如意", "富康",
    "丰泽", "安泰", "朝阳", "青山", "兴业",
)
WHENS: tuple[str, ...] = (
    "最近几天", "这几天晚上", "今天上午", "昨天下午", "连续一周", "每天夜里", "周末", "今天",
    "前天", "这段时间",
)
ASKS: tuple[str, ...] = (
    "请有关部门尽快处理。", "希望相关部门管一管。", "请尽快核实处理。", "要求相关部门查处。",
    "请协调解决。", "希望给个答复。", "已经反映过一次，还没有解决。", "请依法处理。",
)

# Per category: places and sentence templates. Slots: {place} {when} {ask}.
PLACES: dict[str, tuple[str, ...]] = {
    "fireworks": ("{c}小区楼下", "{s}路边临时摊点", "{c}小区门口的小卖部", "{s}附近的广场",
                  "城乡接合部的仓库", "{s}一家超市门口", "{c}小区楼道"),
    "migrant_wages": ("{s}附近的建筑工地", "{c}家园项目工地", "开发区一处厂房工地",
                      "{s}道路改造工程", "一家装修公司", "{c}小区二期工程"),
    "grassland_fire": ("城郊草场", "{s}以北的林地边", "嘎查附近的草原", "村外的坟地",
                       "国道旁的草场", "林场边上", "河套农田边"),
    "tourism_pricing": ("一家牧家乐", "景区门口的停车场", "{s}附近的烤全羊店", "草原旅游点",
                        "景区内的骑马项目", "一家民宿", "{s}的特产店", "一个旅游团"),
    "food_safety": ("{s}一家饭馆", "{c}小区旁的超市", "学校门口的小吃摊", "{s}的蛋糕店",
                    "网购的一家店铺", "{s}早市", "单位食堂", "{c}小区门口的熟食店"),
    "gas_safety": ("{c}小区一楼的饭馆", "{c}小区楼道", "{s}一家烧烤店", "邻居家",
                   "{s}附近的液化气站", "{c}小区的燃气管道", "老旧小区院里"),
    "illegal_fishing": ("黄河边", "水库边", "{s}附近的河段", "湖边", "黄河大桥下",
                        "湿地公园的水面", "引黄干渠"),
    "exam_noise": ("{c}小区旁的工地", "学校附近的工地", "{s}的KTV", "{c}小区楼上",
                   "{s}道路施工现场", "广场", "{c}小区对面的商铺"),
    "wildlife_poaching": ("山里", "林场附近", "{s}以北的草场", "湿地边", "村子后山",
                          "早市上", "一家饭店"),
    "coal_truck_overload": ("{s}国道", "煤矿出口的路上", "{s}与环城路交口", "省道收费站附近",
                            "村里的道路", "物流园区门口"),
}

TEMPLATES: dict[str, tuple[str, ...]] = {
    "fireworks": (
        "{place}有人售卖烟花爆竹，没有看到许可证，{ask}",
        "{when}{place}有人燃放烟花爆竹，声音很大影响休息，{ask}",
        "{place}堆放了大量烟花爆竹，存在安全隐患，{ask}",
        "反映{place}在禁放区域燃放鞭炮，{ask}",
        "{when}凌晨{place}一直放炮，老人孩子无法休息，{ask}",
        "{place}用三轮车流动售卖烟花，{ask}",
    ),
    "migrant_wages": (
        "我在{place}干活，工资拖欠{n}个月了，老板一直不给，{ask}",
        "反映{place}拖欠{n0}多名工人工资，{ask}",
        "{place}包工头拖欠农民工工资，快过年了还没结，{ask}",
        "我们在{place}打工，工程完了工资没发，{ask}",
        "{place}拖欠劳务费约{m}元，多次讨要未果，{ask}",
    ),
    "grassland_fire": (
        "{when}{place}有人烧荒，烟很大，{ask}",
        "{place}有人上坟烧纸，现在是防火期，{ask}",
        "反映{place}有人野外生火烧烤，{ask}",
        "{place}有人烧秸秆，火势不小，{ask}",
        "{when}看到{place}冒烟，怀疑有人野外用火，{ask}",
    ),
    "tourism_pricing": (
        "在{place}消费，结账时价格和标价不一样，{ask}",
        "{place}没有明码标价，收费太高，{ask}",
        "反映{place}强制消费，{ask}",
        "{when}在{place}吃饭被多收钱，{ask}",
        "参加的{place}低价团被要求购物，{ask}",
        "{place}收费项目事先没说清楚，{ask}",
    ),
    "food_safety": (
        "在{place}买的食品过期了，{ask}",
        "{when}在{place}吃饭后肚子不舒服，怀疑食品不卫生，{ask}",
        "{place}卫生条件很差，{ask}",
        "在{place}买的月饼没有生产日期，{ask}",
        "在{place}买的粽子有异味，{ask}",
        "反映{place}无证经营食品，{ask}",
        "{place}使用过期原料，{ask}",
    ),
    "gas_safety": (
        "{place}有燃气味，担心泄漏，{ask}",
        "{place}私自改装燃气管道，{ask}",
        "{when}{place}使用液化气罐不规范，{ask}",
        "反映{place}燃气软管老化，{ask}",
        "{place}燃气表附近堆放杂物，存在隐患，{ask}",
        "{when}家里人有一氧化碳中毒症状，怀疑{place}燃气有问题，{ask}",
    ),
    "illegal_fishing": (
        "{when}{place}有人电鱼，{ask}",
        "现在是禁渔期，{place}有人下网捕鱼，{ask}",
        "反映{place}有人用地笼捕鱼，{ask}",
        "{place}有人非法捕捞并在路边卖鱼，{ask}",
        "{when}{place}有船夜间捕鱼，{ask}",
    ),
    "exam_noise": (
        "马上高考了，{place}夜间施工噪音很大，{ask}",
        "{when}{place}噪音扰民，孩子要考试，{ask}",
        "{place}晚上十点以后还在施工，{ask}",
        "反映{place}音响声音太大，影响考生复习，{ask}",
        "中考期间{place}装修噪音大，{ask}",
    ),
    "wildlife_poaching": (
        "{when}{place}有人下套捕猎，{ask}",
        "{place}有人张网捕鸟，{ask}",
        "反映{place}出售野生动物，{ask}",
        "{place}发现猎夹，怀疑有人盗猎，{ask}",
        "{when}{place}有人夜间打猎，{ask}",
    ),
    "coal_truck_overload": (
        "{place}运煤车严重超载，{ask}",
        "{when}{place}拉煤车辆抛洒严重，{ask}",
        "{place}大货车超载，路面被压坏，{ask}",
        "反映{place}运煤车夜间超载通行，{ask}",
        "{place}煤车排队超载，存在安全隐患，{ask}",
    ),
}
