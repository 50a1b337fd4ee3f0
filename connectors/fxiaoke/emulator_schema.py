"""The emulated tenant: its objects, fields, employees and realistic seed records.

Field names and value formats follow the reference notes (section 3): owner and
other person fields are lists of employee ids, numbers and money are strings,
dates are epoch milliseconds, select fields hold option *values*, lookups hold
``_id`` strings. Where the notes mark fields UNCONFIRMED (PartnerObj,
NewOpportunityObj), the emulator uses the secondary sources' names.
"""
from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from ..emulation.fakedata import DEAL_STAGES, PARTNER_TIERS, Company, FakeData


@dataclass(frozen=True, slots=True)
class FieldDef:
    api_name: str
    label: str
    type: str
    required: bool = False
    options: tuple[tuple[str, str], ...] = ()  # (value, label)
    target: str | None = None
    readonly: bool = False
    define_type: str = "package"

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "api_name": self.api_name,
            "label": self.label,
            "type": self.type,
            "is_required": self.required,
            "define_type": "custom" if self.api_name.endswith("__c") else self.define_type,
            "is_readonly": self.readonly,
        }
        if self.options:
            out["options"] = [{"value": v, "label": label} for v, label in self.options]
        if self.target:
            out["target_api_name"] = self.target
        return out


@dataclass(slots=True)
class ObjectDef:
    api_name: str
    label: str
    fields: list[FieldDef]
    custom: bool = False
    by_name: dict[str, FieldDef] = field(default_factory=dict)
    person_fields: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.fields = [*SYSTEM_FIELDS, *self.fields]
        self.by_name = {f.api_name: f for f in self.fields}
        self.person_fields = frozenset(f.api_name for f in self.fields if f.type in ("employee", "employee_many"))

    def describe(self) -> dict[str, Any]:
        return {
            "api_name": self.api_name,
            "display_name": self.label,
            "define_type": "custom" if self.custom else "package",
            "is_active": True,
            "fields": {f.api_name: f.describe() for f in self.fields},
        }


LIFE_STATUS = (("normal", "正常"), ("ineffective", "未生效"), ("in_change", "变更中"), ("invalid", "作废"))

SYSTEM_FIELDS = (
    FieldDef("_id", "ID", "text", readonly=True, define_type="system"),
    FieldDef("name", "名称", "text", required=True),
    FieldDef("owner", "负责人", "employee", required=True),
    FieldDef("created_by", "创建人", "employee", readonly=True, define_type="system"),
    FieldDef("last_modified_by", "最后修改人", "employee", readonly=True, define_type="system"),
    FieldDef("create_time", "创建时间", "date_time", readonly=True, define_type="system"),
    FieldDef("last_modified_time", "最后修改时间", "date_time", readonly=True, define_type="system"),
    FieldDef("life_status", "生命状态", "select_one", options=LIFE_STATUS, readonly=True, define_type="system"),
    FieldDef("lock_status", "锁定状态", "select_one", options=(("0", "未锁定"), ("1", "锁定")), define_type="system"),
    FieldDef("is_deleted", "是否删除", "true_or_false", readonly=True, define_type="system"),
    FieldDef("version", "版本", "text", readonly=True, define_type="system"),
    FieldDef("record_type", "业务类型", "record_type", options=(("default__c", "预设业务类型"),)),
    FieldDef("data_own_department", "归属部门", "department"),
)

STAGES = tuple((str(i + 1), label) for i, label in enumerate(["初步接洽", "需求确认", "方案报价", "谈判审核", "赢单", "输单"]))
STAGE_OF = {name: str(i + 1) for i, name in enumerate(DEAL_STAGES)}  # fakedata stage → option value
PROBABILITY = {"1": "10", "2": "30", "3": "50", "4": "70", "5": "100", "6": "0"}
TIERS = (("platinum", "白金"), ("gold", "金牌"), ("silver", "银牌"), ("registered", "注册"))
INDUSTRIES = (
    ("technology", "信息技术"), ("manufacturing", "制造业"), ("retail", "批发零售"), ("healthcare", "医疗健康"),
    ("logistics", "交通物流"), ("energy", "能源"),
)

