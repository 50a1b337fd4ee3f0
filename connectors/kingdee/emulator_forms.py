"""Form metadata of the Kingdee emulator: which fields each form has, their kinds and rules.

Standard forms follow the field keys in the reference notes (BD_Customer,
SAL_SaleOrder with FSaleOrderFinance and FSaleOrderEntry); ``F_PAEZ_*`` fields
and the ``PAEZ_BD_Dealer`` form play an implementer's extensions, the way
K/3 Cloud tenants really add them (developer code prefix ``PAEZ``). Reference
data forms (organisations, currencies, materials…) are what sales orders and
customers point at with ``{"FNumber": …}``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TEXT, MLTEXT, DECIMAL, INTEGER, DATE, DATETIME, BOOL, REF, COMBO, STATUS = (
    "text", "mltext", "decimal", "integer", "date", "datetime", "bool", "ref", "combo", "status")

#: QueryBusinessInfo element names per kind (shape UNCONFIRMED; the connector reads it leniently).
ELEMENT_TYPES = {TEXT: "TextField", MLTEXT: "MultiLangTextField", DECIMAL: "DecimalField", INTEGER: "IntegerField",
                 DATE: "DateField", DATETIME: "DateTimeField", BOOL: "CheckBoxField", REF: "BaseDataField",
                 COMBO: "ComboField", STATUS: "BillStatusField"}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    key: str
    label: str
    kind: str = TEXT
    required: bool = False
    ref: str | None = None  # target form of a REF field
    options: dict[str, str] | None = None  # COMBO/STATUS value -> caption
    readonly: bool = False
    max_len: int | None = None
    default: Any = None
    sub: str | None = None  # one-to-one sub-entity holding the field in Save models (FSaleOrderFinance)


@dataclass(frozen=True, slots=True)
class EntrySpec:
    key: str
    label: str
    pk: str
    fields: dict[str, FieldSpec]  # folded key -> spec

    @property
    def query_pk(self) -> str:
        return f"{self.key}_FEntryId"

    @property
    def query_seq(self) -> str:
        return f"{self.key}_FSeq"


@dataclass(frozen=True, slots=True)
class FormSpec:
    form_id: str
    label: str
    pk: str
    number: str
    number_prefix: str
    number_width: int
    fields: dict[str, FieldSpec]  # folded key -> spec (sub-entity fields included, flat)
    entries: dict[str, EntrySpec] = field(default_factory=dict)  # folded key -> spec
    reference: bool = False  # fixed reference data (organisations, currencies…)
    has_forbid: bool = True
    is_bill: bool = False

    @property
    def sub_entities(self) -> set[str]:
        return {f.sub for f in self.fields.values() if f.sub}

    def field(self, key: str) -> FieldSpec | None:
        return self.fields.get(key.lower())

    def entry(self, key: str) -> EntrySpec | None:
        return self.entries.get(key.lower())


def _fields(*specs: FieldSpec) -> dict[str, FieldSpec]:
    return {s.key.lower(): s for s in specs}


_STATUS = FieldSpec("FDocumentStatus", "数据状态", STATUS, readonly=True,
                    options={"Z": "暂存", "A": "创建", "B": "审核中", "C": "已审核", "D": "重新审核"})
_FORBID = FieldSpec("FForbidStatus", "禁用状态", STATUS, readonly=True, options={"A": "否", "B": "是"})
_SYSTEM = (
    _STATUS,
    FieldSpec("FCreateDate", "创建日期", DATETIME, readonly=True),
    FieldSpec("FModifyDate", "修改日期", DATETIME, readonly=True),
    FieldSpec("FApproveDate", "审核日期", DATETIME, readonly=True),
)
_ORGS = (
    FieldSpec("FCreateOrgId", "创建组织", REF, required=True, ref="ORG_Organizations"),
    FieldSpec("FUseOrgId", "使用组织", REF, required=True, ref="ORG_Organizations"),
)


def _reference(form_id: str, label: str, pk: str, *extra: FieldSpec) -> FormSpec:
    return FormSpec(
        form_id=form_id, label=label, pk=pk, number="FNumber", number_prefix=form_id[:3], number_width=4,
        fields=_fields(FieldSpec("FNumber", "编码", max_len=80), FieldSpec("FName", "名称", MLTEXT, required=True),
                       *extra, *_SYSTEM, _FORBID),
        reference=True,
    )


DEALER_LEVELS = {"1": "白金", "2": "金牌", "3": "银牌", "4": "注册"}
#: 行业 of the implementer's customer extension (F_PAEZ_Industry), a combo like the tenant's own.
INDUSTRY_CODES = {"TECH": "信息技术", "MFG": "制造业", "RTL": "批发零售", "MED": "医疗健康", "LOG": "交通物流",
                  "NRG": "能源"}

FORMS: dict[str, FormSpec] = {
    "ORG_Organizations": _reference("ORG_Organizations", "组织机构", "FOrgID"),
    "BD_Currency": _reference("BD_Currency", "币别", "FCURRENCYID", FieldSpec("FCode", "货币代码")),
    "BD_UNIT": _reference("BD_UNIT", "计量单位", "FUNITID"),
    "BD_CustomerGroup": _reference("BD_CustomerGroup", "客户分组", "FID"),
    "BOS_ASSISTANTDATA_DETAIL": _reference("BOS_ASSISTANTDATA_DETAIL", "辅助资料", "FEntryID"),
    "BD_BillType": _reference("BD_BillType", "单据类型", "FBILLTYPEID"),
    # 销售员 (业务员): what BD_Customer.FSELLER and SAL_SaleOrder.FSalerId point at.
    "BD_Saleman": _reference("BD_Saleman", "销售员", "FID", FieldSpec("FEmail", "电子邮箱", max_len=100)),
    "BD_MATERIAL": _reference(
        "BD_MATERIAL", "物料", "FMATERIALID",
        FieldSpec("FSpecification", "规格型号", MLTEXT),
        FieldSpec("FBaseUnitId", "基本单位", REF, ref="BD_UNIT"),
        FieldSpec("F_PAEZ_ListPrice", "参考售价", DECIMAL),
    ),
    "BD_Customer": FormSpec(
        form_id="BD_Customer", label="客户", pk="FCUSTID", number="FNumber", number_prefix="CUST", number_width=5,
        fields=_fields(
            FieldSpec("FNumber", "编码", max_len=80),
            FieldSpec("FName", "客户名称", MLTEXT, required=True, max_len=255),
            FieldSpec("FShortName", "简称", MLTEXT, max_len=255),
            *_ORGS,
            FieldSpec("FTAXREGISTERCODE", "纳税登记号", max_len=50),
            FieldSpec("FTEL", "联系电话", max_len=50),
            FieldSpec("FFAX", "传真", max_len=50),
            FieldSpec("FADDRESS", "通讯地址", max_len=255),
            FieldSpec("FZIP", "邮政编码", max_len=20),
            FieldSpec("FWEBSITE", "公司网址", max_len=255),
            FieldSpec("FGroup", "客户分组", REF, ref="BD_CustomerGroup"),
            FieldSpec("FCustTypeId", "客户类别", REF, ref="BOS_ASSISTANTDATA_DETAIL"),
            FieldSpec("FTRADINGCURRID", "结算币别", REF, ref="BD_Currency", default="PRE001"),
            FieldSpec("FDescription", "描述", MLTEXT, max_len=255),
            FieldSpec("FSELLER", "销售员", REF, ref="BD_Saleman"),
            FieldSpec("F_PAEZ_CreditLimit", "信用额度", DECIMAL),
            FieldSpec("F_PAEZ_Industry", "行业", COMBO, options=INDUSTRY_CODES),
            FieldSpec("F_PAEZ_Dealer", "所属经销商", REF, ref="PAEZ_BD_Dealer"),
            FieldSpec("F_PAEZ_CrmId", "CRM 客户 ID", max_len=100),
            *_SYSTEM, _FORBID,
        ),
    ),
    "PAEZ_BD_Dealer": FormSpec(
        form_id="PAEZ_BD_Dealer", label="经销商档案", pk="FID", number="FNumber", number_prefix="JXS", number_width=5,
        fields=_fields(
            FieldSpec("FNumber", "编码", max_len=80),
            FieldSpec("FName", "经销商名称", MLTEXT, required=True, max_len=255),
            *_ORGS,
            FieldSpec("F_PAEZ_Level", "经销商级别", COMBO, options=DEALER_LEVELS, default="4"),
            FieldSpec("F_PAEZ_Region", "所属大区", max_len=50),
            FieldSpec("F_PAEZ_Contact", "联系人", max_len=50),
            FieldSpec("F_PAEZ_Phone", "联系电话", max_len=50),
            FieldSpec("F_PAEZ_Email", "电子邮箱", max_len=100),
            FieldSpec("F_PAEZ_TaxNo", "统一社会信用代码", max_len=18),
            FieldSpec("F_PAEZ_Manager", "渠道经理", REF, ref="BD_Saleman"),
            FieldSpec("F_PAEZ_CustId", "对应客户", REF, ref="BD_Customer"),
            FieldSpec("F_PAEZ_CrmId", "CRM 伙伴 ID", max_len=100),
            FieldSpec("FDescription", "备注", MLTEXT, max_len=255),
            *_SYSTEM, _FORBID,
        ),
    ),
    "SAL_SaleOrder": FormSpec(
        form_id="SAL_SaleOrder", label="销售订单", pk="FID", number="FBillNo", number_prefix="XSDD", number_width=6,
        is_bill=True, has_forbid=False,
        fields=_fields(
            FieldSpec("FBillNo", "单据编号", max_len=80),
            FieldSpec("FBillTypeID", "单据类型", REF, required=True, ref="BD_BillType", default="XSDD01_SYS"),
            FieldSpec("FDate", "日期", DATE, required=True),
            FieldSpec("FSaleOrgId", "销售组织", REF, required=True, ref="ORG_Organizations"),
            FieldSpec("FCustId", "客户", REF, required=True, ref="BD_Customer"),
            FieldSpec("FSalerId", "销售员", REF, ref="BD_Saleman"),
            FieldSpec("FNote", "备注", max_len=500),
            FieldSpec("F_PAEZ_CrmDealId", "CRM 商机 ID", max_len=100),
            FieldSpec("F_PAEZ_Dealer", "经销商", REF, ref="PAEZ_BD_Dealer"),
            FieldSpec("FSettleCurrId", "结算币别", REF, ref="BD_Currency", default="PRE001", sub="FSaleOrderFinance"),
            FieldSpec("FIsIncludedTax", "是否含税", BOOL, default=True, sub="FSaleOrderFinance"),
            FieldSpec("FExchangeRate", "汇率", DECIMAL, default=1, sub="FSaleOrderFinance"),
            FieldSpec("FBillAmount", "税额前金额", DECIMAL, readonly=True, sub="FSaleOrderFinance"),
            FieldSpec("FBillTaxAmount", "税额", DECIMAL, readonly=True, sub="FSaleOrderFinance"),
            FieldSpec("FBillAllAmount", "价税合计", DECIMAL, readonly=True, sub="FSaleOrderFinance"),
            FieldSpec("FCloseStatus", "关闭状态", STATUS, readonly=True, options={"A": "未关闭", "B": "已关闭"}),
            *_SYSTEM,
        ),
        entries={"fsaleorderentry": EntrySpec(
            key="FSaleOrderEntry", label="订单明细", pk="FEntryID",
            fields=_fields(
                FieldSpec("FMaterialId", "物料编码", REF, required=True, ref="BD_MATERIAL"),
                FieldSpec("FUnitID", "销售单位", REF, ref="BD_UNIT"),
                FieldSpec("FQty", "销售数量", DECIMAL, required=True),
                FieldSpec("FPrice", "单价", DECIMAL),
                FieldSpec("FTaxPrice", "含税单价", DECIMAL),
                FieldSpec("FEntryTaxRate", "税率%", DECIMAL, default=13),
                FieldSpec("FAmount", "金额", DECIMAL, readonly=True),
                FieldSpec("FTaxAmount", "税额", DECIMAL, readonly=True),
                FieldSpec("FAllAmount", "价税合计", DECIMAL, readonly=True),
                FieldSpec("FDeliveryDate", "要货日期", DATE),
                FieldSpec("FEntryNote", "备注", max_len=255),
            ),
        )},
    ),
}

#: Forms seeded and served as business data (the rest is reference data).
BUSINESS_FORMS = ("BD_Customer", "PAEZ_BD_Dealer", "SAL_SaleOrder")

#: Fixed reference data: form -> [(number, name, extra fields)].
REFERENCE_DATA: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "ORG_Organizations": [("100", "深圳总部", {}), ("101", "华东销售公司", {}), ("102", "华北销售公司", {})],
    "BD_Currency": [("PRE001", "人民币", {"FCode": "CNY"}), ("PRE002", "香港元", {"FCode": "HKD"}),
                    ("PRE003", "欧元", {"FCode": "EUR"}), ("PRE007", "美元", {"FCode": "USD"})],
    "BD_UNIT": [("Pcs", "个", {}), ("tai", "台", {}), ("tao", "套", {}), ("rt", "人天", {})],
    "BD_CustomerGroup": [("01", "直销客户", {}), ("02", "经销商", {}), ("03", "战略客户", {})],
    "BOS_ASSISTANTDATA_DETAIL": [("KHLB001_SYS", "普通销售客户", {}), ("KHLB002_SYS", "寄售客户", {}),
                                 ("KHLB003_SYS", "内部结算客户", {})],
    "BD_BillType": [("XSDD01_SYS", "标准销售订单", {}), ("XSDD02_SYS", "寄售销售订单", {})],
    "BD_Saleman": [("0000", "销售运营", {"FEmail": "sales.ops@example.cn"}),
                   ("0001", "李伟", {"FEmail": "li.wei@example.cn"}),
                   ("0002", "王芳", {"FEmail": "wang.fang@example.cn"}),
                   ("0003", "陈艾玛", {"FEmail": "emma.chen@example.com"}),
                   ("0004", "刘洋", {"FEmail": "liu.yang@example.cn"})],
    "BD_MATERIAL": [
        ("1.01.001", "服务器 R740", {"FSpecification": "2U 双路", "FBaseUnitId": "tai", "F_PAEZ_ListPrice": 68000}),
        ("1.01.002", "交换机 S5130", {"FSpecification": "48 口千兆", "FBaseUnitId": "tai", "F_PAEZ_ListPrice": 9800}),
        ("1.01.003", "工业机器人工作站", {"FSpecification": "六轴 20kg", "FBaseUnitId": "tao",
                                         "F_PAEZ_ListPrice": 256000}),
        ("1.02.001", "CRM 软件许可（年）", {"FSpecification": "50 用户", "FBaseUnitId": "tao",
                                          "F_PAEZ_ListPrice": 36000}),
        ("1.02.002", "ERP 实施服务", {"FSpecification": "顾问", "FBaseUnitId": "rt", "F_PAEZ_ListPrice": 2800}),
        ("1.03.001", "年度维保服务", {"FSpecification": "7x24", "FBaseUnitId": "tao", "F_PAEZ_ListPrice": 12000}),
        ("1.03.002", "备件包", {"FSpecification": "通用", "FBaseUnitId": "Pcs", "F_PAEZ_ListPrice": 450}),
    ],
}
