"""Normalisers: reduce a company name, phone, domain or tax id to a comparison key.

Used by the engine's first-sync matching (the same company keyed in by two people
in two systems must compare equal) and available to transforms. They are for
*comparing*, not for display: the output is lower-case, without punctuation or
spaces. For display clean-ups use the transforms (``strip_company_suffix``…).
"""
from __future__ import annotations

import re
import unicodedata

from connectors.emulation.fakedata import is_valid_uscc  # GB 32100-2015 check digit, shared with the emulators

__all__ = [
    "company_name",
    "domain",
    "email",
    "halfwidth",
    "is_valid_uscc",
    "person_name",
    "phone",
    "strip_company_suffix",
    "tax_id",
    "NORMALIZERS",
]

# Full-width ASCII block (！ … ～) and the ideographic space.
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def halfwidth(text: str) -> str:
    """Full-width letters, digits, punctuation and the ideographic space → ASCII.

    Narrower than NFKC on purpose: it changes nothing else, so it is safe for display.
    """
    return text.translate(_FULLWIDTH)


# Longest first: '股份有限公司' must win over '有限公司'.
_CN_SUFFIXES = (
    "集团股份有限公司",
    "股份有限公司",
    "有限责任公司",
    "集团有限公司",
    "有限公司",
    "股份公司",
    "总公司",
    "公司",
)
# Token sequences, matched on the words left after punctuation became spaces.
_EN_SUFFIXES = (
    ("co", "ltd"),
    ("company", "limited"),
    ("company", "ltd"),
    ("co", "limited"),
    ("pte", "ltd"),
    ("pty", "ltd"),
    ("limited",),
    ("ltd",),
    ("inc",),
    ("incorporated",),
    ("corp",),
    ("corporation",),
    ("llc",),
    ("gmbh",),
    ("plc",),
    ("company",),
    ("co",),
)

#: The last words of the English suffixes: a name ending in none of them has none of them.
_EN_SUFFIX_ENDS = frozenset(suffix[-1] for suffix in _EN_SUFFIXES)

# Display form: the same suffixes with their punctuation, anchored at the end.
_DISPLAY_SUFFIX = re.compile(
    r"(?:[\s,，.。]*(?:" + "|".join(_CN_SUFFIXES) + r"|co\.?\s*,?\s*ltd\.?|company\s+limited|co\.?\s*limited|"
    r"pte\.?\s*ltd\.?|limited|ltd\.?|inc\.?|incorporated|corp\.?|corporation|llc\.?|gmbh|plc))+[\s,，.。]*$",
    re.IGNORECASE,
)


def strip_company_suffix(name: str) -> str:
    """'深圳市华为技术有限公司' → '深圳市华为技术', 'Acme Robotics Co., Ltd.' → 'Acme Robotics'.

    Keeps case, spacing and everything before the legal-form suffix (for display and
    for systems whose name field holds a short name). A name that is only a suffix is
    returned unchanged.
    """
    stripped = _DISPLAY_SUFFIX.sub("", name).rstrip()
    return stripped or name


_PROVINCES = (
    "北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江", "安徽", "福建", "江西",
    "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州", "云南", "陕西", "甘肃", "青海", "台湾", "内蒙古",
    "广西", "西藏", "宁夏", "新疆", "香港", "澳门",
)
_CITIES = (
    "深圳", "广州", "杭州", "南京", "苏州", "成都", "武汉", "西安", "东莞", "佛山", "宁波", "厦门", "青岛", "大连",
    "无锡", "长沙", "郑州", "济南", "合肥", "福州", "沈阳", "哈尔滨", "长春", "昆明", "南宁", "珠海", "中山", "惠州",
    "温州", "常州", "绍兴", "嘉兴", "泉州", "烟台", "石家庄", "太原", "南昌", "贵阳", "兰州", "海口", "乌鲁木齐",
)
_REGION_PREFIX = re.compile(
    r"^(?:(?:" + "|".join(sorted(_PROVINCES, key=len, reverse=True)) + r")"
    r"(?:省|市|壮族自治区|回族自治区|维吾尔自治区|自治区|特别行政区)?"
    r"|(?:" + "|".join(sorted(_CITIES, key=len, reverse=True)) + r")(?:市)?)"
)
_BRACKETS = re.compile(r"[(（\[【]([^)）\]】]*)[)）\]】]")


