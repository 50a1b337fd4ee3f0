"""Realistic, deterministic seed data for the emulators and the demo.

Chinese and English company names, people, phones, domains and valid unified
social credit codes (统一社会信用代码, GB 32100-2015 check digit), plus spelling
variants of one company as they appear when two systems were keyed in by
different people.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

CITIES = ["深圳市", "上海", "北京", "广州市", "杭州", "成都市", "南京", "苏州工业园区", "武汉", "西安"]
CITY_EN = ["Shenzhen", "Shanghai", "Beijing", "Guangzhou", "Hangzhou", "Chengdu", "Nanjing", "Suzhou", "Wuhan", "Xi'an"]
REGIONS = ["华南", "华东", "华北", "华南", "华东", "西南", "华东", "华东", "华中", "西北"]
BRANDS = ["华信", "恒通", "中科", "博远", "瑞丰", "金桥", "天成", "鼎盛", "星河", "云启", "宏达", "汇智", "新锐", "东方", "联创",
          "卓越", "海纳", "正泰", "锦程", "安和"]
TRADES = [("科技", "technology"), ("电子", "manufacturing"), ("软件", "technology"), ("制造", "manufacturing"),
          ("贸易", "retail"), ("医疗器械", "healthcare"), ("物流", "logistics"), ("能源", "energy"),
          ("信息技术", "technology"), ("精密机械", "manufacturing")]
SUFFIXES = ["有限公司", "股份有限公司", "有限责任公司"]
EN_WORDS = ["Acme", "Northwind", "Globex", "Initech", "Umbrella", "Vertex", "Pioneer", "Summit", "Harbor", "Evergreen",
            "Bluepeak", "Redwood", "Silverline", "Crescent", "Orbit"]
EN_TRADES = [("Robotics", "manufacturing"), ("Software", "technology"), ("Medical", "healthcare"),
             ("Logistics", "logistics"), ("Energy", "energy"), ("Trading", "retail")]
EN_SUFFIXES = ["Co., Ltd.", "Ltd.", "Inc.", "Limited"]
SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡"]
GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "涛", "明", "超", "秀英", "建华", "晓东"]
EN_FIRST = ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Ivy", "Jack"]
EN_LAST = ["Smith", "Chen", "Wong", "Lee", "Brown", "Taylor", "Lin", "Ng"]
TITLES = ["采购经理", "总经理", "IT总监", "财务主管", "销售总监", "Purchasing Manager", "CTO"]
DEAL_STAGES = ["qualification", "needs_analysis", "proposal", "negotiation", "won", "lost"]
PARTNER_TIERS = ["platinum", "gold", "silver", "registered"]

#: Real-world names that must round-trip unharmed through every system.
FAMOUS = ["深圳市华为技术有限公司", "阿里巴巴（中国）有限公司", "北京字节跳动科技有限公司"]

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def uscc_check_char(first17: str) -> str:
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31]


def is_valid_uscc(code: str) -> bool:
    if len(code) != 18 or any(c not in _USCC_CHARS for c in code):
        return False
    return uscc_check_char(code[:17]) == code[17]


@dataclass(slots=True)
class Company:
    name: str
    name_en: str
    industry: str
    tax_id: str
    domain: str
    phone: str
    city: str
    region: str
    chinese: bool


@dataclass(slots=True)
class Person:
    name: str
    email: str
    mobile: str
    title: str


class FakeData:
    """A seeded generator: the same seed gives the same data."""

    def __init__(self, seed: int | None = 0) -> None:
        self.rng = random.Random(seed)
        self._serial = 0

    def uscc(self) -> str:
        # 1st: registration authority (9 = industry & commerce), 2nd: entity type (1 = enterprise),
        # 3-8: region code, 9-17: organisation code.
        body = "91" + self.rng.choice(["440300", "310000", "110000", "440100", "330100", "510100"])
        body += "".join(self.rng.choice(_USCC_CHARS[:10] + "ABCDEFGH") for _ in range(9))
        return body + uscc_check_char(body)

    def phone(self) -> str:
        return f"+86 {self.rng.choice(['755', '21', '10', '20', '571'])} {self.rng.randint(1000, 9999)} {self.rng.randint(1000, 9999)}"

    def mobile(self) -> str:
        return f"1{self.rng.choice('3456789')}{self.rng.randint(0, 999999999):09d}"

    def company(self) -> Company:
        self._serial += 1
        i = self.rng.randrange(len(CITIES))
        if self.rng.random() < 0.7:
            trade, industry = self.rng.choice(TRADES)
            brand = self.rng.choice(BRANDS) + self.rng.choice(BRANDS)[0]
            name = f"{CITIES[i]}{brand}{trade}{self.rng.choice(SUFFIXES)}"
            if self._serial <= len(FAMOUS) and self.rng.random() < 0.5:
                name = FAMOUS[self._serial - 1]
            name_en = f"{CITY_EN[i]} {brand} {industry.title()} Co., Ltd."
            chinese = True
        else:
            trade, industry = self.rng.choice(EN_TRADES)
            word = self.rng.choice(EN_WORDS)
            name = f"{word} {trade} {self.rng.choice(EN_SUFFIXES)}"
            name_en = name
            chinese = False
        ascii_part = name_en.lower().split(" co.,")[0]
        slug = "".join(c for c in ascii_part if c.isascii() and c.isalnum())[:18] or "co"
        return Company(
            name=name,
            name_en=name_en,
            industry=industry,
            tax_id=self.uscc(),
            domain=f"{slug}{self._serial}.example.cn" if chinese else f"{slug}{self._serial}.example.com",
            phone=self.phone(),
            city=CITY_EN[i],
            region=REGIONS[i],
            chinese=chinese,
        )

    def person(self, domain: str = "example.com") -> Person:
        if self.rng.random() < 0.7:
            name = self.rng.choice(SURNAMES) + self.rng.choice(GIVEN)
            local = f"u{self.rng.randint(1000, 99999)}"
        else:
            first, last = self.rng.choice(EN_FIRST), self.rng.choice(EN_LAST)
            name = f"{first} {last}"
            local = f"{first}.{last}{self.rng.randint(1, 99)}".lower()
        return Person(name=name, email=f"{local}@{domain}", mobile=self.mobile(), title=self.rng.choice(TITLES))

    def deal_name(self, company: Company) -> str:
        product = self.rng.choice(["ERP 升级", "CRM 实施", "服务器采购", "年度维保", "Cloud migration", "Robot cell"])
        return f"{company.name[:12]} - {product}"

    def amount(self) -> str:
        return f"{self.rng.randint(5, 5000) * 1000}.{self.rng.choice(['00', '50', '99'])}"

    def variant(self, name: str) -> str:
        """The same company as another person typed it (the matching engine must see through this)."""
        choices = [
            lambda n: n.replace("有限公司", "").replace("股份", "") or n,
            lambda n: n.replace("(", "（").replace(")", "）") if "(" in n else n.replace("（", "(").replace("）", ")"),
            lambda n: n.replace("Co., Ltd.", "Co Ltd").replace("Inc.", "Inc"),
            lambda n: n.upper() if n.isascii() else n + " ",
            lambda n: n.replace("市", "", 1),
            lambda n: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in n),  # full-width
        ]
        for _ in range(6):
            candidate = self.rng.choice(choices)(name)
            if candidate != name:
                return candidate
        return name + " "