OBJECTS: dict[str, ObjectDef] = {
    o.api_name: o
    for o in (
        ObjectDef(
            "AccountObj",
            "客户",
            [
                FieldDef("account_no", "客户编号", "auto_number", readonly=True),
                FieldDef("account_type", "客户类型", "select_one", options=(("1", "普通客户"), ("2", "重要客户"), ("3", "战略客户"))),
                FieldDef("account_level", "客户级别", "select_one", options=(("A", "A类"), ("B", "B类"), ("C", "C类"))),
                FieldDef("account_source", "客户来源", "select_one",
                         options=(("1", "官网"), ("2", "渠道"), ("3", "展会"), ("other", "其他"))),
                FieldDef("industry_level1", "行业", "select_one", options=INDUSTRIES),
                FieldDef("tel", "电话", "phone_number"),
                FieldDef("email", "邮件", "email"),
                FieldDef("url", "网址", "url"),
                FieldDef("address", "详细地址", "text"),
                FieldDef("remark", "备注", "long_text"),
                FieldDef("partner_id", "合作伙伴", "object_reference", target="PartnerObj"),
                FieldDef("credit_code__c", "统一社会信用代码", "text"),
                FieldDef("last_followed_time", "最后跟进时间", "date_time"),
            ],
        ),
        ObjectDef(
            "PartnerObj",
            "合作伙伴",
            [
                FieldDef("tel", "电话", "phone_number"),
                FieldDef("email", "邮件", "email"),
                FieldDef("url", "网址", "url"),
                FieldDef("address", "详细地址", "text"),
                FieldDef("remark", "备注", "long_text"),
                FieldDef("partner_tier__c", "伙伴等级", "select_one", options=TIERS),
                FieldDef("credit_code__c", "统一社会信用代码", "text"),
            ],
        ),
        ObjectDef(
            "ContactObj",
            "联系人",
            [
                FieldDef("account_id", "客户名称", "object_reference", required=True, target="AccountObj"),
                FieldDef("job_title", "职务", "text"),
                FieldDef("mobile1", "手机1", "phone_number"),
                FieldDef("tel1", "电话1", "phone_number"),
                FieldDef("email", "邮件", "email"),
                FieldDef("primary_contact", "主联系人", "true_or_false"),
                FieldDef("date_of_birth", "生日", "date"),
                FieldDef("remark", "备注", "long_text"),
            ],
        ),
        ObjectDef(
            "NewOpportunityObj",
            "商机2.0",
            [
                FieldDef("account_id", "客户名称", "object_reference", required=True, target="AccountObj"),
                FieldDef("partner_id", "合作伙伴", "object_reference", target="PartnerObj"),
                FieldDef("amount", "商机金额", "currency"),
                FieldDef("sales_stage", "销售阶段", "select_one", options=STAGES),
                FieldDef("probability", "赢率", "percentile"),
                FieldDef("close_date", "预计成交日期", "date"),
                FieldDef("remark", "备注", "long_text"),
                # Custom fields a tenant adds to show the ERP order a won deal became.
                FieldDef("erp_order_no__c", "ERP 订单号", "text", define_type="custom"),
                FieldDef("erp_order_status__c", "ERP 订单状态", "select_one", define_type="custom",
                         options=(("draft", "草稿"), ("submitted", "审核中"), ("approved", "已审核"),
                                  ("closed", "已关闭"), ("cancelled", "已作废"))),
                FieldDef("erp_order_amount__c", "ERP 订单金额", "currency", define_type="custom"),
            ],
        ),
        ObjectDef(
            "OpportunityObj",
            "商机",
            [
                FieldDef("account_id", "客户名称", "object_reference", required=True, target="AccountObj"),
                FieldDef("expected_deal_amount", "预计成交金额", "currency"),
                FieldDef("expected_deal_closed_date", "预计成交日期", "date"),
                FieldDef("probability", "赢率", "percentile"),
                FieldDef("oppo_stage_id", "商机阶段", "select_one", options=STAGES),
                FieldDef("biz_status", "状态", "select_one", options=(("running", "进行中"), ("win", "赢单"), ("lose", "输单"))),
            ],
        ),
        ObjectDef(
            "SalesOrderObj",
            "销售订单",
            [
                FieldDef("account_id", "客户名称", "object_reference", required=True, target="AccountObj"),
                FieldDef("new_opportunity_id", "商机", "object_reference", target="NewOpportunityObj"),
                FieldDef("order_time", "下单日期", "date", required=True),
                FieldDef("order_amount", "订单金额", "currency"),
                FieldDef("discount", "整单折扣", "percentile"),
                FieldDef("delivery_date", "交货日期", "date"),
                FieldDef("ship_to_add", "收货地址", "text"),
                FieldDef("ship_to_tel", "收货电话", "phone_number"),
                FieldDef("remark", "备注", "long_text"),
            ],
        ),
        ObjectDef(
            "ServiceContract__c",
            "服务合同",
            [
                FieldDef("account_id__c", "客户", "object_reference", required=True, target="AccountObj"),
                FieldDef("amount__c", "合同金额", "currency"),
                FieldDef("start_date__c", "开始日期", "date"),
                FieldDef("end_date__c", "结束日期", "date"),
                FieldDef("status__c", "状态", "select_one",
                         options=(("draft", "草稿"), ("active", "生效"), ("expired", "到期"))),
            ],
            custom=True,
        ),
    )
}

