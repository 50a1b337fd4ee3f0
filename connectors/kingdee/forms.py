"""Defaults for the standard forms crmsync syncs, so a config can name just the form id.

Field keys follow the templates in the reference notes (K-NODE ``clientSave.js``,
``saleOrderSave.js``; query-side lists). Tenants add their own extension fields
(``F_XXX_…``) through ``fields`` in the config.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class KnownForm:
    form_id: str
    label: str
    id_field: str
    number_field: str
    fields: tuple[str, ...]
    entries: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sub_entities: dict[str, tuple[str, ...]] = field(default_factory=dict)
    org_fields: dict[str, str] = field(default_factory=dict)
    watermark_fields: tuple[str, ...] = ("FModifyDate",)
    #: Fields the ERP computes; sending them back would fire its value-update rules on data it owns.
    computed_fields: tuple[str, ...] = ()


_KNOWN = {
    "BD_Customer": KnownForm(
        form_id="BD_Customer",
        label="客户",
        id_field="FCUSTID",
        number_field="FNumber",
        fields=("FName", "FShortName", "FTAXREGISTERCODE", "FTEL", "FFAX", "FADDRESS", "FZIP", "FWEBSITE",
                "FGroup.FNumber", "FCustTypeId.FNumber", "FTRADINGCURRID.FNumber", "FCreateOrgId.FNumber",
                "FUseOrgId.FNumber", "FDescription", "FDocumentStatus", "FForbidStatus"),
        org_fields={"FCreateOrgId": "create_org", "FUseOrgId": "use_org"},
    ),
    "SAL_SaleOrder": KnownForm(
        form_id="SAL_SaleOrder",
        label="销售订单",
        id_field="FID",
        number_field="FBillNo",
        fields=("FBillTypeID.FNumber", "FDate", "FSaleOrgId.FNumber", "FCustId.FNumber", "FCustId.FName", "FNote",
                "FSettleCurrId.FNumber", "FBillAllAmount", "FDocumentStatus", "FCloseStatus", "FApproveDate"),
        entries={"FSaleOrderEntry": ("FMaterialId.FNumber", "FMaterialId.FName", "FUnitID.FNumber", "FQty",
                                     "FPrice", "FTaxPrice", "FEntryTaxRate", "FAllAmount", "FDeliveryDate",
                                     "FEntryNote")},
        sub_entities={"FSaleOrderFinance": ("FSettleCurrId", "FIsIncludedTax", "FBillAllAmount", "FBillAmount",
                                            "FBillTaxAmount")},
        org_fields={"FSaleOrgId": "sale_org"},
        # Auditing an order is what makes it count; catch audits even where they leave FModifyDate alone.
        watermark_fields=("FModifyDate", "FApproveDate"),
        computed_fields=("FBillAllAmount", "FBillAmount", "FBillTaxAmount", "FAllAmount", "FAmount", "FTaxAmount"),
    ),
}


def known_form(form_id: str) -> KnownForm | None:
    return _KNOWN.get(form_id)


def standard_form_ids() -> frozenset[str]:
    return frozenset(_KNOWN)