def company_name(name: str | None, *, strip_region: bool = False) -> str | None:
    """Comparison key of a company name.

    Full-width → half-width, case folded, punctuation and spaces removed, legal-form
    suffixes (有限公司, 股份有限公司, Co., Ltd., Inc., Limited…) removed. With
    ``strip_region`` a leading province/city (广东省, 深圳市, 上海…) and a bracketed
    qualifier such as （中国） are dropped too — 深圳市华为技术有限公司 and 华为技术 then
    compare equal. Returns None for an empty name.
    """
    if name is None:
        return None
    text = unicodedata.normalize("NFKC", str(name)).casefold().strip()
    if strip_region:
        text = _BRACKETS.sub(" ", text)
    else:
        text = _BRACKETS.sub(r" \1 ", text)
    words = re.sub(r"[\W_]+", " ", text).split()
    changed = True
    while changed and words:
        changed = False
        # Set / tuple checks first: most names end in no English suffix, and a Chinese word in none of them.
        if words[-1] in _EN_SUFFIX_ENDS:
            for suffix in _EN_SUFFIXES:
                n = len(suffix)
                if len(words) > n and tuple(words[-n:]) == suffix:
                    del words[-n:]
                    changed = True
                    break
        if words and words[-1].endswith(_CN_SUFFIXES):
            last = words[-1]
            for suffix in _CN_SUFFIXES:
                if last.endswith(suffix) and (len(last) > len(suffix) or len(words) > 1):
                    if last == suffix:
                        del words[-1]
                    else:
                        words[-1] = last[: -len(suffix)]
                    changed = True
                    break
    key = "".join(words)
    if strip_region:
        while True:
            shorter = _REGION_PREFIX.sub("", key, count=1)
            if shorter == key or len(shorter) < 2:
                break
            key = shorter
    return key or None


_EXTENSION = re.compile(r"(?:ext\.?|x|转|分机|#).*$", re.IGNORECASE)


def phone(value: str | None, *, country_code: str = "86") -> str | None:
    """Comparison key of a phone number: digits only, home country code and trunk 0 dropped.

    '+86 755 8888 1234', '0755-88881234' and '(0755) 8888 1234' → '75588881234';
    '+86 138-0013-8000' → '13800138000'; a foreign '+1 415 555 0100' keeps its country code
    ('14155550100'). Extensions (ext, x, 转, 分机) are ignored.
    """
    if value is None:
        return None
    text = _EXTENSION.sub("", unicodedata.normalize("NFKC", str(value)).strip())
    international = text.startswith("+") or text.startswith("00")
    digits = re.sub(r"\D", "", text)
    if text.startswith("00"):
        digits = digits[2:]
    if international:
        if digits.startswith(country_code):
            digits = digits[len(country_code) :]
        else:
            return digits or None
    elif digits.startswith(country_code) and len(digits) - len(country_code) in (10, 11):
        # '86 755 8888 1234' written without '+'
        digits = digits[len(country_code) :]
    digits = digits.lstrip("0") if country_code == "86" else digits
    return digits or None


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def domain(value: str | None) -> str | None:
    """Comparison key of a web domain, from a URL, a bare host or an e-mail address.

    'https://www.Huawei.com/cn/' → 'huawei.com'; 'sales@huawei.com' → 'huawei.com'.
    """
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", str(value)).strip().lower()
    if not text:
        return None
    if "@" in text and "/" not in text.split("@", 1)[0]:
        text = text.rsplit("@", 1)[1]
    text = _SCHEME.sub("", text)
    text = re.split(r"[/?#]", text, maxsplit=1)[0]
    text = text.rsplit("@", 1)[-1]  # user:pass@host
    text = text.split(":", 1)[0].strip(".")
    if text.startswith("www."):
        text = text[4:]
    return text or None


def tax_id(value: str | None) -> str | None:
    """Comparison key of a tax id / unified social credit code: half-width, upper case,
    without spaces, hyphens or dots ('91440300 7084 2231 5n' → '914403007084223151N')."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", str(value)).upper()
    text = re.sub(r"[\s\-./]", "", text)
    return text or None


def email(value: str | None) -> str | None:
    """Comparison key of an e-mail address: trimmed, half-width, lower case."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", str(value)).strip().lower()
    return text or None


def person_name(value: str | None) -> str | None:
    """Comparison key of a person's name: half-width, case folded, single spaces."""
    if value is None:
        return None
    text = " ".join(unicodedata.normalize("NFKC", str(value)).casefold().split())
    return text or None


#: Normaliser name -> function, for `match.keys[].normalize` and `crmsync` tooling.
NORMALIZERS = {
    "company_name": company_name,
    "company_name_no_region": lambda v: company_name(v, strip_region=True),
    "phone": phone,
    "domain": domain,
    "tax_id": tax_id,
    "email": email,
    "person_name": person_name,
}

#: The normaliser matching uses for a canonical field kind (see mapping.canonical).
NORMALIZER_FOR_KIND = {
    "company_name": "company_name",
    "phone": "phone",
    "domain": "domain",
    "tax_id": "tax_id",
    "email": "email",
    "person_name": "person_name",
}
