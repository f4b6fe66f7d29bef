"""Name pools for the demo county: surnames, given-name characters, places and work groups.

Every place name here is invented; the codes they get (province 99) belong to no real region.
Only data lives here, no logic.
"""

from __future__ import annotations

# The most common surnames, most frequent first; weights roughly follow their frequency.
SURNAMES: tuple[str, ...] = (
    "王",
    "李",
    "张",
    "刘",
    "陈",
    "杨",
    "黄",
    "赵",
    "吴",
    "周",
    "徐",
    "孙",
    "马",
    "朱",
    "胡",
    "郭",
    "何",
    "林",
    "罗",
    "高",
    "郑",
    "梁",
    "谢",
    "宋",
    "唐",
    "韩",
    "冯",
    "邓",
    "曹",
    "彭",
)
SURNAME_WEIGHTS: tuple[int, ...] = (
    72,
    72,
    70,
    53,
    46,
    31,
    23,
    20,
    20,
    18,
    15,
    15,
    13,
    12,
    12,
    11,
    10,
    10,
    9,
    9,
    9,
    8,
    7,
    7,
    7,
    6,
    6,
    6,
    6,
    6,
)

# Given-name characters by sex; the older generation's names draw on the first pool of each.
MALE_CHARS_OLDER = "建国明华军平志德富贵忠林春生文发成福永祥海山树金荣"
MALE_CHARS_YOUNGER = "伟强磊浩宇杰鹏涛斌超勇俊辉鑫博宁晨阳凯轩航睿哲然"
FEMALE_CHARS_OLDER = "秀英兰芳桂珍玉凤琴花梅翠云霞莲淑素香荣菊娥"
FEMALE_CHARS_YOUNGER = "丽娟敏静婷雪慧莉萍燕颖琳欣怡佳悦雯晶蕾倩璐萱"

# Three townships of four villages each (the county code is 990102).
TOWNSHIPS: tuple[tuple[str, tuple[str, str, str, str]], ...] = (
    ("青石镇", ("上坪村", "下坪村", "石门村", "竹林村")),
    ("白水乡", ("白水村", "河口村", "桃花村", "新寨村")),
    ("龙溪镇", ("龙潭村", "杉木村", "高岭村", "凉水井村")),
)

PROVINCE_NAME = "演示省"
CITY_NAME = "演示市"
COUNTY_NAME = "云溪县"

WORK_GROUPS = ("一组", "二组", "三组", "四组", "五组", "六组", "七组", "八组")

# Mobile prefixes of the three carriers (the rest of each number is random).
PHONE_PREFIXES = (
    "130",
    "131",
    "132",
    "135",
    "136",
    "138",
    "139",
    "150",
    "151",
    "152",
    "157",
    "158",
    "159",
    "177",
    "180",
    "182",
    "183",
    "187",
    "188",
    "189",
    "198",
    "199",
)