EMPLOYEE_NAMES = ["系统管理员", "张伟", "王芳", "李娜", "刘洋", "陈杰", "杨静", "黄磊", "赵敏", "吴涛", "周晓东"]
SYSTEM_USER = "-10000"


def open_user_id(ea: str, employee_id: str) -> str:
    return "FSUID_" + hashlib.md5(f"{ea}:{employee_id}".encode()).hexdigest().upper()


@dataclass(slots=True)
class Employees:
    """CRM employees: ids like "1000" (new mode) and their FSUID_… openUserIds (legacy mode)."""

    ea: str
    names: dict[str, str] = field(default_factory=dict)
    to_open: dict[str, str] = field(default_factory=dict)
    from_open: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, name in enumerate(EMPLOYEE_NAMES):
            self.add(str(1000 + i), name)
        self.names[SYSTEM_USER] = "系统"

    def add(self, employee_id: str, name: str) -> None:
        self.names[employee_id] = name
        fsuid = open_user_id(self.ea, employee_id)
        self.to_open[employee_id] = fsuid
        self.from_open[fsuid] = employee_id

    def resolve(self, value: str) -> str | None:
        """An employee id from either form, or None when unknown."""
        if value in self.names:
            return value
        return self.from_open.get(value)

    @property
    def sales_reps(self) -> list[str]:
        return [e for e in self.names if e not in (SYSTEM_USER, "1000")]


class SeedFactory:
    """Realistic records, deterministic for a seed: Chinese companies, partners, deals in several stages."""

    def __init__(self, seed: int | None, employees: Employees) -> None:
        self.fake = FakeData(seed)
        self.rng = random.Random(None if seed is None else seed + 1)
        self.employees = employees
        self._counter = itertools.count(self.rng.randrange(1 << 20))

    def new_id(self, created_ms: int) -> str:
        # ObjectId-like: 4-byte creation second, 5 random bytes, 3-byte counter.
        seconds = (created_ms // 1000) & 0xFFFFFFFF
        return f"{seconds:08x}{self.rng.getrandbits(40):010x}{next(self._counter) & 0xFFFFFF:06x}"

    def owner(self) -> list[str]:
        return [self.rng.choice(self.employees.sales_reps)]

    def account(self, partner_ids: list[str]) -> dict[str, Any]:
        company = self.fake.company()
        record = {
            "name": company.name,
            "account_type": self.rng.choice(["1", "1", "2", "3"]),
            "account_level": self.rng.choice(["A", "B", "C"]),
            "account_source": self.rng.choice(["1", "2", "3", "other"]),
            "industry_level1": company.industry,
            "tel": company.phone,
            "email": f"info@{company.domain}",
            "url": f"https://www.{company.domain}",
            "address": f"{company.city} {company.region}",
            "credit_code__c": company.tax_id,
            "owner": self.owner(),
        }
        if partner_ids and self.rng.random() < 0.4:
            record["partner_id"] = self.rng.choice(partner_ids)
        return record

    def partner(self) -> dict[str, Any]:
        company = self.fake.company()
        return {
            "name": company.name,
            "tel": company.phone,
            "email": f"channel@{company.domain}",
            "url": f"https://www.{company.domain}",
            "address": f"{company.city} {company.region}",
            "partner_tier__c": self.rng.choice(PARTNER_TIERS),
            "credit_code__c": company.tax_id,
            "owner": self.owner(),
        }

    def contact(self, account_id: str, domain: str = "example.cn") -> dict[str, Any]:
        person = self.fake.person(domain)
        return {
            "name": person.name,
            "account_id": account_id,
            "job_title": person.title,
            "mobile1": person.mobile,
            "email": person.email,
            "primary_contact": self.rng.random() < 0.3,
            "owner": self.owner(),
        }

    def opportunity(self, account: dict[str, Any], now_ms: int, *, new_style: bool = True) -> dict[str, Any]:
        stage = STAGE_OF[self.rng.choice(DEAL_STAGES)]
        close = now_ms + self.rng.randint(-60, 120) * 86_400_000
        close -= close % 86_400_000
        # deal_name only reads the company's name.
        name = self.fake.deal_name(Company(account["name"], "", "", "", "", "", "", "", True))
        amount = self.fake.amount()
        if new_style:
            record = {
                "name": name,
                "account_id": account["_id"],
                "amount": amount,
                "sales_stage": stage,
                "probability": PROBABILITY[stage],
                "close_date": close,
                "owner": list(account["owner"]),
            }
            if account.get("partner_id"):
                record["partner_id"] = account["partner_id"]
            return record
        status = {"5": "win", "6": "lose"}.get(stage, "running")
        return {
            "name": name,
            "account_id": account["_id"],
            "expected_deal_amount": amount,
            "expected_deal_closed_date": close,
            "probability": PROBABILITY[stage],
            "oppo_stage_id": stage,
            "biz_status": status,
            "owner": list(account["owner"]),
        }

    def sales_order(self, account: dict[str, Any], serial: int, now_ms: int) -> dict[str, Any]:
        day = now_ms - self.rng.randint(0, 180) * 86_400_000
        day -= day % 86_400_000
        return {
            "name": f"SO{serial:08d}",
            "account_id": account["_id"],
            "order_time": day,
            "order_amount": self.fake.amount(),
            "discount": self.rng.choice(["100", "95", "90"]),
            "delivery_date": day + self.rng.randint(3, 30) * 86_400_000,
            "ship_to_add": account.get("address", ""),
            "ship_to_tel": account.get("tel", ""),
            "owner": list(account["owner"]),
        }

    def service_contract(self, account: dict[str, Any], now_ms: int) -> dict[str, Any]:
        start = now_ms - self.rng.randint(0, 365) * 86_400_000
        start -= start % 86_400_000
        return {
            "name": f"{account['name'][:10]} 年度服务合同",
            "account_id__c": account["_id"],
            "amount__c": self.fake.amount(),
            "start_date__c": start,
            "end_date__c": start + 365 * 86_400_000,
            "status__c": self.rng.choice(["draft", "active", "active", "expired"]),
            "owner": list(account["owner"]),
        }
